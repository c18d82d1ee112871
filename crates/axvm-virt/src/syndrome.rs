//! A data abort's syndrome (ESR_EL2), decoded for a type-1 arm64 host: what KVM reads in
//! the kernel before it exits with `KVM_EXIT_MMIO`, a bare-metal host reads itself. It turns
//! a guest's access to device memory into the core's MMIO exit and says how to complete the
//! load: the width, the register, and whether the value is sign-extended and to 32 or 64
//! bits.

use axvm::vcpu::{extend_mmio_read, LoadExtension};
use axvm::AccessWidth;

/// ESR_EL2.EC of a data abort from a lower exception level (the guest).
const EC_DATA_ABORT_LOWER: u64 = 0x24;
/// ISS.ISV: the syndrome describes the instruction (the fields below are valid).
const ISV: u64 = 1 << 24;

/// A guest's access to device memory, as its data abort's syndrome describes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbort {
    /// A store (`WnR`).
    pub write: bool,
    /// The access's size (`SAS`).
    pub width: AccessWidth,
    /// A load that sign-extends (`SSE`: `ldrsb`, `ldrsh`, `ldrsw`).
    pub sign_extend: bool,
    /// The register loaded or stored (`SRT`); 31 is the zero register.
    pub register: u8,
    /// The register is 64 bits wide (`SF`: x*n*), else 32 (w*n*).
    pub sixty_four: bool,
    /// An acquire or release access (`AR`: `ldar`, `stlr`).
    pub acquire_release: bool,
}

impl DataAbort {
    /// Decodes `esr`; `None` unless it is a guest data abort whose syndrome is valid (a
    /// load/store pair or a cache maintenance access has none: the host must decode the
    /// instruction, or refuse it).
    ///
    /// ```
    /// use axvm::AccessWidth;
    /// use axvm_virt::syndrome::DataAbort;
    /// // `ldrsb x3, [x1]`: EC 0x24, IL, ISV, SAS 0, SSE, SRT 3, SF.
    /// let esr = 0x24 << 26 | 1 << 25 | 1 << 24 | 1 << 21 | 3 << 16 | 1 << 15;
    /// let abort = DataAbort::decode(esr).unwrap();
    /// assert_eq!((abort.width, abort.register, abort.sign_extend), (AccessWidth::Byte, 3, true));
    /// assert_eq!(abort.complete_load(0xdead, 0x80), 0xffff_ffff_ffff_ff80);
    /// ```
    pub fn decode(esr: u64) -> Option<Self> {
        if esr >> 26 & 0x3f != EC_DATA_ABORT_LOWER || esr & ISV == 0 {
            return None;
        }
        let width = match esr >> 22 & 3 {
            0 => AccessWidth::Byte,
            1 => AccessWidth::Word,
            2 => AccessWidth::Dword,
            _ => AccessWidth::Qword,
        };
        Some(Self {
            write: esr & 1 << 6 != 0,
            width,
            sign_extend: esr & 1 << 21 != 0,
            register: (esr >> 16 & 0x1f) as u8,
            sixty_four: esr & 1 << 15 != 0,
            acquire_release: esr & 1 << 14 != 0,
        })
    }

    /// The register's value after this load returned `value` (the access's bytes,
    /// zero-extended): sign-extended when the syndrome says so, and cut to 32 bits for a w
    /// register, as the architecture writes it.
    pub fn complete_load(&self, old_register: u64, value: u64) -> u64 {
        let extension = if self.sign_extend {
            LoadExtension::Sign
        } else {
            LoadExtension::Zero
        };
        let loaded = extend_mmio_read(old_register, value, self.width, extension);
        if self.sixty_four {
            loaded
        } else {
            loaded & 0xffff_ffff
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esr(sas: u64, sse: bool, srt: u64, sf: bool, write: bool) -> u64 {
        EC_DATA_ABORT_LOWER << 26
            | 1 << 25
            | ISV
            | sas << 22
            | u64::from(sse) << 21
            | srt << 16
            | u64::from(sf) << 15
            | u64::from(write) << 6
    }

    #[test]
    fn each_width_and_direction_decodes() {
        for (sas, width) in [
            (0, AccessWidth::Byte),
            (1, AccessWidth::Word),
            (2, AccessWidth::Dword),
            (3, AccessWidth::Qword),
        ] {
            let abort = DataAbort::decode(esr(sas, false, 7, true, true)).unwrap();
            assert_eq!(abort.width, width);
            assert!(abort.write);
            assert_eq!(abort.register, 7);
        }
    }

    #[test]
    fn signed_loads_extend_to_the_register_width() {
        // ldrsh x2: to 64 bits.
        let x = DataAbort::decode(esr(1, true, 2, true, false)).unwrap();
        assert_eq!(x.complete_load(0, 0x8001), 0xffff_ffff_ffff_8001);
        // ldrsh w2: to 32 bits, the upper half zero.
        let w = DataAbort::decode(esr(1, true, 2, false, false)).unwrap();
        assert_eq!(w.complete_load(0, 0x8001), 0xffff_8001);
        // ldrh w2: zero-extended, whatever the register held.
        let unsigned = DataAbort::decode(esr(1, false, 2, false, false)).unwrap();
        assert_eq!(unsigned.complete_load(u64::MAX, 0x8001), 0x8001);
    }

    #[test]
    fn other_exceptions_and_invalid_syndromes_are_not_decoded() {
        // An HVC (EC 0x16).
        assert_eq!(DataAbort::decode(0x16 << 26 | ISV), None);
        // A data abort without ISV (a load pair).
        assert_eq!(
            DataAbort::decode(esr(2, false, 0, true, false) & !ISV),
            None
        );
    }
}
