//! # axvm-kvm: axvm on Linux KVM
//!
//! Implements the axvm core's host traits on `/dev/kvm`, so the core runs real VMs:
//! [`KvmHal`] is an [`axvm::AxVMHal`] (guest RAM as anonymous memory registered as KVM
//! memory slots, vCPUs as KVM vCPUs, kicks by signal, interrupts through the in-kernel
//! irqchip) and [`KvmVCpu`] an [`axvm::AxArchVCpu`]. On top, [`KvmVm`] is a small VMM:
//! it adds the PC platform devices, loads images ([`boot`]) and runs one thread per vCPU.
//!
//! The folders are the architecture: `kvm/` talks to the kernel (nothing else issues an
//! ioctl), `devices/` holds one emulated device per file, `boot/` loads images,
//! `platform/` holds each machine's guest-physical layout.
//!
//! A VM is described by an [`axvm::AxVMConfig`] (from [`axvm::AxVMConfig::builder`], or a
//! TOML file as below), created with its images by [`KvmVm::create`] and run by
//! [`KvmVm::run`]; a [`StopHandle`] ends the run from another thread; [`VmOptions`] says
//! where the console goes, what it reads, and adds devices of your own. The crate's
//! `examples/` (`boot_kernel`, `my_device`) are complete programs.
//!
//! ```no_run
//! use axvm::config::toml::AxVMCrateConfig;
//! use axvm_kvm::{BootImages, KvmVm, VmOptions, VmOutcome};
//!
//! let text = std::fs::read_to_string("vm.toml").unwrap();
//! let config = AxVMCrateConfig::from_toml(&text).unwrap().into_vm_config().unwrap();
//! let images = BootImages { kernel: std::fs::read("kernel.bin").unwrap(), ..Default::default() };
//! let vm = KvmVm::create(config, &images, VmOptions::default()).unwrap();
//! assert_eq!(vm.run().unwrap(), VmOutcome::Exited(0));
//! ```

pub mod boot;
pub mod devices;
pub mod diagnostics;
mod error;
pub mod kvm;
pub mod plan;
pub mod platform;
mod stop_handle;
mod vmm;

pub use boot::{BootImages, BootPlan, ImageFormat};
pub use diagnostics::DiagnosticsOptions;
pub use error::{Error, KvmError};
pub use kvm::{
    check_host, BootRegs, CpuMode, HostFinding, HostReport, KvmHal, KvmVCpu, StartPolicy, VCpuBoot,
};
pub use plan::VmPlan;
pub use stop_handle::StopHandle;
pub use vmm::{KvmVm, VmOptions, VmOutcome};
