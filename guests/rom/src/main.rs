//! axvm's ROM guest: checks the read-only-memory path. `rom.toml` maps one
//! page at 0x100_0000 read-only (READ|EXECUTE); a guest write there causes a
//! nested page fault that the VMM must swallow, like a write to real ROM,
//! leaving the contents (zero) unchanged. Ordinary RAM must stay writable.
//!
//! Output: `ROM write ignored` and exit 0; `FAIL: ...` and exit 1 if the ROM
//! check fails, exit 2 if the RAM check fails.
#![no_std]
#![no_main]

use rt::io::{mmio_read, mmio_write};
use rt::{check_eq, println};

rt::entry!(main);

/// The read-only page (second entry of `memory_regions` in rom.toml).
const ROM: usize = 0x100_0000;
/// A RAM address well above the image, its stacks and `.bss`.
const RAM_PROBE: usize = 0x80_0000;

const STATUS_ROM: u8 = 1;
const STATUS_RAM: u8 = 2;

fn main(vcpu_id: u32) -> ! {
    if vcpu_id != 0 {
        rt::cpu::halt_forever();
    }
    println!("axvm rom guest: hello from vCPU 0");
    // SAFETY: both addresses are identity-mapped guest memory outside the
    // image; volatile accesses keep every read and write a real access.
    unsafe {
        mmio_write::<u32>(RAM_PROBE, 0xa5a5_5a5a);
        check_eq(
            "RAM u32 read at 0x800000",
            0xa5a5_5a5a,
            mmio_read::<u32>(RAM_PROBE),
            STATUS_RAM,
        );

        check_eq(
            "ROM u32 read at 0x1000000",
            0,
            mmio_read::<u32>(ROM),
            STATUS_ROM,
        );
        mmio_write::<u32>(ROM, 0x5555_5555);
        check_eq(
            "ROM u32 read after write at 0x1000000",
            0,
            mmio_read::<u32>(ROM),
            STATUS_ROM,
        );
    }
    println!("axvm rom guest: ROM write ignored");
    rt::exit(0)
}
