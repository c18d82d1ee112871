//! Tiny runtime for axvm's arm64 test guests.
//!
//! The guests are freestanding `#![no_std]` programs for `aarch64-unknown-none`
//! that run with the MMU off on the arm64 contract's board (axvm's, or QEMU
//! `-M virt`) and report over its PL011. This crate holds what each needs:
//!
//! * [`entry!`]: the `_start` stub (per-vCPU stack from MPIDR, `.bss`
//!   zeroed, FP/SIMD on, vector table) calling `fn main(dtb: usize) -> !`;
//! * [`console`]: `print!`/`println!`/`fail!` on the PL011;
//! * [`exit()`]: the exit device, with PSCI as the fallback where there is
//!   none; the panic handler (status 101);
//! * [`psci`]: PSCI over HVC: [`psci::cpu_on`], [`psci::system_off`], ...;
//! * [`mmio`]: single-instruction loads and stores of each width, signed too;
//! * [`fdt`]: the device tree's magic and root nodes;
//! * [`gic`], [`timer`], [`vectors`]: GICv3 PPIs, the virtual timer, IRQ
//!   handlers.
#![no_std]
#![warn(missing_docs)]

pub mod console;
mod entry;
mod exit;
pub mod fdt;
pub mod gic;
pub mod mmio;
pub mod psci;
pub mod timer;
pub mod vectors;

pub use entry::MAX_VCPUS;
pub use exit::{exit, park, EXIT_DEVICE, PANIC_STATUS};

/// Guest-physical base of the scratch device (axvm's `Dummy`, emu_type 0)
/// the guests' configs put in `emu_devices`: registers that read back what
/// was written. QEMU has nothing there.
pub const SCRATCH_BASE: usize = 0x0a10_0000;

/// The root node naming axvm's exit device in the device tree axvm generates:
/// its presence tells a guest it runs on axvm (and so has the exit and
/// scratch devices), not on QEMU virt.
pub const AXVM_EXIT_NODE: &str = "axvm-exit@9100000";

/// Whether the device tree at `dtb` says the guest runs on axvm (has
/// [`AXVM_EXIT_NODE`]). A missing (`dtb` 0) or malformed tree says no.
///
/// # Safety
/// `dtb` must be 0 or readable memory holding a device tree (or 4 readable
/// bytes without the magic).
pub unsafe fn on_axvm(dtb: usize) -> bool {
    if dtb == 0 {
        return false;
    }
    // SAFETY: the caller vouches for the memory.
    unsafe { fdt::Fdt::new(dtb) }.is_ok_and(|tree| tree.has_root_child(AXVM_EXIT_NODE))
}
