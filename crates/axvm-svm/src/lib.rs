//! The first pieces of an AMD SVM backend for axvm (issue 12): the building blocks a
//! minimal type-1 hypervisor kernel needs to run axvm's core on bare metal.
//!
//! This crate is `no_std` (with `alloc`) and makes no OS calls, so that the same code builds
//! for the host (where its unit tests run) and for `x86_64-unknown-none` (the future
//! kernel). It depends on the core `axvm` only, never on the KVM host.
//!
//! What is here:
//! - [`vmcb`]: the VMCB control and state-save areas with the AMD APM vol. 2 (appendix B)
//!   offsets, the intercept bits and the exit codes.
//! - [`exit`]: turning a `#VMEXIT` (exit code, EXITINFO1/2, guest registers, decode-assist
//!   bytes) into the core's [`AxVCpuExitReason`](axvm::AxVCpuExitReason), with the same
//!   widths and register-extension rules the KVM host produces.
//! - [`npt`]: 4-level nested page tables built from the VM's memory regions, on memory the
//!   host kernel supplies through [`npt::PageTableMemory`].
//! - [`iopm`] and [`msrpm`]: the I/O and MSR permission maps.
//!
//! Still to come: the `AxArchVCpu` implementation around VMRUN (guest state save/restore,
//! event injection, INIT/SIPI for application processors), CPUID answers, string I/O, MMIO
//! decoding without decode assists (reading the guest's instruction through its page
//! tables), and the type-1 kernel booted by QEMU (`-cpu EPYC`) that embeds the core through
//! this backend.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod cpu;
pub mod exit;
pub mod iopm;
pub mod memory;
pub mod msrpm;
pub mod npt;
pub mod vcpu;
pub mod vmcb;

pub use vcpu::{SvmError, SvmVCpu, VCpuResources};
