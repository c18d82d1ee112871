//! Loading a VM's images and choosing how its vCPUs start, from the image's format.
//!
//! - A raw image is copied to `kernel_load_addr` and entered in 16-bit real mode at
//!   `entry_point`, the BIOS-style start the ArceOS hypervisor uses on x86.
//! - An ELF64 image is loaded by its program headers (physical addresses) with linux-loader
//!   and entered in 64-bit long mode at its ELF entry, with the low 4 GiB identity-mapped by
//!   page tables written at 0x1000-0x8000 and interrupts off.
//!
//! The BIOS, device tree and ramdisk images, when given, are copied to their load addresses.

pub mod e820;
mod elf;
pub mod layout;
mod page_tables;
mod vm_memory_view;

use std::io::Cursor;

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr};
use linux_loader::loader::{elf::Elf, KernelLoader};

use crate::kvm::{CpuMode, KvmHal, VCpuBoot};
use page_tables::{write_boot_tables, BOOT_AREA_END, BOOT_AREA_START};

/// The images of a VM, read by whoever knows where they come from (the `axvm` command reads
/// the files a config names; tests and the demo embed them).
#[derive(Clone, Debug, Default)]
pub struct BootImages {
    /// The kernel image (required).
    pub kernel: Vec<u8>,
    /// A BIOS image for `bios_load_addr`.
    pub bios: Option<Vec<u8>>,
    /// A device tree blob for `dtb_load_addr`.
    pub dtb: Option<Vec<u8>>,
    /// A ramdisk for `ramdisk_load_addr`.
    pub ramdisk: Option<Vec<u8>>,
}

/// The kernel image formats axvm recognises by content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// No known header: raw code, entered in real mode.
    Raw,
    /// An x86-64 ELF64 executable, entered in long mode.
    Elf64,
}

/// How the loaded VM starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootPlan {
    /// The kernel's format.
    pub format: ImageFormat,
    /// Where vCPU 0 starts.
    pub bsp_entry: GuestPhysAddr,
    /// How vCPU 0 starts.
    pub bsp: VCpuBoot,
    /// Where the other vCPUs start.
    pub ap_entry: GuestPhysAddr,
    /// How the other vCPUs start.
    pub ap: VCpuBoot,
}

impl BootPlan {
    /// Every vCPU starting at boot in `mode`, with no boot-protocol registers: axvm's direct
    /// start.
    fn direct(
        format: ImageFormat,
        mode: CpuMode,
        bsp_entry: GuestPhysAddr,
        ap_entry: GuestPhysAddr,
    ) -> Self {
        let boot = VCpuBoot {
            mode,
            ..VCpuBoot::default()
        };
        Self {
            format,
            bsp_entry,
            bsp: boot,
            ap_entry,
            ap: boot,
        }
    }
}

/// The format of a kernel image, from its first bytes.
pub fn detect_format(image: &[u8]) -> ImageFormat {
    if elf::is_elf(image) {
        ImageFormat::Elf64
    } else {
        ImageFormat::Raw
    }
}

/// Loads `images` into `vm`'s memory and gives every vCPU its entry and mode.
pub fn load_images(vm: &AxVM<KvmHal>, images: &BootImages) -> Result<BootPlan, crate::Error> {
    let config = vm.config();
    load_extra_images(vm, images)?;
    let plan = match detect_format(&images.kernel) {
        ImageFormat::Raw => load_raw(vm, &images.kernel)?,
        ImageFormat::Elf64 => load_elf64(vm, &images.kernel)?,
    };
    for vcpu_id in 0..vm.vcpu_num() {
        let (entry, boot) = if vcpu_id == 0 {
            (plan.bsp_entry, plan.bsp)
        } else {
            (plan.ap_entry, plan.ap)
        };
        vm.set_vcpu_entry(vcpu_id, entry)?;
        vm.setup_vcpu(vcpu_id, boot)?;
    }
    log::info!(
        "VM {}: {:?} kernel, vCPU 0 starts at {} in {:?}",
        config.id,
        plan.format,
        plan.bsp_entry,
        plan.bsp.mode
    );
    Ok(plan)
}

fn load_extra_images(vm: &AxVM<KvmHal>, images: &BootImages) -> Result<(), ConfigError> {
    let image_config = vm.config().image_config;
    let extras = [
        (
            "kernel.bios_load_addr",
            &images.bios,
            image_config.bios_load_gpa,
        ),
        (
            "kernel.dtb_load_addr",
            &images.dtb,
            image_config.dtb_load_gpa,
        ),
        (
            "kernel.ramdisk_load_addr",
            &images.ramdisk,
            image_config.ramdisk_load_gpa,
        ),
    ];
    for (field, image, load_gpa) in extras {
        let Some(image) = image else { continue };
        let gpa = load_gpa
            .ok_or_else(|| ConfigError::invalid(field, "is required when its image is given"))?;
        copy_image(vm, field, gpa, image)?;
    }
    Ok(())
}

/// Copies `image` to `gpa` after checking it fits in one RAM region.
fn copy_image(
    vm: &AxVM<KvmHal>,
    field: &str,
    gpa: GuestPhysAddr,
    image: &[u8],
) -> Result<(), ConfigError> {
    vm.config()
        .check_image_fits(field, gpa, image.len() as u64)?;
    vm.memory()
        .write(gpa, image)
        .map_err(|err| ConfigError::invalid(field, err.to_string()))
}

fn load_raw(vm: &AxVM<KvmHal>, kernel: &[u8]) -> Result<BootPlan, ConfigError> {
    let config = vm.config();
    copy_image(
        vm,
        "kernel.kernel_load_addr",
        config.image_config.kernel_load_gpa,
        kernel,
    )?;
    Ok(BootPlan::direct(
        ImageFormat::Raw,
        CpuMode::Real,
        config.bsp_entry(),
        config.ap_entry(),
    ))
}

fn load_elf64(vm: &AxVM<KvmHal>, kernel: &[u8]) -> Result<BootPlan, ConfigError> {
    let config = vm.config();
    let field = "kernel.kernel_path";
    let info = parse_kernel_elf(kernel)?;
    check_elf_placement(config, &info)?;
    let memory = vm_memory_view::vm_memory_view(vm.memory())
        .map_err(|problem| ConfigError::invalid(field, problem))?;
    Elf::load(&memory, None, &mut Cursor::new(kernel), None).map_err(|err| {
        ConfigError::invalid(field, format!("loading the ELF image failed: {err}"))
    })?;
    let tables = write_boot_tables(vm).map_err(|err| {
        ConfigError::invalid(
            "kernel.memory_regions",
            format!("cannot write the boot page tables: {err}"),
        )
    })?;
    let entry = GuestPhysAddr::new(info.entry);
    if entry != config.bsp_entry() {
        log::info!(
            "ELF entry {entry} is used instead of kernel.entry_point {}",
            config.bsp_entry()
        );
    }
    let mode = CpuMode::Long {
        page_table_root: tables.page_table_root,
        gdt_base: tables.gdt_base,
    };
    Ok(BootPlan::direct(ImageFormat::Elf64, mode, entry, entry))
}

/// Refuses a kernel image that `config` cannot hold, naming the field, without loading it:
/// a raw image that does not fit its region; an ELF64 image that is not loadable, whose
/// segments lie outside RAM or over the boot tables, whose entry is outside RAM, or whose
/// config has no RAM for the boot tables. `axvm check` and the loader use the same rules.
pub fn check_kernel_placement(config: &AxVMConfig, kernel: &[u8]) -> Result<(), ConfigError> {
    match detect_format(kernel) {
        ImageFormat::Raw => config.check_image_fits(
            "kernel.kernel_load_addr",
            config.image_config.kernel_load_gpa,
            kernel.len() as u64,
        ),
        ImageFormat::Elf64 => check_elf_placement(config, &parse_kernel_elf(kernel)?),
    }
}

fn parse_kernel_elf(kernel: &[u8]) -> Result<elf::ElfInfo, ConfigError> {
    elf::parse_elf64(kernel).map_err(|problem| {
        ConfigError::invalid(
            "kernel.kernel_path",
            format!("not a loadable ELF64 image: {problem}"),
        )
    })
}

/// Refuses segments outside RAM or over the boot tables, an entry outside RAM, and a config
/// without RAM for the boot tables, naming the problem before anything is written.
fn check_elf_placement(config: &AxVMConfig, info: &elf::ElfInfo) -> Result<(), ConfigError> {
    let field = "kernel.kernel_path";
    config
        .check_image_fits("kernel.memory_regions", GuestPhysAddr::new(BOOT_AREA_START), BOOT_AREA_END - BOOT_AREA_START)
        .map_err(|_| {
            ConfigError::invalid(
                "kernel.memory_regions",
                format!("64-bit ELF guests need RAM at {BOOT_AREA_START:#x}..{BOOT_AREA_END:#x} for the boot page tables and GDT; add a region there"),
            )
        })?;
    for (index, segment) in info.segments.iter().enumerate() {
        let describe = format!(
            "{field} (ELF segment {index} at {:#x}, {:#x} bytes)",
            segment.paddr, segment.memsz
        );
        config.check_image_fits(&describe, GuestPhysAddr::new(segment.paddr), segment.memsz)?;
        if segment.paddr < BOOT_AREA_END
            && segment.paddr.saturating_add(segment.memsz) > BOOT_AREA_START
        {
            return Err(ConfigError::invalid(
                describe,
                format!("overlaps the boot page tables at {BOOT_AREA_START:#x}..{BOOT_AREA_END:#x}; link the image above {BOOT_AREA_END:#x}"),
            ));
        }
    }
    if config
        .region_containing(GuestPhysAddr::new(info.entry))
        .is_none()
    {
        return Err(ConfigError::invalid(
            field,
            format!(
                "the ELF entry {:#x} is not inside any memory region",
                info.entry
            ),
        ));
    }
    Ok(())
}

/// Where a kernel image's bytes go in guest memory, for memory maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelLayout {
    /// The image's format.
    pub format: ImageFormat,
    /// The entry the image names (ELF), if it names one.
    pub entry: Option<GuestPhysAddr>,
    /// (start, size) of each range the image occupies.
    pub ranges: Vec<(GuestPhysAddr, u64)>,
}

/// Describes where `kernel` would be loaded, for a raw image at `load_gpa`.
pub fn kernel_layout(kernel: &[u8], load_gpa: GuestPhysAddr) -> Result<KernelLayout, String> {
    match detect_format(kernel) {
        ImageFormat::Raw => Ok(KernelLayout {
            format: ImageFormat::Raw,
            entry: None,
            ranges: vec![(load_gpa, kernel.len() as u64)],
        }),
        ImageFormat::Elf64 => {
            let info = elf::parse_elf64(kernel)?;
            Ok(KernelLayout {
                format: ImageFormat::Elf64,
                entry: Some(GuestPhysAddr::new(info.entry)),
                ranges: info
                    .segments
                    .iter()
                    .map(|s| (GuestPhysAddr::new(s.paddr), s.memsz))
                    .collect(),
            })
        }
    }
}
