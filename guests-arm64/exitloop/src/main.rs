//! axvm's arm64 exit-loop guest: 20 000 stores to the scratch device (one MMIO
//! exit each) and then status 0 to the exit device: 20 001 exits, nothing
//! printed on axvm. The arm64 workload of the exit round-trip figures, like
//! `guests/exitloop` on x86.
//!
//! Under QEMU (no `/axvm-exit@9100000` in the device tree) there is no scratch
//! device: it prints that it skipped the loop and powers off.
#![no_std]
#![no_main]

use rt::{mmio, println};

rt::entry!(main);

/// The stores the loop makes.
const WRITES: u32 = 20_000;

fn main(x0: usize) -> ! {
    // SAFETY: x0 is the device tree's address (the boot contract).
    if !unsafe { rt::on_axvm(x0) } {
        println!("axvm arm64 exit-loop guest: skipped (not axvm: no scratch device)");
        rt::exit(0)
    }
    for i in 0..WRITES {
        // SAFETY: the scratch device of the config's emu_devices (present: on_axvm).
        unsafe { mmio::write32(rt::SCRATCH_BASE, i) };
    }
    rt::exit(0)
}
