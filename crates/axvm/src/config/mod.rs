//! The VM configuration: [`AxVMConfig`] and its parts.
//!
//! A config says what the VM is made of (vCPUs, memory regions, devices) and where its
//! images go. It is plain data; [`AxVMConfig::validate`] refuses what cannot work before any
//! host resource is touched, naming the field at fault.

mod backend;
mod builder;
mod devices;
mod error;
mod flags;
mod overlap;
#[cfg(feature = "toml")]
pub mod toml;
mod valid;
mod validate;

pub use backend::{DeviceBackend, MacAddress, NetBackend};
pub use builder::AxVMConfigBuilder;
pub use valid::ValidConfig;
pub(crate) use validate::pass_through_range_problem;
pub use validate::{MAX_CPU_NUM, MAX_DEVICES, MAX_MEMORY_REGIONS, VIRTIO_MMIO_MIN_LENGTH};

use alloc::string::String;
use alloc::vec::Vec;

pub use devices::{
    EmulatedDeviceConfig, EmulatedDeviceType, PassThroughDeviceConfig, VMInterruptMode,
};
pub use error::ConfigError;
pub use flags::{MappingFlags, VmMemMappingType};

use crate::GuestPhysAddr;

/// Where the vCPUs start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct AxVCpuConfig {
    /// Entry of the bootstrap processor, vCPU 0.
    pub bsp_entry: GuestPhysAddr,
    /// Entry of the application processors, every vCPU but 0.
    pub ap_entry: GuestPhysAddr,
}

/// Where the images go in guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VMImageConfig {
    /// Load address of the kernel image.
    pub kernel_load_gpa: GuestPhysAddr,
    /// Load address of the BIOS image, if there is one.
    pub bios_load_gpa: Option<GuestPhysAddr>,
    /// Load address of the device tree blob, if there is one.
    pub dtb_load_gpa: Option<GuestPhysAddr>,
    /// Load address of the ramdisk, if there is one.
    pub ramdisk_load_gpa: Option<GuestPhysAddr>,
}

/// One region of guest memory (a `memory_regions` entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmMemConfig {
    /// Guest-physical start.
    pub gpa: GuestPhysAddr,
    /// Size in bytes.
    pub size: u64,
    /// What the guest may do with it.
    pub flags: MappingFlags,
    /// Where its host memory comes from.
    pub map_type: VmMemMappingType,
}

impl VmMemConfig {
    /// First guest-physical address after the region (saturating: validation refuses
    /// regions that wrap).
    pub fn end(&self) -> GuestPhysAddr {
        GuestPhysAddr::new(self.gpa.as_u64().saturating_add(self.size))
    }

    /// Whether `gpa` lies inside the region.
    pub fn contains(&self, gpa: GuestPhysAddr) -> bool {
        self.gpa <= gpa && gpa < self.end()
    }
}

/// The whole description of one VM: the seed's `AxVMConfig`.
///
/// Build one with [`AxVMConfig::builder`], read one from a file with
/// [`toml::AxVMCrateConfig`] (feature `toml`), or fill the fields:
///
/// ```
/// use axvm::{AxVMConfig, GuestPhysAddr, MappingFlags, VmMemConfig, VmMemMappingType};
/// let mut config = AxVMConfig::new("tiny", 1);
/// config.memory_regions.push(VmMemConfig {
///     gpa: GuestPhysAddr::new(0),
///     size: 0x10_0000,
///     flags: MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE,
///     map_type: VmMemMappingType::MapAlloc,
/// });
/// config.cpu_config.bsp_entry = GuestPhysAddr::new(0x8000);
/// config.cpu_config.ap_entry = GuestPhysAddr::new(0x8000);
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AxVMConfig {
    /// VM id, unique on the host.
    pub id: usize,
    /// VM name, for messages.
    pub name: String,
    /// The ArceOS VM type (0 host VM, 1 RTOS, 2 Linux); informational here.
    pub vm_type: usize,
    /// Number of vCPUs.
    pub cpu_num: usize,
    /// Per-vCPU physical CPU id (vCPU i runs on `phys_cpu_ids[i]`).
    pub phys_cpu_ids: Option<Vec<usize>>,
    /// Per-vCPU affinity bitmask of physical CPUs.
    pub phys_cpu_sets: Option<Vec<usize>>,
    /// Entry points.
    pub cpu_config: AxVCpuConfig,
    /// Image load addresses.
    pub image_config: VMImageConfig,
    /// Kernel command line, for boot protocols that pass one.
    pub cmdline: Option<String>,
    /// Guest memory.
    pub memory_regions: Vec<VmMemConfig>,
    /// Devices axvm emulates.
    pub emu_devices: Vec<EmulatedDeviceConfig>,
    /// Host memory passed through to the guest.
    pub pass_through_devices: Vec<PassThroughDeviceConfig>,
    /// How interrupts are delivered.
    pub interrupt_mode: VMInterruptMode,
}

impl AxVMConfig {
    /// An empty config with `cpu_num` vCPUs and no memory: a starting point for code that
    /// builds configs without a file.
    pub fn new(name: &str, cpu_num: usize) -> Self {
        Self {
            name: name.into(),
            cpu_num,
            ..Self::default()
        }
    }

    /// Entry point of vCPU 0.
    pub fn bsp_entry(&self) -> GuestPhysAddr {
        self.cpu_config.bsp_entry
    }

    /// Entry point of every other vCPU.
    pub fn ap_entry(&self) -> GuestPhysAddr {
        self.cpu_config.ap_entry
    }

    /// Image load addresses.
    pub fn image_config(&self) -> &VMImageConfig {
        &self.image_config
    }

    /// Guest memory regions.
    pub fn memory_regions(&self) -> &[VmMemConfig] {
        &self.memory_regions
    }

    /// Emulated devices.
    pub fn emu_devices(&self) -> &[EmulatedDeviceConfig] {
        &self.emu_devices
    }

    /// Pass-through devices.
    pub fn pass_through_devices(&self) -> &[PassThroughDeviceConfig] {
        &self.pass_through_devices
    }

    /// Interrupt delivery mode.
    pub fn interrupt_mode(&self) -> VMInterruptMode {
        self.interrupt_mode
    }

    /// The index of the memory region holding `gpa`, if one does.
    pub fn region_containing(&self, gpa: GuestPhysAddr) -> Option<usize> {
        self.memory_regions.iter().position(|r| r.contains(gpa))
    }
}
