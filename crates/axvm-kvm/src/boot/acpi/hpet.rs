//! The ACPI `HPET` table (IA-PC HPET specification 1.0a, section 3.2.4): how a kernel finds
//! the emulated HPET (`devices/hpet.rs`) and its capabilities without probing. Linux's
//! `hpet` clocksource and clockevents come from it. Present only when the VM has the HPET.

use super::sdt::{finish_sdt, sdt_header};
use super::PutLe;
use crate::devices::HPET_CAPABILITIES;
use crate::platform::pc::layout::HPET_ADDRESS;

/// The table's length: the header, then 20 bytes.
pub(super) const HPET_TABLE_LEN: usize = 56;
/// The least period a periodic timer is used with, in counter ticks (1.28 µs at 100 MHz):
/// what PC firmware commonly declares.
const MINIMUM_TICK: u16 = 128;

/// The `HPET` table for the HPET at `HPET_ADDRESS`.
pub(super) fn hpet_table() -> Vec<u8> {
    let mut table = sdt_header(b"HPET", 1);
    table
        // 36: event timer block ID: the capabilities register's low half (revision,
        // comparators, counter size, legacy replacement, vendor).
        .put_u32(HPET_CAPABILITIES as u32)
        // 40: base address, a generic address in system memory: 64-bit registers.
        .put_u8(0)
        .put_u8(64)
        .put_u8(0)
        .put_u8(0)
        .put_u64(HPET_ADDRESS)
        .put_u8(0) // 52: HPET number
        .put_u16(MINIMUM_TICK) // 53
        .put_u8(0); // 55: page protection: none declared
    debug_assert_eq!(table.len(), HPET_TABLE_LEN);
    finish_sdt(table)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{le, sum};
    use super::*;

    #[test]
    fn the_table_names_the_block_at_0xfed00000_with_its_capabilities() {
        let table = hpet_table();
        assert_eq!(
            (&table[..4], table.len(), sum(&table)),
            (&b"HPET"[..], 56, 0)
        );
        let id = le::<4>(&table, 36);
        assert_eq!(id & 0xff, 1, "revision");
        assert_eq!((id >> 8 & 0x1f) + 1, 3, "comparators");
        assert_ne!(id & 1 << 13, 0, "64-bit counter");
        assert_ne!(id & 1 << 15, 0, "legacy replacement capable");
        assert_eq!(id >> 16, 0x8086, "vendor");
        assert_eq!(table[40], 0, "system memory");
        assert_eq!(le::<8>(&table, 44), 0xfed0_0000);
        assert_eq!((table[52], le::<2>(&table, 53)), (0, 128));
    }
}
