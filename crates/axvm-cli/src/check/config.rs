//! The config part of `axvm check`: every refusal `axvm run` would make, what this host
//! cannot do (MapReserved), and warnings for what is legal but suspicious.

use axvm::device::AxVmDevices;
use axvm::memory::merge_pass_through;
use axvm::{AxVMConfig, ConfigError, EmulatedDeviceConfig, EmulatedDeviceType, VmMemMappingType};
use axvm_kvm::boot::{detect_format, kernel_layout, plan_placement};
use axvm_kvm::kvm::{has_in_kernel_irqchip, pass_through_plan};
use axvm_kvm::ImageFormat;

use super::memory_map;
use crate::vm_files::VmFiles;

/// The outcome of checking a config.
pub struct Verdict {
    /// No problems.
    pub ok: bool,
    /// How many warnings were printed.
    pub warnings: usize,
}

/// One image axvm writes into guest memory, where it goes.
pub struct Image {
    /// What it is, for the memory map ("kernel image (raw)", "BIOS image").
    pub what: String,
    /// The config field that places it, for warnings.
    pub field: &'static str,
    /// First byte.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Image {
    fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }

    fn overlaps(&self, other: &Image) -> bool {
        self.start < other.end() && other.start < self.end()
    }
}

/// What axvm would do with a config: the kernel's format and every image's place.
pub struct Plan {
    /// The kernel's format, as detected from its content.
    pub format: ImageFormat,
    /// The images, in load order (extras first, then the kernel, which thus wins overlaps).
    pub images: Vec<Image>,
}

/// Prints the config's problems, warnings and memory map.
pub fn check_config(files: &VmFiles) -> Verdict {
    let config = &files.config;
    println!(
        "\nConfig {} (VM {} `{}`, {} vCPU(s)):",
        files.origin, config.id, config.name, config.cpu_num
    );
    let mut problems: Vec<String> = config.problems().iter().map(ToString::to_string).collect();
    problems.extend(host_refusals(config).iter().map(ToString::to_string));
    // Unknown types are warned about below; giving them as Dummy keeps add_emulated from
    // logging the same warning on stderr.
    let devices: Vec<_> = config
        .emu_devices
        .iter()
        .cloned()
        .map(as_dummy_if_unknown)
        .collect();
    if let Err(err) = AxVmDevices::default().add_emulated(&devices) {
        problems.push(err.to_string());
    }
    // Image placement only means something once the regions themselves are sound.
    let mut ramdisk_at = None;
    if problems.is_empty() {
        match plan_placement(config, &files.images) {
            Ok(placement) => ramdisk_at = placement.map(|p| p.gpa.as_u64()),
            Err(err) => problems.push(err.to_string()),
        }
    }
    let plan = plan(files, ramdisk_at);
    let warnings = warnings(config, &plan);
    for problem in &problems {
        println!("  [FAIL] {problem}");
    }
    for warning in &warnings {
        println!("  [warn] {warning}");
    }
    if problems.is_empty() && warnings.is_empty() {
        println!("  [ok  ] valid");
    }
    memory_map::print(config, &plan);
    Verdict {
        ok: problems.is_empty(),
        warnings: warnings.len(),
    }
}

fn as_dummy_if_unknown(mut device: EmulatedDeviceConfig) -> EmulatedDeviceConfig {
    if let EmulatedDeviceType::Unknown(_) = device.emu_type {
        device.emu_type = EmulatedDeviceType::Dummy;
    }
    device
}

/// What the Linux KVM host refuses although the config format allows it: MapReserved
/// regions need host-physical memory reserved beforehand, which a process never has, and
/// pass-through ranges other than the interrupt-controller pages KVM emulates.
fn host_refusals(config: &AxVMConfig) -> Vec<ConfigError> {
    let mut refusals = reserved_region_refusals(config);
    refusals.extend(pass_through_refusals(config));
    refusals
}

/// Pass-through ranges, merged as `AxVM::new` merges them, that this host cannot map.
fn pass_through_refusals(config: &AxVMConfig) -> Vec<ConfigError> {
    let Ok(ranges) = merge_pass_through(&config.pass_through_devices) else {
        return Vec::new(); // Refused by validation already, with the field named.
    };
    let irqchip = has_in_kernel_irqchip();
    ranges
        .iter()
        .filter_map(|range| {
            pass_through_plan(range.gpa, range.hpa, range.size, irqchip)
                .err()
                .map(|why| {
                    ConfigError::invalid(
                        format!("devices.passthrough_devices ({})", range.names),
                        format!(
                            "guest {}..{:#x}: {why}",
                            range.gpa,
                            range.gpa.as_u64() + range.size
                        ),
                    )
                })
        })
        .collect()
}

fn reserved_region_refusals(config: &AxVMConfig) -> Vec<ConfigError> {
    let reserved = config.memory_regions.iter().enumerate();
    reserved
        .filter(|(_, region)| region.map_type == VmMemMappingType::MapReserved)
        .map(|(index, region)| {
            ConfigError::invalid(
                format!("kernel.memory_regions[{index}]"),
                format!("MapReserved maps host-physical memory reserved beforehand at {}, which a Linux process cannot reach: this host refuses it; use map_type 0 (MapAlloc), or 1 (MapIdentical) to keep the intent", region.gpa),
            )
        })
        .collect()
}

/// Where each image goes: the BIOS, DTB and (direct starts, or an explicit address) the
/// ramdisk at their load addresses, a boot protocol's ramdisk where it would place it, and
/// the kernel by its layout.
fn plan(files: &VmFiles, ramdisk_at: Option<u64>) -> Plan {
    let (config, images) = (&files.config, &files.images);
    let format = detect_format(&images.kernel);
    let load = &config.image_config;
    let ramdisk_gpa = if format.is_boot_protocol() {
        ramdisk_at.or(load.ramdisk_load_gpa.map(|gpa| gpa.as_u64()))
    } else {
        load.ramdisk_load_gpa.map(|gpa| gpa.as_u64())
    };
    let extras = [
        (
            "BIOS image",
            "kernel.bios_load_addr",
            &images.bios,
            load.bios_load_gpa.map(|g| g.as_u64()),
        ),
        (
            "device tree",
            "kernel.dtb_load_addr",
            &images.dtb,
            load.dtb_load_gpa.map(|g| g.as_u64()),
        ),
        (
            "ramdisk",
            "kernel.ramdisk_load_addr",
            &images.ramdisk,
            ramdisk_gpa,
        ),
    ];
    let mut planned: Vec<Image> = extras
        .into_iter()
        .filter_map(|(what, field, image, gpa)| {
            let (image, start) = (image.as_ref()?, gpa?);
            let placed = if what == "ramdisk"
                && format.is_boot_protocol()
                && load.ramdisk_load_gpa.is_none()
            {
                " (placed by axvm)"
            } else {
                ""
            };
            Some(Image {
                what: format!("{what}{placed}"),
                field,
                start,
                len: image.len() as u64,
            })
        })
        .collect();
    if let Ok(layout) = kernel_layout(&images.kernel, load.kernel_load_gpa) {
        let count = layout.ranges.len();
        for (index, (gpa, len)) in layout.ranges.into_iter().enumerate() {
            let what = match (format, count) {
                (ImageFormat::Raw, _) => "kernel image (raw)".to_string(),
                (_, 1) => format!("kernel ({format:?})"),
                _ => format!("kernel ({format:?}) segment {index}"),
            };
            planned.push(Image {
                what,
                field: "kernel.kernel_path",
                start: gpa.as_u64(),
                len,
            });
        }
    }
    Plan {
        format,
        images: planned,
    }
}

/// Legal but suspicious: each as "field: what and what follows".
fn warnings(config: &AxVMConfig, plan: &Plan) -> Vec<String> {
    let mut warnings = Vec::new();
    for (index, region) in config.memory_regions.iter().enumerate() {
        if region.map_type == VmMemMappingType::MapIdentical {
            warnings.push(format!("kernel.memory_regions[{index}]: MapIdentical cannot be honoured by a Linux process: the region will be allocated elsewhere (guest-physical addresses are unchanged)"));
        }
    }
    entry_warning(config, plan, &mut warnings);
    for (later, image) in plan.images.iter().enumerate() {
        for earlier in plan.images[..later]
            .iter()
            .filter(|other| other.overlaps(image))
        {
            if earlier.field == image.field {
                continue;
            }
            warnings.push(format!(
                "{}: the {} ({:#x}..{:#x}) overlaps the {} ({:#x}..{:#x}): the {} is loaded later and overwrites it",
                earlier.field, earlier.what, earlier.start, earlier.end(), image.what, image.start, image.end(), image.what
            ));
        }
    }
    for (index, device) in config.pass_through_devices.iter().enumerate() {
        let (start, end) = (
            device.base_gpa.as_u64(),
            device.base_gpa.as_u64().saturating_add(device.length),
        );
        if let Some(ram) = config
            .memory_regions
            .iter()
            .position(|r| r.gpa.as_u64() < end && start < r.end().as_u64())
        {
            warnings.push(format!("devices.passthrough_devices[{index}] ({}): {start:#x}..{end:#x} overlaps RAM kernel.memory_regions[{ram}]: the guest reaches one of them there, not both; move the device or shrink the region", device.name));
        }
    }
    for (index, device) in config.emu_devices.iter().enumerate() {
        if let EmulatedDeviceType::Unknown(value) = device.emu_type {
            warnings.push(format!("devices.emu_devices[{index}] ({}): emu_type {value:#x} is not a type the ArceOS numbering defines: it is treated as 0x0 (Dummy: scratch registers), as the ArceOS hypervisor does; write 0x0 to say so", device.name));
        }
    }
    warnings
}

/// A raw kernel's entry point outside every image it could run: the vCPU would execute
/// zeroed memory (`add [bx+si], al` forever in real mode) instead of the kernel.
fn entry_warning(config: &AxVMConfig, plan: &Plan, warnings: &mut Vec<String>) {
    if plan.format != ImageFormat::Raw {
        return;
    }
    let entry = config.cpu_config.bsp_entry.as_u64();
    if config
        .region_containing(config.cpu_config.bsp_entry)
        .is_none()
    {
        return; // refused already: "not inside any memory region"
    }
    let in_image = plan
        .images
        .iter()
        .any(|image| image.start <= entry && entry < image.end());
    let kernel = plan
        .images
        .iter()
        .find(|image| image.field == "kernel.kernel_path");
    if let (false, Some(kernel)) = (in_image, kernel) {
        warnings.push(format!(
            "kernel.entry_point: entry point {entry:#x} is not inside the kernel image ({:#x}..{:#x}): the vCPU will start in memory that holds zeros",
            kernel.start,
            kernel.end()
        ));
    }
}
