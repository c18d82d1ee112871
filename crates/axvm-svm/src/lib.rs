//! The AMD SVM backend for axvm (issue 12): what a minimal type-1 hypervisor kernel needs to
//! run axvm's core on bare metal.
//!
//! This crate is `no_std` (with `alloc`) and makes no OS calls, so that the same code builds
//! for the host (where its unit tests run) and for `x86_64-unknown-none` (the
//! kernel). It depends on the core `axvm` only, never on the KVM host.
//!
//! What is here:
//! - [`vcpu`]: [`SvmVCpu`], the core's [`AxArchVCpu`](axvm::AxArchVCpu) on a VMCB: `VMRUN`
//!   with the guest's registers saved and restored around it (and the host's FS/GS/TR/MSR
//!   state kept with a `VMSAVE`/`VMLOAD` pair), the boot state of each mode (the same as
//!   the KVM host's `VCpuBoot`), start-up IPIs for application processors, CPUID answered
//!   inside the backend, the guest's EFER emulated, MMIO instructions read through the
//!   guest's page tables when the processor has no decode assists, interrupts queued for
//!   the guest as virtual interrupts ([`SvmVCpu::queue_interrupt`]), and
//!   [`SvmVCpu::describe_state`] for exits nobody handles.
//! - [`cpu`]: the processor's SVM features, and [`cpu::enable_svm`] for each CPU.
//! - [`memory`]: [`memory::HostMemory`], what the vCPU needs from the kernel's memory, and
//!   the VM's shared permission maps ([`memory::PermissionMaps`]).
//! - [`vmcb`]: the VMCB control and state-save areas with the AMD APM vol. 2 (appendix B)
//!   offsets, the intercept bits and the exit codes.
//! - [`exit`]: turning a `#VMEXIT` (exit code, EXITINFO1/2, guest registers, instruction
//!   bytes) into the core's [`AxVCpuExitReason`](axvm::AxVCpuExitReason), with the same
//!   widths and register-extension rules the KVM host produces.
//! - [`npt`]: 4-level nested page tables built from the VM's memory regions, on memory the
//!   host kernel supplies through [`npt::PageTableMemory`].
//! - [`iopm`] and [`msrpm`]: the I/O and MSR permission maps.
//!
//! What the host kernel does: call [`cpu::enable_svm`] once on every CPU that runs vCPUs
//! (with a page of its own for VM_HSAVE_PA); build the VM's [`npt::NestedPageTables`] and
//! [`memory::PermissionMaps`] once; create each vCPU with [`SvmVCpu::new`]; call `run` with
//! RFLAGS.IF set if host interrupts (a kick IPI) must be able to stop the guest — they exit
//! it as [`AxVCpuExitReason::Interrupted`](axvm::AxVCpuExitReason::Interrupted) and are
//! taken by the host's IDT inside `run` — or, after
//! [`SvmVCpu::set_host_interrupts_always_exit`], with IF clear: the guest then exits on a
//! host interrupt all the same, and the interrupt waits for the caller to set IF (no kick
//! is lost between a host's last check for work and `VMRUN`). `smoke/run.sh` runs five guests this way under
//! QEMU (`-cpu EPYC`).
//!
//! The guest-visible local APIC, IOAPIC and PIT are the host's (`axvm_pc`'s emulations in
//! the hypervisor): it queues their interrupts with [`SvmVCpu::queue_interrupt`] and starts
//! APs with [`SvmVCpu::start_at_sipi`].
//!
//! Still to come: string I/O (INS/OUTS), MMIO instructions other than MOV/MOVZX/MOVSX/MOVSXD,
//! AND/OR/XOR into a register, BT with an immediate and TEST (read-modify-write ones such
//! as `or [mem], reg` in particular), x87/SSE/AVX state switching (needed once one CPU runs
//! several vCPUs), and freeing a vCPU's pages.

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

pub use vcpu::{InjectError, SvmError, SvmVCpu, VCpuResources};
