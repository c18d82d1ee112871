//! MMIO exits of each width, against the "scratch" device of `demo.toml`
//! (ArceOS emu_type 0, Dummy): it stores what is written and returns it,
//! little-endian and honouring the access width, initially all zero.

use rt::io::{mmio_read, mmio_write};
use rt::{check_eq, println};

/// Guest-physical base of the scratch device (`emu_devices` in demo.toml).
const SCRATCH: usize = 0xfeb0_0000;

/// Runs the checks; prints a line ending in `OK` or exits with a FAIL.
pub fn check() {
    // SAFETY: the scratch page is identity-mapped device memory with no
    // side effects besides storing what is written; accesses are aligned.
    unsafe {
        mmio_write::<u32>(SCRATCH + 0x10, 0x1234_5678);
        check_eq(
            "MMIO u32 read at 0x10",
            0x1234_5678,
            mmio_read::<u32>(SCRATCH + 0x10),
            10,
        );
        check_eq(
            "MMIO u8 read at 0x10",
            0x78,
            mmio_read::<u8>(SCRATCH + 0x10),
            11,
        );
        check_eq(
            "MMIO u16 read at 0x12",
            0x1234,
            mmio_read::<u16>(SCRATCH + 0x12),
            12,
        );
        // The 4 bytes above 0x13 were never written: a 64-bit read must see
        // them as zero, not as stale register contents.
        check_eq(
            "MMIO u64 read at 0x10",
            0x1234_5678,
            mmio_read::<u64>(SCRATCH + 0x10),
            13,
        );
        mmio_write::<u64>(SCRATCH + 0x20, 0xfedc_ba98_7654_3210);
        check_eq(
            "MMIO u64 read at 0x20",
            0xfedc_ba98_7654_3210,
            mmio_read::<u64>(SCRATCH + 0x20),
            14,
        );
    }
    println!("axvm demo guest: MMIO OK");
}
