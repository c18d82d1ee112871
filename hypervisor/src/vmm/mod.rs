//! The VM side of the kernel. This is a stub for the bring-up: it lists the modules, has every
//! AP say hello through [`smp::run_on_aps`] and exits QEMU with 0. The integrator replaces it.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::{boot, hv_println, qemu, smp, time};

static HELLOS: AtomicUsize = AtomicUsize::new(0);

fn hello(cpu: usize) {
    hv_println!(
        "cpu {cpu}: hello from AP (this_cpu() = {})",
        smp::this_cpu()
    );
    HELLOS.fetch_add(1, Ordering::AcqRel);
}

/// Runs the VMs; here, the bring-up check described in the module doc.
pub fn main() -> ! {
    hv_println!("cmdline: {:?}", boot::cmdline());
    hv_println!("{} module(s):", boot::modules().len());
    for module in boot::modules() {
        hv_println!(
            "  {} ({} bytes at {:#x})",
            module.name,
            module.bytes.len(),
            module.phys
        );
    }
    smp::run_on_aps(hello);
    let aps = smp::cpu_count() - 1;
    let deadline = time::now_nanos() + 1_000_000_000;
    while HELLOS.load(Ordering::Acquire) < aps && time::now_nanos() < deadline {
        core::hint::spin_loop();
    }
    let hellos = HELLOS.load(Ordering::Acquire);
    hv_println!("{hellos} of {aps} AP(s) said hello");
    qemu::exit(if hellos == aps { 0 } else { 1 })
}
