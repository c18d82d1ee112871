//! [`VmPlan`]: what axvm will do with a config and its images on this host, worked out
//! before anything is created. `axvm run` ([`KvmVm::create`](crate::KvmVm::create)) loads
//! the VM from it and `axvm check` prints it, so the two cannot disagree: each memory
//! region's fate on a Linux host, where every image goes, which boot protocol starts the
//! kernel and why, and the low memory axvm writes (GDT, page tables, boot data, firmware
//! tables, the e820 holes).

use axvm::memory::merge_pass_through;
use axvm::{AxVMConfig, ConfigError, GuestPhysAddr, VmMemConfig, VmMemMappingType};

use crate::boot::e820::{e820_map, E820Kind};
use crate::boot::mptable::MAX_MP_CPUS;
use crate::boot::{
    boot_cmdline, extra_images, plan_kernel, protocol_for_vm, start_line, BootImages, BootLayout,
    ImageFormat, KernelPlan, RamdiskPlacement,
};
use crate::devices::check_virtio_devices;
use crate::kvm::{has_in_kernel_irqchip, pass_through_plan, region_refusal, HostLimits};
use crate::platform::pc::bda::{BDA_SIZE, BDA_START};
use crate::platform::pc::layout::{
    ACPI_END, ACPI_START, HIGH_MEMORY_START, LEGACY_HOLE_START, MPTABLE_END, MPTABLE_START,
};
use axvm_pc::bda::bda_contents;

/// How this host gives a memory region its memory. A Linux process can only allocate
/// anywhere: `KvmHal` cannot allocate at a chosen host-physical address (MapIdentical falls
/// back) nor reach memory reserved beforehand (MapReserved is refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionFate {
    /// Allocated anywhere, as MapAlloc asks.
    Allocated,
    /// MapIdentical, allocated elsewhere: guest-physical addresses are unchanged.
    IdenticalFallback,
    /// MapReserved: refused by this host.
    Refused,
}

impl RegionFate {
    /// The fate of a region mapped as `map_type` on this host.
    pub fn of(map_type: VmMemMappingType) -> Self {
        match map_type {
            VmMemMappingType::MapAlloc => Self::Allocated,
            VmMemMappingType::MapIdentical => Self::IdenticalFallback,
            VmMemMappingType::MapReserved => Self::Refused,
        }
    }
}

/// One range axvm writes into guest memory: an image, or data axvm makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRange {
    /// What it is, for memory maps ("kernel image (raw)", "ACPI tables, RSDP first").
    pub what: String,
    /// The config field that places it (images only), for warnings.
    pub field: Option<&'static str>,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl PlannedRange {
    fn new(what: impl Into<String>, field: Option<&'static str>, start: u64, len: u64) -> Self {
        Self {
            what: what.into(),
            field,
            start,
            end: start.saturating_add(len),
        }
    }
}

/// What axvm will do with a VM (see the module documentation).
#[derive(Clone, Debug)]
pub struct VmPlan {
    /// The kernel's format: which boot protocol starts it.
    pub format: ImageFormat,
    /// Why that format: the detection rule that matched.
    pub detected_by: &'static str,
    /// How the VM starts and why, in one line for `axvm check`: the ArceOS hypervisor's BIOS
    /// start (with the BIOS's range) or the detected format and its rule.
    pub start: String,
    /// Each memory region's fate on this host, in config order.
    pub regions: Vec<RegionFate>,
    /// The images, in load order (extras first, then the kernel, which thus wins overlaps).
    pub images: Vec<PlannedRange>,
    /// The low memory axvm writes for this format, and the e820 map's reserved ranges.
    pub boot_data: Vec<PlannedRange>,
    /// Where vCPU 0 starts: the image's entry, or the config's for raw code.
    pub bsp_entry: GuestPhysAddr,
    /// Where the other vCPUs start (a boot protocol's APs wait for a SIPI instead).
    pub ap_entry: GuestPhysAddr,
    /// Where a boot protocol puts the ramdisk (None for the direct starts, which copy it to
    /// `ramdisk_load_addr`, or before the config was checked).
    pub ramdisk: Option<RamdiskPlacement>,
    /// The command line the kernel gets ([`boot_cmdline`]): for Multiboot with the kernel's
    /// name first. None for the direct starts, which pass none.
    pub cmdline: Option<String>,
    /// The checked kernel, for the loader (None in a [`sketch`](Self::sketch)).
    pub(crate) kernel: Option<KernelPlan>,
}

impl VmPlan {
    /// The plan a VM is loaded by: the config validated, the kernel checked against it and
    /// the ramdisk placed, with nothing created or written. Refused with the field named.
    /// It needs no KVM: `axvm check` prints it on any host.
    ///
    /// ```
    /// use axvm::AxVMConfig;
    /// use axvm_kvm::{BootImages, ImageFormat, RegionFate, VmPlan};
    ///
    /// let config = AxVMConfig::builder("plan").ram(0, 1 << 20).kernel_at(0x8000).build()?;
    /// let images = BootImages { kernel: vec![0xf4; 0x1000], ..Default::default() };
    /// let plan = VmPlan::for_config(&config, &images)?;
    /// assert_eq!(plan.format, ImageFormat::Raw);
    /// assert_eq!(plan.regions, [RegionFate::Allocated]);
    /// let kernel = &plan.images[0];
    /// assert_eq!((kernel.start, kernel.end), (0x8000, 0x9000));
    ///
    /// // A kernel bigger than its RAM is refused before anything is created.
    /// let too_big = BootImages { kernel: vec![0xf4; 2 << 20], ..Default::default() };
    /// let err = VmPlan::for_config(&config, &too_big).unwrap_err();
    /// println!("{err}");
    /// # Ok::<(), axvm::ConfigError>(())
    /// ```
    pub fn for_config(config: &AxVMConfig, images: &BootImages) -> Result<Self, ConfigError> {
        config.validate()?;
        Self::for_valid_config(config, images)
    }

    /// [`for_config`](Self::for_config) for a config the caller has validated already
    /// (`axvm run` validates once, to word a refusal as the config file's), so that it is
    /// not validated again.
    ///
    /// Besides the boot protocol's checks, it refuses what the host would refuse later:
    /// regions KVM cannot map (no READ, larger than a slot, more than the host's slots,
    /// above its address width: [`HostLimits`], asked of `/dev/kvm` when it can be opened),
    /// pass-through ranges that cannot be merged or mapped, BIOS, device tree and ramdisk
    /// images that do not fit or have no load address, and a command line larger than the
    /// boot data area. `axvm check` on a host with KVM then creates and loads the VM as
    /// `axvm run` does, for what only KVM can tell.
    pub fn for_valid_config(config: &AxVMConfig, images: &BootImages) -> Result<Self, ConfigError> {
        Self::for_valid_config_on(config, images, HostLimits::query().as_ref())
    }

    /// [`for_valid_config`](Self::for_valid_config) on a host with `limits` (`None`: only
    /// the checks that need no host).
    pub fn for_valid_config_on(
        config: &AxVMConfig,
        images: &BootImages,
        limits: Option<&HostLimits>,
    ) -> Result<Self, ConfigError> {
        check_virtio_devices(config)?;
        if let Some(refusal) = refusals_on(config, limits).into_iter().next() {
            return Err(refusal);
        }
        let kernel = plan_kernel(config, images)?;
        let mut plan = Self::sketch(config, images);
        plan.ramdisk = kernel.ramdisk;
        if let Some(entry) = kernel.image.entry {
            let entry = GuestPhysAddr::new(entry);
            if plan.format == ImageFormat::Elf64 && entry != config.bsp_entry() {
                log::info!(
                    "ELF entry {entry} is used instead of kernel.entry_point {}",
                    config.bsp_entry()
                );
            }
            plan.bsp_entry = entry;
            plan.ap_entry = entry;
        }
        let laid_out = kernel.layout.is_some();
        if let Some(layout) = kernel.layout {
            plan.boot_data = laid_out_boot_data(config, &plan, &layout);
        }
        plan.kernel = Some(kernel);
        plan.images = planned_images(config, images, &plan);
        if laid_out {
            // The sketch's BIOS Data Area went with the boot data it replaced.
            let protocol = protocol_for_vm(config, images);
            let bios_data = bios_data_areas(config, &plan, &protocol.boot_data());
            plan.boot_data.extend(bios_data);
        }
        extra_images(config, images, !plan.format.is_boot_protocol())?;
        Ok(plan)
    }

    /// What can be said of a config without checking it (for `axvm check`, which prints a
    /// map even of a config it refuses): the kernel where its headers put it, the ramdisk at
    /// `ramdisk_load_addr` only, the config's entries.
    pub fn sketch(config: &AxVMConfig, images: &BootImages) -> Self {
        let protocol = protocol_for_vm(config, images);
        let format = protocol.format();
        let mut boot_data: Vec<PlannedRange> = protocol
            .boot_data()
            .into_iter()
            .map(|(start, end, what)| PlannedRange::new(what, None, start, end - start))
            .collect();
        if format.is_boot_protocol() {
            boot_data.extend(firmware_areas(config));
        }
        let mut plan = Self {
            format,
            detected_by: protocol.detected_by(),
            start: start_line(config, images),
            regions: config
                .memory_regions
                .iter()
                .map(|r| RegionFate::of(r.map_type))
                .collect(),
            images: Vec::new(),
            boot_data,
            bsp_entry: config.bsp_entry(),
            ap_entry: config.ap_entry(),
            ramdisk: None,
            cmdline: boot_cmdline(format, config, images),
            kernel: None,
        };
        plan.images = planned_images(config, images, &plan);
        let bios_data = bios_data_areas(config, &plan, &protocol.boot_data());
        plan.boot_data.extend(bios_data);
        plan
    }

    /// What this host refuses although the config format allows it, each naming the field
    /// and the fix: MapReserved regions, regions KVM cannot map here ([`HostLimits`]), and
    /// pass-through ranges that cannot be merged or are not the interrupt controller pages
    /// KVM emulates. ([`for_valid_config`](Self::for_valid_config), which `axvm run` loads
    /// by, refuses the first of them.)
    pub fn host_refusals(&self, config: &AxVMConfig) -> Vec<ConfigError> {
        refusals_on(config, HostLimits::query().as_ref())
    }
}

/// What a host with `limits` refuses of `config` (see [`VmPlan::host_refusals`]), in the
/// order: MapReserved regions, regions KVM cannot map, pass-through ranges.
fn refusals_on(config: &AxVMConfig, limits: Option<&HostLimits>) -> Vec<ConfigError> {
    let mut refusals: Vec<ConfigError> = config
        .memory_regions
        .iter()
        .enumerate()
        .filter(|(_, region)| RegionFate::of(region.map_type) == RegionFate::Refused)
        .map(|(index, region)| reserved_refusal(index, region))
        .collect();
    refusals.extend(memory_refusals(config, limits));
    refusals.extend(pass_through_refusals(config));
    refusals
}

fn reserved_refusal(index: usize, region: &VmMemConfig) -> ConfigError {
    ConfigError::invalid(
        format!("kernel.memory_regions[{index}]"),
        format!("{:#x} bytes at {}: MapReserved maps host-physical memory reserved beforehand at {}, which a Linux process cannot reach: this host refuses it; use map_type 0 (MapAlloc), or 1 (MapIdentical) to keep the intent", region.size, region.gpa, region.gpa),
    )
}

/// The regions KVM cannot map as memory slots on a host with `limits`, each with its own
/// reason and fix (`KvmHal::map_guest_memory` asks the same function).
fn memory_refusals(config: &AxVMConfig, limits: Option<&HostLimits>) -> Vec<ConfigError> {
    config
        .memory_regions
        .iter()
        .enumerate()
        .filter_map(|(index, region)| {
            let why = region_refusal(index, region, limits)?;
            Some(ConfigError::invalid(
                format!("kernel.memory_regions[{index}]"),
                format!(
                    "{:#x} bytes at {}, up to {}: {why}",
                    region.size,
                    region.gpa,
                    region.end()
                ),
            ))
        })
        .collect()
}

/// Pass-through ranges, merged as `AxVM::new` merges them, that cannot be merged (page
/// offsets that differ, overlaps naming different host pages) or that this host cannot map.
fn pass_through_refusals(config: &AxVMConfig) -> Vec<ConfigError> {
    let ranges = match merge_pass_through(&config.pass_through_devices) {
        Ok(ranges) => ranges,
        Err(err) => return vec![err],
    };
    let irqchip = has_in_kernel_irqchip();
    ranges
        .iter()
        .filter_map(|range| {
            let why = pass_through_plan(range.gpa, range.hpa, range.size, irqchip).err()?;
            Some(ConfigError::invalid(
                format!("devices.passthrough_devices ({})", range.names),
                format!(
                    "guest {}..{:#x}: {why}",
                    range.gpa,
                    range.gpa.as_u64() + range.size
                ),
            ))
        })
        .collect()
}

/// What a boot protocol writes where `layout` put it: the protocol's own data (named as the
/// protocol's `boot_data` in `plan.boot_data` names it: tables first, then the boot data
/// area, then Multiboot's entry stack), the firmware tables, and the e820 map's reserved
/// ranges.
fn laid_out_boot_data(
    config: &AxVMConfig,
    plan: &VmPlan,
    layout: &BootLayout,
) -> Vec<PlannedRange> {
    let described: Vec<String> = plan
        .boot_data
        .iter()
        .map(|range| range.what.clone())
        .collect();
    let what = |index: usize| described.get(index).cloned().unwrap_or_default();
    let area =
        |what: String, (start, end): (u64, u64)| PlannedRange::new(what, None, start, end - start);
    let mut ranges = vec![
        area(what(0), layout.tables),
        area(what(1), layout.boot_info),
    ];
    ranges.extend(layout.stack.map(|stack| area(what(2), stack)));
    ranges.extend(table_areas(layout.acpi, layout.mptable));
    ranges.extend(reserved_areas(config));
    ranges
}

/// The firmware tables the boot protocols get, at the PC layout's places, and the e820 map's
/// reserved ranges.
fn firmware_areas(config: &AxVMConfig) -> Vec<PlannedRange> {
    let mptable = (config.cpu_num <= MAX_MP_CPUS).then_some((MPTABLE_START, MPTABLE_END));
    let mut areas = table_areas((ACPI_START, ACPI_END), mptable);
    areas.extend(reserved_areas(config));
    areas
}

/// The ACPI area and the MP table's, if any.
fn table_areas(acpi: (u64, u64), mptable: Option<(u64, u64)>) -> Vec<PlannedRange> {
    let area =
        |what: &str, (start, end): (u64, u64)| PlannedRange::new(what, None, start, end - start);
    let mut areas = vec![area("ACPI tables, RSDP first", acpi)];
    areas.extend(mptable.map(|range| area("MP floating pointer and MP table", range)));
    areas
}

/// The e820 map's reserved ranges, each with why.
fn reserved_areas(config: &AxVMConfig) -> Vec<PlannedRange> {
    let area = |what: &str, start: u64, end: u64| PlannedRange::new(what, None, start, end - start);
    let mut areas = Vec::new();
    for entry in e820_map(config)
        .iter()
        .filter(|e| e.kind == E820Kind::Reserved)
    {
        let end = entry.addr + entry.size;
        let why = if LEGACY_HOLE_START <= entry.addr && end <= HIGH_MEMORY_START {
            "e820 reserved: the legacy hole (EBDA, VGA, option ROMs, BIOS)"
        } else {
            "e820 reserved (read-only memory)"
        };
        areas.push(area(why, entry.addr, end));
    }
    areas
}

/// The BIOS Data Area and the EBDA's first KiB, when axvm writes them (`boot/bda.rs`):
/// RAM covers them and neither the images nor the protocol's `boot_data` are there.
fn bios_data_areas(
    config: &AxVMConfig,
    plan: &VmPlan,
    boot_data: &[(u64, u64, &str)],
) -> Vec<PlannedRange> {
    let occupied: Vec<(u64, u64)> = plan
        .images
        .iter()
        .map(|image| (image.start, image.end - image.start))
        .chain(
            boot_data
                .iter()
                .map(|&(start, end, _)| (start, end - start)),
        )
        .collect();
    let Some(contents) = bda_contents(config, &occupied, 0) else {
        return Vec::new();
    };
    let mut areas = vec![PlannedRange::new(
        "BIOS Data Area (axvm fills it as SeaBIOS would)",
        None,
        BDA_START,
        BDA_SIZE as u64,
    )];
    if let Some(ebda) = contents.ebda {
        areas.push(PlannedRange::new(
            "EBDA, its first KiB (size byte, then zeros)",
            None,
            ebda,
            1024,
        ));
    }
    areas
}

/// Where each image goes: the BIOS, DTB and (direct starts, or an explicit address) the
/// ramdisk at their load addresses, a boot protocol's ramdisk where `plan` placed it, and
/// the kernel by its layout.
fn planned_images(config: &AxVMConfig, images: &BootImages, plan: &VmPlan) -> Vec<PlannedRange> {
    let load = &config.image_config;
    let placed_by_axvm = plan.format.is_boot_protocol() && load.ramdisk_load_gpa.is_none();
    let ramdisk_gpa = match plan.ramdisk {
        Some(placed) if plan.format.is_boot_protocol() => Some(placed.gpa),
        _ => load.ramdisk_load_gpa,
    };
    let ramdisk_what = if placed_by_axvm {
        "ramdisk (placed by axvm)"
    } else {
        "ramdisk"
    };
    let extras = [
        (
            "BIOS image",
            "kernel.bios_load_addr",
            &images.bios,
            load.bios_load_gpa,
        ),
        (
            "device tree",
            "kernel.dtb_load_addr",
            &images.dtb,
            load.dtb_load_gpa,
        ),
        (
            ramdisk_what,
            "kernel.ramdisk_load_addr",
            &images.ramdisk,
            ramdisk_gpa,
        ),
    ];
    let mut planned: Vec<PlannedRange> = extras
        .into_iter()
        .filter_map(|(what, field, image, gpa)| {
            let (image, gpa) = (image.as_ref()?, gpa?);
            Some(PlannedRange::new(
                what,
                Some(field),
                gpa.as_u64(),
                image.len() as u64,
            ))
        })
        .collect();
    let protocol = protocol_for_vm(config, images);
    let segments = match &plan.kernel {
        Some(kernel) => Ok(kernel.image.segments.clone()),
        None => protocol
            .layout(&images.kernel, load.kernel_load_gpa)
            .map(|image| image.segments),
    };
    if let Ok(segments) = segments {
        let (format, count) = (plan.format, segments.len());
        for (index, segment) in segments.iter().enumerate() {
            let what = match (format, count) {
                (ImageFormat::Raw, _) => "kernel image (raw)".to_string(),
                (ImageFormat::Bios, _) => "kernel image (as it is; the BIOS enters it)".to_string(),
                (_, 1) => format!("kernel ({format:?})"),
                _ => format!("kernel ({format:?}) segment {index}"),
            };
            planned.push(PlannedRange::new(
                what,
                Some("kernel.kernel_path"),
                segment.paddr,
                segment.memsz,
            ));
        }
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;
    use axvm::{AxVMHal, HostPhysAddr, MappingFlags};

    fn config(map_type: VmMemMappingType) -> AxVMConfig {
        let mut config = AxVMConfig::new("plan", 1);
        config.memory_regions.push(VmMemConfig {
            gpa: GuestPhysAddr::new(0),
            size: 0x20_0000,
            flags: MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE,
            map_type,
        });
        config.image_config.kernel_load_gpa = GuestPhysAddr::new(0x8000);
        config.cpu_config.bsp_entry = GuestPhysAddr::new(0x8000);
        config.cpu_config.ap_entry = GuestPhysAddr::new(0x8000);
        config
    }

    #[test]
    fn a_raw_image_is_planned_at_its_load_address_with_the_config_entry() {
        let images = BootImages {
            kernel: vec![0xf4; 0x100],
            ..BootImages::default()
        };
        let plan = VmPlan::for_config(&config(VmMemMappingType::MapAlloc), &images).unwrap();
        assert_eq!(plan.format, ImageFormat::Raw);
        assert_eq!(plan.bsp_entry, GuestPhysAddr::new(0x8000));
        assert_eq!(plan.regions, [RegionFate::Allocated]);
        assert_eq!(
            plan.images,
            [PlannedRange::new(
                "kernel image (raw)",
                Some("kernel.kernel_path"),
                0x8000,
                0x100
            )]
        );
        // Raw code gets no boot-protocol data, only the BIOS data a PC's firmware leaves.
        let boot_data: Vec<_> = plan.boot_data.iter().map(|r| (r.start, r.end)).collect();
        assert_eq!(
            boot_data,
            [(0x400, 0x500), (0x9_fc00, 0xa_0000)],
            "{plan:?}"
        );
    }

    #[test]
    fn map_reserved_is_a_host_refusal_naming_the_region() {
        let config = config(VmMemMappingType::MapReserved);
        let plan = VmPlan::sketch(&config, &BootImages::default());
        assert_eq!(plan.regions, [RegionFate::Refused]);
        let refusals = plan.host_refusals(&config);
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].field(), Some("kernel.memory_regions[0]"));
    }

    /// The fates the plan gives are what `KvmHal` does: it cannot allocate at a chosen
    /// host-physical address (MapIdentical falls back) nor reach reserved memory.
    #[test]
    fn region_fates_match_what_kvm_hal_can_do() {
        let hal = match crate::kvm::KvmHal::new(0) {
            Ok(hal) => hal,
            Err(err) if std::env::var_os("AXVM_REQUIRE_KVM").is_none() => {
                eprintln!("skipped: {err}");
                return;
            }
            Err(err) => panic!("{err}"),
        };
        let at = HostPhysAddr::new(0x10_0000);
        let identical_honoured = hal.alloc_memory_region_at(at, 0x1000);
        assert_eq!(
            identical_honoured,
            RegionFate::of(VmMemMappingType::MapIdentical) != RegionFate::IdenticalFallback
        );
        let reserved_reachable = hal.phys_to_virt(at).is_some();
        assert_eq!(
            reserved_reachable,
            RegionFate::of(VmMemMappingType::MapReserved) != RegionFate::Refused
        );
    }
}
