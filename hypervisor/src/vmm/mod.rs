//! The VM side of the kernel. This is a stub for the bring-up: it lists the modules, has every
//! AP say hello through `smp::run_on_aps` and exits QEMU with 0. The integrator replaces it.

use crate::{boot, hv_println, qemu};

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
    qemu::exit(0)
}
