//! Refusing configs that cannot work, before any host resource is touched.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::overlap::{first_earlier_overlapping, first_overlapping, Span};
use super::{
    AxVMConfig, ConfigError, EmulatedDeviceConfig, EmulatedDeviceType, MappingFlags, VmMemConfig,
};
use crate::{is_page_aligned, GuestPhysAddr, PAGE_SIZE};

/// The most vCPUs a VM may have: xAPIC ids are 8 bits and 0xff is the broadcast id.
pub const MAX_CPU_NUM: usize = 254;

/// The most memory regions a config may have: 1 Mi (1 048 576).
///
/// Each region becomes one host mapping, and hosts can map far fewer: KVM has at most
/// 32 764 memory slots per address space (509 on older kernels), and Linux lets a process
/// hold 65 530 mappings by default. The core does not know its host, so this cap is
/// generous, above any host's; it exists so that a config cannot make validation and the
/// region table grow without bound. Hosts refuse what they cannot map (the KVM host checks
/// its slot count).
pub const MAX_MEMORY_REGIONS: usize = 1 << 20;

/// The most entries `devices.emu_devices` and `devices.passthrough_devices` may each have:
/// 64 Ki (65 536), far more than any machine has devices. Every emulated device is an entry
/// in the VM's device table and every pass-through range a host mapping; the cap bounds the
/// work a config can ask of validation and VM creation.
pub const MAX_DEVICES: usize = 1 << 16;

fn region_field(index: usize) -> String {
    format!("kernel.memory_regions[{index}]")
}

fn emu_field(index: usize, name: &str) -> String {
    format!("devices.emu_devices[{index}] ({name})")
}

impl AxVMConfig {
    /// Refuses the config with the first problem found; see [`problems`](Self::problems).
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.problems().into_iter().next() {
            Some(problem) => Err(problem),
            None => Ok(()),
        }
    }

    /// Every reason this config cannot work, in field order (empty when it is fine).
    ///
    /// Checks: at least one vCPU; affinity lists no longer than `cpu_num`; at most
    /// [`MAX_MEMORY_REGIONS`] memory regions and [`MAX_DEVICES`] devices of each kind; memory
    /// regions non-empty, page-aligned, not wrapping, not overlapping, without the DEVICE
    /// flag; entry points inside RAM; device ranges non-empty, not wrapping (pass-through
    /// ranges not even once rounded out to whole pages), and emulated devices not
    /// overlapping RAM or each other.
    ///
    /// Overlaps are found by sorting, in O(n log n); when several regions overlap, each is
    /// reported against the lowest-indexed earlier one it overlaps.
    pub fn problems(&self) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        self.check_cpus(&mut problems);
        self.check_regions(&mut problems);
        self.check_entries(&mut problems);
        self.check_devices(&mut problems);
        problems
    }

    /// Refuses an image of `len` bytes at `gpa` unless it lies inside one RAM region.
    /// `field` names the load-address field, for the message.
    ///
    /// ```
    /// use axvm::{AxVMConfig, GuestPhysAddr, MappingFlags, VmMemConfig, VmMemMappingType};
    /// let mut config = AxVMConfig::new("vm", 1);
    /// config.memory_regions.push(VmMemConfig {
    ///     gpa: GuestPhysAddr::new(0),
    ///     size: 0x10_0000,
    ///     flags: MappingFlags::READ | MappingFlags::WRITE,
    ///     map_type: VmMemMappingType::MapAlloc,
    /// });
    /// let at = GuestPhysAddr::new(0xf_f000);
    /// assert!(config.check_image_fits("kernel.kernel_load_addr", at, 0x1000).is_ok());
    /// let err = config.check_image_fits("kernel.kernel_load_addr", at, 0x2000).unwrap_err();
    /// assert_eq!(err.field(), Some("kernel.kernel_load_addr"));
    /// ```
    pub fn check_image_fits(
        &self,
        field: &str,
        gpa: GuestPhysAddr,
        len: u64,
    ) -> Result<(), ConfigError> {
        let Some(index) = self.region_containing(gpa) else {
            return Err(ConfigError::invalid(
                field,
                format!("{gpa} is not inside any memory region, so a {len:#x}-byte image cannot be loaded there; add a region or move the image"),
            ));
        };
        let region = &self.memory_regions[index];
        let image_end = gpa.as_u64().checked_add(len);
        match image_end {
            Some(end) if end <= region.end().as_u64() => Ok(()),
            _ => Err(ConfigError::invalid(
                field,
                format!(
                    "a {len:#x}-byte image at {gpa} does not fit: {} ends at {}, {:#x} bytes short; enlarge the region or load the image lower",
                    region_field(index),
                    region.end(),
                    gpa.as_u64().saturating_add(len) - region.end().as_u64(),
                ),
            )),
        }
    }

    fn check_cpus(&self, problems: &mut Vec<ConfigError>) {
        if self.cpu_num == 0 {
            problems.push(ConfigError::invalid("base.cpu_num", "must be at least 1"));
        } else if self.cpu_num > MAX_CPU_NUM {
            problems.push(ConfigError::invalid(
                "base.cpu_num",
                format!(
                    "{} vCPUs are more than the {MAX_CPU_NUM} an x86 xAPIC can address",
                    self.cpu_num
                ),
            ));
        }
        let lists = [
            ("base.phys_cpu_ids", &self.phys_cpu_ids),
            ("base.phys_cpu_sets", &self.phys_cpu_sets),
        ];
        for (field, list) in lists {
            if let Some(list) = list {
                if list.len() > self.cpu_num {
                    problems.push(ConfigError::invalid(
                        field,
                        format!(
                            "has {} entries but base.cpu_num is {}: give at most one entry per vCPU",
                            list.len(),
                            self.cpu_num
                        ),
                    ));
                }
            }
        }
    }

    fn check_regions(&self, problems: &mut Vec<ConfigError>) {
        if let Some(problem) = too_many(
            "kernel.memory_regions",
            self.memory_regions.len(),
            MAX_MEMORY_REGIONS,
            "memory regions",
        ) {
            problems.push(problem);
            return;
        }
        for (index, region) in self.memory_regions.iter().enumerate() {
            if let Some(problem) = region_problem(region) {
                problems.push(ConfigError::invalid(region_field(index), problem));
            }
        }
        let earlier = first_earlier_overlapping(&self.ram_spans());
        for (index, other) in earlier.into_iter().enumerate() {
            let Some(other) = other else { continue };
            let region = &self.memory_regions[index];
            problems.push(ConfigError::invalid(
                region_field(index),
                format!(
                    "{}..{} overlaps {} ({}..{}); regions must not share addresses",
                    region.gpa,
                    region.end(),
                    region_field(other),
                    self.memory_regions[other].gpa,
                    self.memory_regions[other].end()
                ),
            ));
        }
    }

    fn ram_spans(&self) -> Vec<Span> {
        let spans = self.memory_regions.iter();
        spans.map(|r| Span::new(r.gpa.as_u64(), r.size)).collect()
    }

    pub(super) fn check_entries(&self, problems: &mut Vec<ConfigError>) {
        let entries = [
            ("kernel.entry_point", self.cpu_config.bsp_entry, true),
            (
                "kernel.entry_point (AP entry)",
                self.cpu_config.ap_entry,
                self.cpu_num > 1,
            ),
        ];
        for (field, entry, used) in entries {
            if used && self.region_containing(entry).is_none() {
                problems.push(ConfigError::invalid(
                    field,
                    format!("{entry} is not inside any memory region: a vCPU starting there would fetch from nothing"),
                ));
                // The AP entry is the same field in TOML configs: one message is enough.
                if self.cpu_config.ap_entry == self.cpu_config.bsp_entry {
                    break;
                }
            }
        }
    }

    fn check_devices(&self, problems: &mut Vec<ConfigError>) {
        self.check_emulated_devices(problems);
        self.check_pass_through_devices(problems);
    }

    fn check_emulated_devices(&self, problems: &mut Vec<ConfigError>) {
        let devices = &self.emu_devices;
        let count = devices.len();
        if let Some(problem) = too_many("devices.emu_devices", count, MAX_DEVICES, "devices") {
            problems.push(problem);
            return;
        }
        let spans: Vec<Span> = devices
            .iter()
            .map(|d| Span::new(d.base_gpa.as_u64(), d.length))
            .collect();
        // Both searches are empty when the regions were too many to look at.
        let ram = match self.memory_regions.len() <= MAX_MEMORY_REGIONS {
            true => first_overlapping(&self.ram_spans(), &spans),
            false => vec![None; count],
        };
        let earlier = first_earlier_overlapping(&spans);
        for (index, device) in devices.iter().enumerate() {
            let field = emu_field(index, &device.name);
            if let Some(problem) = range_problem(device.base_gpa.as_u64(), device.length) {
                problems.push(ConfigError::invalid(field, problem));
                continue;
            }
            if let Some(problem) = backend_problem(device) {
                problems.push(ConfigError::invalid(field.clone(), problem));
            }
            if let Some(ram) = ram[index] {
                problems.push(ConfigError::invalid(
                    field.clone(),
                    format!(
                        "{}+{:#x} overlaps RAM {}: the guest would reach RAM, never the device",
                        device.base_gpa,
                        device.length,
                        region_field(ram)
                    ),
                ));
            }
            if let Some(other) = earlier[index] {
                problems.push(ConfigError::invalid(
                    field,
                    format!(
                        "overlaps {}: each address belongs to one device",
                        emu_field(other, &devices[other].name)
                    ),
                ));
            }
        }
    }

    fn check_pass_through_devices(&self, problems: &mut Vec<ConfigError>) {
        let devices = &self.pass_through_devices;
        let field = "devices.passthrough_devices";
        if let Some(problem) = too_many(field, devices.len(), MAX_DEVICES, "devices") {
            problems.push(problem);
            return;
        }
        for (index, device) in devices.iter().enumerate() {
            let field = format!("{field}[{index}] ({})", device.name);
            let problem =
                pass_through_range_problem("base_gpa", device.base_gpa.as_u64(), device.length)
                    .or_else(|| {
                        pass_through_range_problem(
                            "base_hpa",
                            device.base_hpa.as_u64(),
                            device.length,
                        )
                    });
            if let Some(problem) = problem {
                problems.push(ConfigError::invalid(field, problem));
            }
        }
    }
}

/// The smallest register window of a virtio-mmio device: the transport's registers
/// (0x000-0x0ff) and the device's configuration space after them.
pub const VIRTIO_MMIO_MIN_LENGTH: u64 = 0x200;

/// What is wrong with the backend of `device` (or its lack of one), if anything.
fn backend_problem(device: &EmulatedDeviceConfig) -> Option<String> {
    let name = &device.name;
    let wanted = match device.emu_type {
        EmulatedDeviceType::VirtioBlk => Some("disk"),
        EmulatedDeviceType::VirtioNet => Some("network"),
        _ => None,
    };
    let is_virtio = matches!(
        device.emu_type,
        EmulatedDeviceType::VirtioBlk
            | EmulatedDeviceType::VirtioNet
            | EmulatedDeviceType::VirtioConsole
    );
    if is_virtio && device.length < VIRTIO_MMIO_MIN_LENGTH {
        return Some(format!(
            "length {:#x} is too small for a virtio-mmio device: it needs at least {VIRTIO_MMIO_MIN_LENGTH:#x} bytes (0x1000 is usual)",
            device.length
        ));
    }
    match (wanted, &device.backend) {
        (Some(kind), Some(backend)) if backend.kind() != kind => Some(format!(
            "a {} needs a {kind}, but devices.backends.{name} gives a {}",
            device.emu_type,
            backend.kind()
        )),
        (Some("disk"), None) => Some(format!(
            "a virtio block device needs a disk: add `{name} = {{ path = \"disk.img\" }}` under [devices.backends] (the first disk may be kernel.disk_path instead)"
        )),
        (Some(_), None) => Some(format!(
            "a virtio network device needs a network: add `{name} = {{ net = \"switch:lan\" }}` (or \"tap:NAME\") under [devices.backends]"
        )),
        (None, Some(backend)) => Some(format!(
            "a {} takes no backend, but devices.backends.{name} gives a {}: remove it",
            device.emu_type,
            backend.kind()
        )),
        _ => None,
    }
}

fn region_problem(region: &VmMemConfig) -> Option<String> {
    if let Some(problem) = range_problem(region.gpa.as_u64(), region.size) {
        return Some(problem);
    }
    if !is_page_aligned(region.gpa.as_u64()) || !is_page_aligned(region.size) {
        return Some(format!(
            "start {} and size {:#x} must be multiples of 4 KiB (guest memory is mapped in pages)",
            region.gpa, region.size
        ));
    }
    if region.flags.contains(MappingFlags::DEVICE) {
        return Some(String::from(
            "has the DEVICE flag (0x10), which is only for pass-through devices; RAM needs flags like 0x7 (READ|WRITE|EXECUTE)",
        ));
    }
    None
}

/// The problem with a list of `count` entries when it has more than `max`.
fn too_many(field: &str, count: usize, max: usize, what: &str) -> Option<ConfigError> {
    (count > max).then(|| {
        ConfigError::invalid(
            field,
            format!("has {count} entries, more than the {max} {what} axvm accepts (no host can map that many); merge adjacent entries into larger ones"),
        )
    })
}

/// What is wrong with a pass-through range of `len` bytes at `base` (the `which` address),
/// if anything. Besides [`range_problem`], the range must still end inside the address
/// space once rounded out to whole pages, as it is when mapped: 0xfff bytes at
/// 0xffff_ffff_ffff_f000 would otherwise become a 0-byte mapping.
pub(crate) fn pass_through_range_problem(which: &str, base: u64, len: u64) -> Option<String> {
    if let Some(problem) = range_problem(base, len) {
        return Some(problem);
    }
    let end = base + len;
    if end.checked_add(PAGE_SIZE - 1).is_none() {
        return Some(format!(
            "{which} {base:#x}+{len:#x} ends in the last 4 KiB page of the address space: rounded out to whole pages, as it is mapped, it wraps past the end; end it at or before {:#x}",
            u64::MAX - (PAGE_SIZE - 1)
        ));
    }
    None
}

fn range_problem(base: u64, len: u64) -> Option<String> {
    if len == 0 {
        Some(String::from("has size 0"))
    } else if base.checked_add(len).is_none() {
        Some(format!(
            "{base:#x}+{len:#x} wraps past the end of the address space"
        ))
    } else {
        None
    }
}
