//! Tiny runtime for axvm's 64-bit test guests.
//!
//! The guests are freestanding `#![no_std]` programs that exercise the VMM's
//! exits (port I/O, MMIO, MSRs) and report over a 16550 UART. This crate
//! holds what every such guest needs, so each guest is just its checks:
//!
//! * [`entry!`]: the `_start` stub contract (long mode, per-vCPU stacks,
//!   `fn main(vcpu_id: u32) -> !`);
//! * [`io`]: port I/O and volatile MMIO of each width;
//! * [`cpu`]: `cpuid`, MSRs, [`cpu::vcpu_id`], halting;
//! * [`console`]: `print!`/`println!` on COM1;
//! * [`mem`]: `memcpy` and friends, which the compiler calls and no libc
//!   provides here;
//! * [`exit`]: ending the VM with a status byte; the panic handler uses it;
//! * [`check_eq`]: the `FAIL: ... expected ... got ...` assertion;
//! * [`boot32`], [`entry32!`]: the 32-bit entry for Multiboot v1 and PVH
//!   guests (long mode from protected mode) and the AP start-up trampoline;
//! * [`smp`]: INIT-SIPI-SIPI through the local APIC; [`time`]: the TSC
//!   calibrated against the PIT; [`fw_cfg`]: QEMU's firmware configuration
//!   ports; [`firmware`]: the BIOS Data Area, CMOS memory sizes and fw_cfg's
//!   CPU counts and memory map, printed for comparison; [`acpi`]: RSDP, RSDT/XSDT and MADT; [`ramdisk`]: the test
//!   ramdisk format; [`pvh`]: the PVH entry note ([`pvh_note!`]) and
//!   `hvm_start_info`.
//!
//! Everything here runs at CPL0 with interrupts off and is executed by KVM's
//! instruction emulator on nested hosts, so it must stay free of SSE (see the
//! guests' README).
#![no_std]
#![warn(missing_docs)]

pub mod acpi;
pub mod boot32;
mod check;
pub mod console;
pub mod cpu;
mod entry;
mod exit;
pub mod firmware;
pub mod fw_cfg;
pub mod interrupts;
pub mod io;
pub mod mem;
pub mod phys;
pub mod pvh;
pub mod ramdisk;
pub mod smp;
pub mod time;

pub use check::check_eq;
pub use entry::MAX_VCPUS;
pub use exit::{exit, EXIT_PORT};
