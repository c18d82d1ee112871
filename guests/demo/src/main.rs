//! axvm's demo guest: brings up a second vCPU, then checks MMIO, port I/O and
//! MSR exits against the devices configured in `demo.toml`.
//!
//! Output (the integration tests match on these substrings): `vCPU 0`,
//! `vCPU 1`, `MMIO OK`, `port I/O OK`, `MSR OK`, `all checks passed`; on a
//! failed check `FAIL: ...` and a distinct non-zero exit status.
#![no_std]
#![no_main]

mod mmio;
mod msr;
mod pio;
mod smp;

use rt::println;

rt::entry!(main);

/// Every vCPU starts here: vCPU 0 runs the checks, vCPU 1 says hello when
/// released, any other vCPU just halts.
fn main(vcpu_id: u32) -> ! {
    match vcpu_id {
        0 => bsp(),
        1 => smp::ap(),
        _ => rt::cpu::halt_forever(),
    }
}

fn bsp() -> ! {
    println!("axvm demo guest: hello from vCPU 0 (BSP)");
    smp::release_ap_and_wait();
    mmio::check();
    pio::check();
    msr::check();
    println!("axvm demo guest: all checks passed");
    rt::exit(0)
}
