//! The ACPI `HPET` table (IA-PC HPET specification 1.0a, section 3.2.4): how a kernel finds
//! the HPET (the KVM host's emulated one, `devices/hpet.rs`) and its capabilities without probing. Linux's
//! `hpet` clocksource and clockevents come from it. Present only when the VM has the HPET.

use super::sdt::{finish_sdt, sdt_header};
use super::PutLe;
use alloc::vec::Vec;

use crate::layout::HPET_ADDRESS;

/// Comparators (timers): three, as QEMU's and the spec's minimum.
pub const HPET_TIMERS: usize = 3;
/// The counter's period in femtoseconds: 10 ns, 100 MHz, as QEMU's HPET.
pub const HPET_PERIOD_FS: u64 = 10_000_000;
/// GCAP_ID: revision 1.
const REVISION: u64 = 1;
/// GCAP_ID: COUNT_SIZE_CAP, the main counter is 64 bits wide.
const COUNT_SIZE_CAP: u64 = 1 << 13;
/// GCAP_ID: LEG_RT_CAP, legacy replacement routing is supported.
const LEG_RT_CAP: u64 = 1 << 15;
/// GCAP_ID: the vendor ID (Intel's, as the chipset QEMU models).
const VENDOR_ID: u64 = 0x8086;
/// The general capabilities and ID register (read-only), whose low half the table repeats.
pub const HPET_CAPABILITIES: u64 = REVISION
    | ((HPET_TIMERS as u64 - 1) << 8)
    | COUNT_SIZE_CAP
    | LEG_RT_CAP
    | (VENDOR_ID << 16)
    | (HPET_PERIOD_FS << 32);

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
