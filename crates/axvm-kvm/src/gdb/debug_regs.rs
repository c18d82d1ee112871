//! The four x86 debug address registers (DR0-DR3) as GDB's hardware breakpoints and
//! watchpoints, and the DR7 that turns them on.

use gdbstub::target::ext::breakpoints::WatchKind;

/// What one of DR0-DR3 is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotUse {
    /// Stop before executing the instruction at `addr` (`hbreak`).
    Execute { addr: u64 },
    /// Stop after an access of `kind` to `len` bytes at `addr` (`watch`, `awatch`).
    Watch {
        addr: u64,
        len: u64,
        kind: WatchKind,
    },
}

/// DR0-DR3, each free or in use.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HwSlots([Option<SlotUse>; 4]);

/// DR7 bit 10 is reserved and reads as 1.
const DR7_RESERVED: u64 = 1 << 10;

impl HwSlots {
    /// Takes a free slot for `slot_use`; `false` when none is free or the debug registers
    /// cannot express it (a length other than 1, 2, 4, 8; an unaligned address).
    pub(crate) fn add(&mut self, slot_use: SlotUse) -> bool {
        if encode(slot_use).is_none() {
            return false;
        }
        match self.0.iter_mut().find(|slot| slot.is_none()) {
            Some(free) => {
                *free = Some(slot_use);
                true
            }
            None => false,
        }
    }

    /// Frees the slot used for `slot_use`; `false` when none was.
    pub(crate) fn remove(&mut self, slot_use: SlotUse) -> bool {
        match self.0.iter_mut().find(|slot| **slot == Some(slot_use)) {
            Some(slot) => {
                *slot = None;
                true
            }
            None => false,
        }
    }

    /// What slot `index` is used for.
    pub(crate) fn get(&self, index: usize) -> Option<SlotUse> {
        self.0.get(index).copied().flatten()
    }

    /// DR0-DR3 and DR7 for the slots in use (DR7 is 0 when none is).
    pub(crate) fn registers(&self) -> ([u64; 4], u64) {
        let mut addresses = [0; 4];
        let mut dr7 = 0;
        for (index, slot) in self.0.iter().enumerate() {
            let Some((addr, control)) = slot.and_then(encode) else {
                continue;
            };
            addresses[index] = addr;
            // L<index> on, and the 4-bit R/W + LEN field of this slot.
            dr7 |= 1 << (2 * index) | control << (16 + 4 * index);
        }
        if dr7 != 0 {
            dr7 |= DR7_RESERVED;
        }
        (addresses, dr7)
    }
}

/// A slot's address and its DR7 R/W (low 2 bits) and LEN (high 2 bits) field.
fn encode(slot_use: SlotUse) -> Option<(u64, u64)> {
    match slot_use {
        // Execute breakpoints: R/W 00, LEN 00.
        SlotUse::Execute { addr } => Some((addr, 0)),
        SlotUse::Watch { addr, len, kind } => {
            let len_bits = match len {
                1 => 0b00,
                2 => 0b01,
                8 => 0b10,
                4 => 0b11,
                _ => return None,
            };
            if addr % len != 0 {
                return None;
            }
            // Writes: 01; reads and writes: 11 (x86 cannot watch reads alone).
            let rw_bits = match kind {
                WatchKind::Write => 0b01,
                WatchKind::Read | WatchKind::ReadWrite => 0b11,
            };
            Some((addr, len_bits << 2 | rw_bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_fill_dr0_to_dr3_and_dr7_says_how() {
        let mut slots = HwSlots::default();
        assert!(slots.add(SlotUse::Execute { addr: 0x20_0000 }));
        let watch = SlotUse::Watch {
            addr: 0x20_3000,
            len: 4,
            kind: WatchKind::Write,
        };
        assert!(slots.add(watch));
        let (addresses, dr7) = slots.registers();
        assert_eq!(addresses, [0x20_0000, 0x20_3000, 0, 0]);
        // L0, L1, reserved bit 10; slot 1: R/W 01 (write), LEN 11 (4 bytes) at bits 20-23.
        assert_eq!(dr7, 0b0101 | 1 << 10 | 0b1101 << 20);
        assert_eq!(slots.get(1), Some(watch));
        assert!(slots.remove(watch));
        assert!(!slots.remove(watch));
        assert_eq!(slots.registers().1, 1 | 1 << 10);
    }

    #[test]
    fn a_fifth_slot_or_an_odd_length_is_refused() {
        let mut slots = HwSlots::default();
        for addr in 0..4 {
            assert!(slots.add(SlotUse::Execute { addr }));
        }
        assert!(!slots.add(SlotUse::Execute { addr: 9 }));
        let odd = SlotUse::Watch {
            addr: 0x1000,
            len: 3,
            kind: WatchKind::Write,
        };
        assert!(!HwSlots::default().add(odd));
        assert_eq!(HwSlots::default().registers(), ([0; 4], 0));
    }
}
