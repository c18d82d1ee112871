//! # axvm-kvm: axvm on Linux KVM
//!
//! Implements the axvm core's host traits on `/dev/kvm`, so the core runs real VMs:
//! [`KvmHal`] is an [`axvm::AxVMHal`] (guest RAM as anonymous memory registered as KVM
//! memory slots, vCPUs as KVM vCPUs, kicks by signal, interrupts through the in-kernel
//! irqchip) and [`KvmVCpu`] an [`axvm::AxArchVCpu`]. On top, [`KvmVm`] is a small VMM:
//! it adds the PC platform devices, loads images ([`BootImages`], by the boot protocol
//! their headers name) and runs one thread per vCPU.
//!
//! Everything a program needs is at the crate root; the modules are private. The folders
//! are the architecture: `kvm/` talks to the kernel (nothing else issues an ioctl),
//! `devices/` holds one emulated device per file, `boot/` loads images, `platform/` holds
//! each machine's guest-physical layout.
//!
//! A VM is described by an [`axvm::AxVMConfig`] (from [`axvm::AxVMConfig::builder`], or a
//! TOML file as below), created with its images by [`KvmVm::create`] and run by
//! [`KvmVm::run`]; a [`StopHandle`] ends the run from another thread; [`VmOptions`] says
//! where the console goes, what it reads, which [`DiagnosticsOptions`] are on, and adds
//! devices of your own. [`VmPlan::for_config`] says what axvm will do with a config and its
//! images, without creating anything, and [`check_host`] whether this host can run VMs.
//! The crate's `examples/` (`boot_kernel`, `my_device`) are complete programs.
//!
//! Planning needs no KVM:
//!
//! ```
//! use axvm::AxVMConfig;
//! use axvm_kvm::{BootImages, ImageFormat, VmPlan};
//!
//! // 1 MiB of RAM at 0; a raw image (here `hlt`) is loaded at 0x8000 and entered there.
//! let config = AxVMConfig::builder("hello").ram(0, 1 << 20).kernel_at(0x8000).build()?;
//! let images = BootImages { kernel: vec![0xf4], ..Default::default() };
//! let plan = VmPlan::for_config(&config, &images)?;
//! assert_eq!(plan.format, ImageFormat::Raw);
//! assert_eq!(plan.bsp_entry.as_u64(), 0x8000);
//! # Ok::<(), axvm::ConfigError>(())
//! ```
//!
//! Running needs `/dev/kvm` (`axvm check` says whether this host has it):
//!
//! ```no_run
//! use axvm::config::toml::AxVMCrateConfig;
//! use axvm_kvm::{BootImages, KvmVm, VmOptions, VmOutcome};
//!
//! let text = std::fs::read_to_string("vm.toml")?;
//! let config = AxVMCrateConfig::from_toml(&text)?.into_vm_config()?;
//! let images = BootImages { kernel: std::fs::read("kernel.bin")?, ..Default::default() };
//! let vm = KvmVm::create(config, &images, VmOptions::default())?;
//! assert_eq!(vm.run()?, VmOutcome::Exited(0));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// The modules are private: a type a public item hands out but the root does not
// re-export would be usable yet unnameable (and undocumented). This lint catches it.
#![warn(unnameable_types)]
#![deny(missing_docs)]

mod boot;
mod devices;
mod diagnostics;
mod error;
mod gdb;
mod kvm;
mod plan;
mod platform;
pub use axvm_linux::sandbox;
pub mod testing;
mod vm_memory_view;
mod vmm;

pub use boot::{
    boot_cmdline, kernel_cmdline, BootImages, BootPlan, ImageFormat, RamdiskPlacement,
    DEFAULT_KERNEL_NAME,
};
pub use devices::{
    is_virtio, BackendEvent, DeviceFault, Disk, FramePort, GuestRam, NetCounters, QueueContext,
    Switch, SwitchPort, Tap, VirtioBlock, VirtioDevice, VirtioInterrupt, VirtioMmio, VirtioNet,
    VirtioThread, MAX_FRAME_LEN, NET_HDR_LEN, PORT_QUEUE_FRAMES, VIRTIO_F_VERSION_1,
};
pub use devices::{Hpet, HpetLines, NoLines};
pub use devices::{StopNote, CONSOLE_BUFFER_BYTES, DRAIN_PATIENCE};
pub use diagnostics::stats::{ExitStats, ExitTally, ExitTarget};
pub use diagnostics::trace::ExitTrace;
pub use diagnostics::{Diagnostics, DiagnosticsOptions};
pub use error::{Error, KvmError};
pub use gdb::GdbOptions;
pub use kvm::{
    check_host, BootRegs, CpuMode, DebugStop, DebugSupport, GuestDebug, HostFinding, HostLimits,
    HostReport, KvmHal, KvmVCpu, RecentExit, StartPolicy, VCpuBoot, VCpuThreadGuard, VcpuRegisters,
    MAX_SLOT_BYTES, RECENT_EXITS,
};
pub use kvm::{emulated_hpet, has_in_kernel_irqchip, pass_through_plan};
pub use plan::{PlannedRange, RegionFate, VmPlan};
/// Ends a running [`KvmVm::run`] from another thread (see [`axvm_linux::StopHandle`]).
///
/// ```no_run
/// use std::time::Duration;
/// use axvm::AxVMConfig;
/// use axvm_kvm::{BootImages, KvmVm, VmOptions, VmOutcome};
///
/// let config = AxVMConfig::builder("spin").ram(0, 1 << 20).kernel_at(0x8000).build().unwrap();
/// let images = BootImages { kernel: vec![0xeb, 0xfe], ..Default::default() }; // jmp $
/// let vm = KvmVm::create(config, &images, VmOptions::default()).unwrap();
/// let stop = vm.stop_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(100));
///     stop.stop();
/// });
/// assert_eq!(vm.run().unwrap(), VmOutcome::Stopped);
/// ```
pub type StopHandle = axvm_linux::StopHandle<KvmHal>;
pub use vmm::{KvmVm, VmOptions, VmOutcome};
