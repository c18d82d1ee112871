//! [`AxVMConfigBuilder`]: a VM config written in Rust instead of TOML.
//!
//! Code that embeds axvm should not have to format a TOML string to describe a VM. The
//! builder sets the same fields a config file does and [`build`](AxVMConfigBuilder::build)
//! refuses the same configs [`AxVMConfig::validate`] refuses, but its errors name the
//! builder call to fix (`ram()` call 2, `entry()`) rather than a TOML path nobody wrote.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::{
    AxVMConfig, ConfigError, EmulatedDeviceConfig, MappingFlags, PassThroughDeviceConfig,
    VMInterruptMode, VmMemConfig, VmMemMappingType,
};
use crate::GuestPhysAddr;

/// Builds an [`AxVMConfig`] call by call; start with [`AxVMConfig::builder`].
///
/// Defaults: one vCPU, no memory, kernel loaded at 0, vCPUs entering where the kernel is
/// loaded (what a raw image needs; image formats that carry an entry use theirs), no
/// devices, no interrupts.
///
/// ```
/// use axvm::{AxVMConfig, GuestPhysAddr};
/// let config = AxVMConfig::builder("tiny")
///     .cpus(2)
///     .ram(0, 16 << 20)
///     .kernel_at(0x8000)
///     .cmdline("console=ttyS0")
///     .build()
///     .unwrap();
/// assert_eq!(config.cpu_num, 2);
/// assert_eq!(config.memory_regions[0].size, 16 << 20);
/// assert_eq!(config.bsp_entry(), GuestPhysAddr::new(0x8000));
///
/// // Refusals name the call to fix.
/// let err = AxVMConfig::builder("tiny").ram(0, 0x1800).build().unwrap_err();
/// assert_eq!(err.field(), Some("ram()/region() call 1"));
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until build() is called"]
pub struct AxVMConfigBuilder {
    config: AxVMConfig,
    /// Whether `entry()` was called; without it the vCPUs enter at the kernel's address.
    entry_set: bool,
    /// Whether `ap_entry()` was called; without it the APs enter where vCPU 0 does.
    ap_entry_set: bool,
}

impl AxVMConfig {
    /// A builder for a config named `name`: see [`AxVMConfigBuilder`].
    pub fn builder(name: &str) -> AxVMConfigBuilder {
        AxVMConfigBuilder {
            config: Self::new(name, 1),
            entry_set: false,
            ap_entry_set: false,
        }
    }
}

impl AxVMConfigBuilder {
    /// The VM's id (`base.id`; default 0), unique on the host.
    pub fn id(mut self, id: usize) -> Self {
        self.config.id = id;
        self
    }

    /// The number of vCPUs (`base.cpu_num`; default 1).
    pub fn cpus(mut self, cpu_num: usize) -> Self {
        self.config.cpu_num = cpu_num;
        self
    }

    /// Pins vCPU `i` to physical CPU `ids[i]` (`base.phys_cpu_ids`).
    pub fn phys_cpu_ids(mut self, ids: Vec<usize>) -> Self {
        self.config.phys_cpu_ids = Some(ids);
        self
    }

    /// Lets vCPU `i` run on the physical CPUs whose bits are set in `masks[i]`
    /// (`base.phys_cpu_sets`).
    pub fn phys_cpu_sets(mut self, masks: Vec<usize>) -> Self {
        self.config.phys_cpu_sets = Some(masks);
        self
    }

    /// Adds `size` bytes of ordinary RAM at guest-physical `gpa`: readable, writable,
    /// executable, allocated by the host (a `memory_regions` row `[gpa, size, 0x7, 0]`).
    pub fn ram(self, gpa: u64, size: u64) -> Self {
        self.region(VmMemConfig {
            gpa: GuestPhysAddr::new(gpa),
            size,
            flags: MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE,
            map_type: VmMemMappingType::MapAlloc,
        })
    }

    /// Adds a memory region with its own flags and mapping type (a `memory_regions` row).
    pub fn region(mut self, region: VmMemConfig) -> Self {
        self.config.memory_regions.push(region);
        self
    }

    /// Loads the kernel image at `gpa` (`kernel.kernel_load_addr`).
    pub fn kernel_at(mut self, gpa: u64) -> Self {
        self.config.image_config.kernel_load_gpa = GuestPhysAddr::new(gpa);
        self
    }

    /// Starts every vCPU at `gpa` (`kernel.entry_point`), for images that do not say.
    pub fn entry(mut self, gpa: u64) -> Self {
        self.config.cpu_config.bsp_entry = GuestPhysAddr::new(gpa);
        self.entry_set = true;
        self
    }

    /// Starts the application processors (every vCPU but 0) at `gpa` instead.
    pub fn ap_entry(mut self, gpa: u64) -> Self {
        self.config.cpu_config.ap_entry = GuestPhysAddr::new(gpa);
        self.ap_entry_set = true;
        self
    }

    /// Loads the ramdisk at `gpa` (`kernel.ramdisk_load_addr`); without it, hosts that place
    /// ramdisks themselves choose.
    pub fn ramdisk_at(mut self, gpa: u64) -> Self {
        self.config.image_config.ramdisk_load_gpa = Some(GuestPhysAddr::new(gpa));
        self
    }

    /// Loads the BIOS image at `gpa` (`kernel.bios_load_addr`).
    pub fn bios_at(mut self, gpa: u64) -> Self {
        self.config.image_config.bios_load_gpa = Some(GuestPhysAddr::new(gpa));
        self
    }

    /// Loads the device tree blob at `gpa` (`kernel.dtb_load_addr`).
    pub fn dtb_at(mut self, gpa: u64) -> Self {
        self.config.image_config.dtb_load_gpa = Some(GuestPhysAddr::new(gpa));
        self
    }

    /// The kernel command line (`kernel.cmdline`).
    pub fn cmdline(mut self, cmdline: &str) -> Self {
        self.config.cmdline = Some(cmdline.into());
        self
    }

    /// Adds an emulated device (an `emu_devices` row).
    pub fn device(mut self, device: EmulatedDeviceConfig) -> Self {
        self.config.emu_devices.push(device);
        self
    }

    /// Adds host memory passed through to the guest (a `passthrough_devices` row).
    pub fn pass_through(mut self, device: PassThroughDeviceConfig) -> Self {
        self.config.pass_through_devices.push(device);
        self
    }

    /// How interrupts are delivered (`devices.interrupt_mode`; default no interrupts).
    pub fn interrupt_mode(mut self, mode: VMInterruptMode) -> Self {
        self.config.interrupt_mode = mode;
        self
    }

    /// The config, checked as [`AxVMConfig::validate`] checks a config file; the error
    /// names the builder call at fault.
    pub fn build(self) -> Result<AxVMConfig, ConfigError> {
        let mut config = self.config;
        if !self.entry_set {
            config.cpu_config.bsp_entry = config.image_config.kernel_load_gpa;
        }
        if !self.ap_entry_set {
            config.cpu_config.ap_entry = config.cpu_config.bsp_entry;
        }
        match config.validate() {
            Ok(()) => Ok(config),
            Err(ConfigError::Invalid { field, problem }) => Err(ConfigError::Invalid {
                field: builder_call(&field),
                problem,
            }),
            Err(other) => Err(other),
        }
    }
}

/// The builder call that set the config field `field` (a TOML path, as validation names it).
fn builder_call(field: &str) -> String {
    let fixed = match field {
        "base.cpu_num" => Some("cpus()"),
        "base.phys_cpu_ids" => Some("phys_cpu_ids()"),
        "base.phys_cpu_sets" => Some("phys_cpu_sets()"),
        "kernel.entry_point" => Some("entry() (or kernel_at(), its default)"),
        "kernel.entry_point (AP entry)" => Some("ap_entry()"),
        _ => None,
    };
    if let Some(call) = fixed {
        return call.into();
    }
    let rows = [
        ("kernel.memory_regions[", "ram()/region()"),
        ("devices.emu_devices[", "device()"),
        ("devices.passthrough_devices[", "pass_through()"),
    ];
    for (prefix, call) in rows {
        let Some(rest) = field.strip_prefix(prefix) else {
            continue;
        };
        let Some((index, after)) = rest.split_once(']') else {
            continue;
        };
        if let Ok(index) = index.parse::<usize>() {
            return format!("{call} call {}{after}", index + 1);
        }
    }
    field.into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EmulatedDeviceType, HostPhysAddr};

    fn device(name: &str, base: u64, length: u64) -> EmulatedDeviceConfig {
        EmulatedDeviceConfig {
            name: name.into(),
            base_gpa: GuestPhysAddr::new(base),
            length,
            irq_id: 0,
            emu_type: EmulatedDeviceType::Dummy,
            cfg_list: Vec::new(),
            backend: None,
        }
    }

    #[test]
    fn the_builder_sets_what_the_toml_file_sets() {
        let config = AxVMConfig::builder("built")
            .id(3)
            .cpus(2)
            .ram(0, 0x100_0000)
            .kernel_at(0x20_0000)
            .entry(0x20_1000)
            .ramdisk_at(0x80_0000)
            .cmdline("quiet")
            .device(device("scratch", 0xfee0_0000, 0x1000))
            .interrupt_mode(VMInterruptMode::Emulated)
            .build()
            .unwrap();
        assert_eq!(config.id, 3);
        assert_eq!(config.name, "built");
        assert_eq!(config.cpu_num, 2);
        assert_eq!(config.bsp_entry(), GuestPhysAddr::new(0x20_1000));
        assert_eq!(config.ap_entry(), GuestPhysAddr::new(0x20_1000));
        let images = config.image_config();
        assert_eq!(images.kernel_load_gpa, GuestPhysAddr::new(0x20_0000));
        assert_eq!(images.ramdisk_load_gpa, Some(GuestPhysAddr::new(0x80_0000)));
        assert_eq!(config.cmdline.as_deref(), Some("quiet"));
        assert_eq!(config.memory_regions[0].flags.bits(), 0x7);
        assert_eq!(config.emu_devices[0].name, "scratch");
        assert_eq!(config.interrupt_mode, VMInterruptMode::Emulated);
    }

    #[test]
    fn without_entry_the_vcpus_start_at_the_kernel() {
        let config = AxVMConfig::builder("raw")
            .ram(0, 0x10_0000)
            .kernel_at(0x8000)
            .build()
            .unwrap();
        assert_eq!(config.bsp_entry(), GuestPhysAddr::new(0x8000));
        assert_eq!(config.ap_entry(), GuestPhysAddr::new(0x8000));
    }

    #[test]
    fn refusals_name_the_builder_call() {
        let no_cpus = AxVMConfig::builder("vm").cpus(0).ram(0, 0x1000).build();
        assert_eq!(no_cpus.unwrap_err().field(), Some("cpus()"));
        let overlap = AxVMConfig::builder("vm")
            .ram(0, 0x10_0000)
            .ram(0x8_0000, 0x1000)
            .build();
        assert_eq!(overlap.unwrap_err().field(), Some("ram()/region() call 2"));
        let outside = AxVMConfig::builder("vm")
            .ram(0, 0x10_0000)
            .entry(0x20_0000)
            .build();
        assert_eq!(
            outside.unwrap_err().field(),
            Some("entry() (or kernel_at(), its default)")
        );
        let on_ram = AxVMConfig::builder("vm")
            .ram(0, 0x10_0000)
            .device(device("scratch", 0x1000, 0x10))
            .build();
        assert_eq!(
            on_ram.unwrap_err().field(),
            Some("device() call 1 (scratch)")
        );
        let empty = AxVMConfig::builder("vm")
            .ram(0, 0x10_0000)
            .pass_through(PassThroughDeviceConfig {
                name: "regs".into(),
                base_gpa: GuestPhysAddr::new(0x4000_0000),
                base_hpa: HostPhysAddr::new(0x4000_0000),
                length: 0,
                irq_id: 0,
            })
            .build();
        assert_eq!(
            empty.unwrap_err().field(),
            Some("pass_through() call 1 (regs)")
        );
    }

    #[test]
    fn the_builder_refuses_what_validate_refuses() {
        let built = AxVMConfig::builder("vm").cpus(300).ram(0, 0x1000).build();
        let mut plain = AxVMConfig::new("vm", 300);
        plain.memory_regions.push(VmMemConfig {
            gpa: GuestPhysAddr::new(0),
            size: 0x1000,
            flags: MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE,
            map_type: VmMemMappingType::MapAlloc,
        });
        let (ConfigError::Invalid { problem: a, .. }, Err(ConfigError::Invalid { problem: b, .. })) =
            (built.unwrap_err(), plain.validate())
        else {
            panic!("both should be refused as invalid");
        };
        assert_eq!(a, b);
    }
}
