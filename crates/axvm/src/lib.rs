//! # axvm: virtual-machine resource management
//!
//! axvm turns a VM description ([`AxVMConfig`]) into a running virtual machine ([`AxVM`]):
//! it maps guest memory, routes guest device accesses to emulated devices, and runs the
//! vCPU exit loop ([`AxVM::run_vcpu`]). It is `no_std` and knows no operating system and no
//! hypervisor API: the hosting environment plugs in through [`AxVMHal`], and the CPU
//! virtualization backend through [`AxArchVCpu`]. `axvm-kvm` provides both on Linux KVM; a
//! type-1 hypervisor can provide them on bare metal.
//!
//! The names follow the troubleshooting guide of the ArceOS hypervisor's axvm, so its
//! readers find `AxVMConfig`, `AxVMHal`, `run_vcpu`, `read_from_guest_of` and friends where
//! they expect them.
//!
//! ```text
//!   AxVMConfig ──► AxVM::new ──► memory regions (AxVMHal::alloc_memory_region / map_guest_memory)
//!                       │      ├► pass-through ranges (merged, AxVMHal::map_passthrough)
//!                       │      ├► devices (AxVmDevices: ports, MMIO, MSRs)
//!                       │      └► vCPUs (AxVMHal::create_vcpu)
//!                       ▼
//!                  AxVM::boot ──► AxVM::run_vcpu(id) ─► AxArchVCpu::run ─► exit
//!                                        ▲                                  │
//!                                        └── handled: MMIO, port, MSR, NPF ─┘
//!                                            other exits ─► returned to the host
//! ```
//!
//! A program starts from a config, written in Rust ([`AxVMConfig::builder`]) or read from
//! a TOML file ([`config::toml`]); creating the VM from it needs a host, e.g.
//! `axvm_kvm::KvmVm::create` on Linux, or [`AxVM::new_validated`] with your own
//! [`AxVMHal`]:
//!
//! ```
//! use axvm::{AxVMConfig, GuestPhysAddr};
//!
//! let config = AxVMConfig::builder("two-cpus")
//!     .cpus(2)
//!     .ram(0, 16 << 20)
//!     .kernel_at(0x20_0000)
//!     .build()?;
//! assert_eq!(config.bsp_entry(), GuestPhysAddr::new(0x20_0000));
//! // Checked once: AxVM::new_validated takes the result.
//! let valid = config.into_valid()?;
//! assert_eq!(valid.cpu_num, 2);
//!
//! // Refusals name what to fix.
//! let err = AxVMConfig::builder("no-ram").build().unwrap_err();
//! println!("{err}");
//! # Ok::<(), axvm::ConfigError>(())
//! ```
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

mod addr;
pub mod config;
pub mod device;
mod error;
mod hal;
pub mod memory;
pub mod vcpu;
mod vm;

pub use addr::{
    is_page_aligned, AccessWidth, GuestPhysAddr, HostPhysAddr, HostVirtAddr, PAGE_SIZE,
};
pub use config::{
    AxVCpuConfig, AxVMConfig, AxVMConfigBuilder, ConfigError, EmulatedDeviceConfig,
    EmulatedDeviceType, MappingFlags, PassThroughDeviceConfig, VMImageConfig, VMInterruptMode,
    ValidConfig, VmMemConfig, VmMemMappingType,
};
pub use error::{AxVMError, AxVMResult, GuestMemoryError, HostCause};
pub use hal::AxVMHal;
pub use vcpu::{AxArchVCpu, AxVCpuExitReason};
pub use vm::{AxVM, ExitDisposition, ExitEvent, ExitObserver, InstructionPointer, VMStatus};

/// Whether host `hal` can run VMs: the seed's `has_hardware_support()`, asked of the host
/// because only it knows (virtualization extensions, a hypervisor device).
pub fn has_hardware_support<H: AxVMHal>(hal: &H) -> bool {
    hal.has_hardware_support()
}
