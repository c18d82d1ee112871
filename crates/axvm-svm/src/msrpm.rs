//! The MSR permission map (MSRPM): two bits per MSR — read, then write — set = intercept
//! (AMD APM vol. 2, "MSR Intercepts").
//!
//! The 8 KiB map covers three MSR ranges of 8 Ki MSRs each, 2 KiB per range; the last
//! 2 KiB are reserved. The processor intercepts every MSR outside those ranges regardless
//! of the map, so [`MsrPermissionMap::set`] refuses them rather than pretending.

use alloc::boxed::Box;

/// The size of the MSRPM in bytes (two contiguous 4 KiB pages).
pub const MSRPM_SIZE: usize = 8 * 1024;

/// The MSR ranges the map covers: first MSR and the map's byte offset for it.
const RANGES: [(u32, usize); 3] = [
    (0x0000_0000, 0x000),
    (0xc000_0000, 0x800),
    (0xc001_0000, 0x1000),
];

/// MSRs per range.
const RANGE_LEN: u32 = 0x2000;

/// An MSR the map cannot describe: the processor always intercepts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "MSR {0:#x} is outside the MSR permission map's ranges (0-0x1fff, 0xc0000000-0xc0001fff, \
     0xc0010000-0xc0011fff): the processor always intercepts it"
)]
pub struct MsrOutsideMap(pub u32);

/// An MSRPM under construction; the host copies [`as_bytes`](Self::as_bytes) into two
/// physically contiguous pages and puts their address into the VMCB's `msrpm_base_pa`.
#[derive(Clone, PartialEq, Eq)]
pub struct MsrPermissionMap {
    bits: Box<[u8; MSRPM_SIZE]>,
}

impl MsrPermissionMap {
    /// A map that intercepts every read and write: the safe start.
    pub fn intercept_all() -> Self {
        Self {
            bits: Box::new([0xff; MSRPM_SIZE]),
        }
    }

    /// Chooses whether `RDMSR` (`read`) and `WRMSR` (`write`) of `msr` exit to the host.
    pub fn set(&mut self, msr: u32, read: bool, write: bool) -> Result<(), MsrOutsideMap> {
        let (byte, bit) = Self::position(msr)?;
        let both = 0b11 << bit;
        let chosen = (u8::from(read) | u8::from(write) << 1) << bit;
        self.bits[byte] = (self.bits[byte] & !both) | chosen;
        Ok(())
    }

    /// Whether `RDMSR` and `WRMSR` of `msr` exit, as `(read, write)`; always both for an
    /// MSR outside the map.
    pub fn intercepts(&self, msr: u32) -> (bool, bool) {
        match Self::position(msr) {
            Ok((byte, bit)) => {
                let pair = self.bits[byte] >> bit;
                (pair & 1 != 0, pair & 2 != 0)
            }
            Err(_) => (true, true),
        }
    }

    /// The map as the processor reads it.
    pub fn as_bytes(&self) -> &[u8; MSRPM_SIZE] {
        &self.bits
    }

    /// The byte and the bit of the read intercept of `msr` (the write bit follows it).
    fn position(msr: u32) -> Result<(usize, u32), MsrOutsideMap> {
        RANGES
            .iter()
            .find(|&&(first, _)| msr.wrapping_sub(first) < RANGE_LEN)
            .map(|&(first, base)| {
                let index = (msr - first) as usize;
                (base + index / 4, 2 * (index as u32 % 4))
            })
            .ok_or(MsrOutsideMap(msr))
    }
}

impl core::fmt::Debug for MsrPermissionMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let clear = self.bits.iter().map(|b| b.count_zeros()).sum::<u32>();
        f.debug_struct("MsrPermissionMap")
            .field("pass_through_bits", &clear)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    fn open() -> MsrPermissionMap {
        MsrPermissionMap {
            bits: Box::new([0; MSRPM_SIZE]),
        }
    }

    #[test]
    fn each_range_starts_at_its_apm_byte_offset() {
        let mut map = open();
        map.set(0x0, true, false).unwrap();
        assert_eq!(map.as_bytes()[0], 0b01);
        map.set(0xc000_0080, false, true).unwrap(); // EFER: MSR 0x80 of range 2
        assert_eq!(map.as_bytes()[0x800 + 0x80 / 4], 0b10);
        map.set(0xc001_0000, true, true).unwrap();
        assert_eq!(map.as_bytes()[0x1000], 0b11);
    }

    #[test]
    fn four_msrs_share_a_byte_two_bits_each() {
        let mut map = open();
        map.set(0x10, true, true).unwrap(); // TSC: byte 4, bits 0-1
        map.set(0x13, false, true).unwrap(); // byte 4, bits 6-7: write only
        assert_eq!(map.as_bytes()[4], 0b1000_0011);
        map.set(0x1fff, true, false).unwrap();
        assert_eq!(map.as_bytes()[0x7ff], 0b0100_0000);
        assert_eq!(map.intercepts(0x13), (false, true));
        assert_eq!(map.intercepts(0x11), (false, false));
        map.set(0x10, false, false).unwrap();
        assert_eq!(map.as_bytes()[4], 0b1000_0000);
    }

    #[test]
    fn msrs_outside_the_ranges_are_refused_and_always_intercepted() {
        let mut map = open();
        for msr in [0x2000, 0xbfff_ffff, 0xc000_2000, 0xc001_2000, u32::MAX] {
            assert_eq!(map.set(msr, false, false), Err(MsrOutsideMap(msr)));
            assert_eq!(map.intercepts(msr), (true, true));
        }
        assert!(map.as_bytes().iter().all(|&b| b == 0));
        let message = MsrOutsideMap(0x2000).to_string();
        assert!(message.contains("0x2000"), "{message}");
    }

    #[test]
    fn intercept_all_sets_every_bit() {
        let map = MsrPermissionMap::intercept_all();
        assert!(map.as_bytes().iter().all(|&b| b == 0xff));
        assert_eq!(map.intercepts(0xc000_0082), (true, true));
    }
}
