//! # axvm-kvm-arm64: axvm on arm64 Linux KVM
//!
//! The arm64 sibling of `axvm-kvm`: it implements the axvm core's host traits on an arm64
//! `/dev/kvm`, and gives guests the board of `axvm-virt` (the layout of QEMU's `-M virt`):
//!
//! - `Arm64Hal` is the core's `AxVMHal`: guest RAM as anonymous memory in KVM memory slots,
//!   vCPUs made with `KVM_ARM_VCPU_INIT` (PSCI 0.2, secondaries powered off until a
//!   `CPU_ON`), kicks by signal, SPIs through the in-kernel vGIC;
//! - `Arm64VCpu` is the core's `AxArchVCpu`: KVM decodes the data abort's syndrome (width,
//!   sign extension, register) and the core's devices answer the access; PSCI, WFI and the
//!   timer stay in the kernel, and `SYSTEM_OFF`/`SYSTEM_RESET` come back as `SystemDown`;
//! - `Arm64Vm` is the VMM: the in-kernel vGICv3 (v2 where that is what the host has), the
//!   PL011 console, the exit device, a device tree generated from the config when it names
//!   none, the images loaded by `axvm-virt`'s plan (Linux `Image`, ELF, raw), a thread per
//!   vCPU.
//!
//! Everything but this page is built on aarch64 only.
//!
//! ```no_run
//! # #[cfg(target_arch = "aarch64")] {
//! use axvm::config::toml::AxVMCrateConfig;
//! use axvm_kvm_arm64::{Arm64Vm, Arm64VmOptions, BootImages, VmOutcome};
//!
//! let text = std::fs::read_to_string("vm.toml").unwrap();
//! let config = AxVMCrateConfig::from_toml(&text).unwrap().into_vm_config().unwrap();
//! let images = BootImages { kernel: std::fs::read("Image").unwrap(), ..Default::default() };
//! let vm = Arm64Vm::create(config, &images, Arm64VmOptions::default()).unwrap();
//! assert_eq!(vm.run().unwrap(), VmOutcome::Exited(0));
//! # }
//! ```
#![deny(missing_docs)]

#[cfg(target_arch = "aarch64")]
mod boot;
#[cfg(target_arch = "aarch64")]
mod error;
#[cfg(target_arch = "aarch64")]
mod host;
#[cfg(target_arch = "aarch64")]
mod kvm;
#[cfg(target_arch = "aarch64")]
mod vmm;

#[cfg(target_arch = "aarch64")]
pub use axvm_linux::BootImages;
#[cfg(target_arch = "aarch64")]
pub use boot::{device_tree, layout_of, plan_images, BootLayout, ImageFormat};
#[cfg(target_arch = "aarch64")]
pub use error::Arm64Error;
#[cfg(target_arch = "aarch64")]
pub use host::{check_host, HostReport};
#[cfg(target_arch = "aarch64")]
pub use kvm::{Arm64Hal, Arm64VCpu, GicVersion, VCpuStart};
#[cfg(target_arch = "aarch64")]
pub use vmm::{Arm64Vm, Arm64VmOptions, StopHandle, VmOutcome};
