//! axvm's direct starts, without a boot protocol: a raw image entered in 16-bit real mode at
//! `entry_point` (the BIOS-style start the ArceOS hypervisor uses on x86), and an ELF64
//! image entered in 64-bit long mode at its ELF entry. Every vCPU starts at boot.

use std::io::Cursor;

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr};
use linux_loader::loader::{elf::Elf, KernelLoader};

use super::protocol::{BootProtocol, KernelImage, KernelPlan, BOOT_TABLES_AREA};
use super::{copy_image, BootImages, BootPlan, ImageFormat};
use crate::kvm::{CpuMode, KvmHal};
use crate::platform::pc::layout::{BOOT_TABLES_END, BOOT_TABLES_START};
use crate::vm_memory_view;
use axvm_pc::boot_tables::write_boot_tables;
use axvm_pc::elf::{self, Segment};

/// The raw start: anything no other protocol detects is code for `kernel_load_addr`, entered
/// in real mode at the config's entries.
pub(crate) struct RawDirect;

/// The direct 64-bit start of an ELF64 image without a boot protocol.
pub(crate) struct Elf64Direct;

impl BootProtocol for RawDirect {
    fn format(&self) -> ImageFormat {
        ImageFormat::Raw
    }

    fn detected_by(&self) -> &'static str {
        "no header axvm knows: raw code entered in real mode"
    }

    fn boot_data(&self) -> Vec<(u64, u64, &'static str)> {
        Vec::new()
    }

    fn detect(&self, _image: &[u8]) -> bool {
        true
    }

    fn layout(&self, kernel: &[u8], raw_load_gpa: GuestPhysAddr) -> Result<KernelImage, String> {
        let len = kernel.len() as u64;
        let segment = Segment {
            paddr: raw_load_gpa.as_u64(),
            vaddr: raw_load_gpa.as_u64(),
            offset: 0,
            filesz: len,
            memsz: len,
        };
        Ok(KernelImage {
            entry: None,
            segments: vec![segment],
        })
    }

    fn plan(
        &self,
        config: &AxVMConfig,
        kernel: &[u8],
        _ramdisk: Option<&[u8]>,
    ) -> Result<KernelPlan, ConfigError> {
        let load_gpa = config.image_config.kernel_load_gpa;
        config.check_image_fits("kernel.kernel_load_addr", load_gpa, kernel.len() as u64)?;
        Ok(KernelPlan {
            image: self
                .layout(kernel, load_gpa)
                .map_err(|problem| ConfigError::invalid("kernel.kernel_path", problem))?,
            ramdisk: None,
            layout: None,
        })
    }

    /// Copies the image to `kernel_load_addr`; every vCPU starts in real mode at the
    /// config's entries.
    fn load(
        &self,
        vm: &AxVM<KvmHal>,
        images: &BootImages,
        _plan: &KernelPlan,
        _rsdp: Option<GuestPhysAddr>,
    ) -> Result<BootPlan, ConfigError> {
        let config = vm.config();
        copy_image(
            vm,
            "kernel.kernel_load_addr",
            config.image_config.kernel_load_gpa,
            &images.kernel,
        )?;
        Ok(BootPlan::direct(
            ImageFormat::Raw,
            CpuMode::Real,
            config.bsp_entry(),
            config.ap_entry(),
        ))
    }
}

impl BootProtocol for Elf64Direct {
    fn format(&self) -> ImageFormat {
        ImageFormat::Elf64
    }

    fn detected_by(&self) -> &'static str {
        "an ELF image without a Multiboot header or PVH note: axvm's direct 64-bit start"
    }

    fn boot_data(&self) -> Vec<(u64, u64, &'static str)> {
        vec![BOOT_TABLES_AREA]
    }

    fn detect(&self, image: &[u8]) -> bool {
        elf::is_elf(image)
    }

    fn layout(&self, kernel: &[u8], _raw_load_gpa: GuestPhysAddr) -> Result<KernelImage, String> {
        let info = elf::parse_elf64(kernel)?;
        Ok(KernelImage::new(info.entry, info.segments))
    }

    fn plan(
        &self,
        config: &AxVMConfig,
        kernel: &[u8],
        _ramdisk: Option<&[u8]>,
    ) -> Result<KernelPlan, ConfigError> {
        let info = parse_kernel_elf(kernel)?;
        // Not a PVH kernel, but its notes are still parsed when it is loaded: a malformed
        // PT_NOTE is refused here, before the VM is created, in the loader's stead.
        elf::pvh_entry(kernel).map_err(|problem| {
            ConfigError::invalid(
                "kernel.kernel_path",
                format!("not a loadable ELF64 image: {problem}"),
            )
        })?;
        check_elf_placement(config, &info)?;
        Ok(KernelPlan {
            image: KernelImage::new(info.entry, info.segments),
            ramdisk: None,
            layout: None,
        })
    }

    fn load(
        &self,
        vm: &AxVM<KvmHal>,
        images: &BootImages,
        plan: &KernelPlan,
        _rsdp: Option<GuestPhysAddr>,
    ) -> Result<BootPlan, ConfigError> {
        load_elf64(vm, &images.kernel, plan)
    }
}

/// Loads an ELF64 image with linux-loader; every vCPU starts in long mode at the ELF entry
/// (which [`Elf64Direct::plan`] checked).
fn load_elf64(
    vm: &AxVM<KvmHal>,
    kernel: &[u8],
    plan: &KernelPlan,
) -> Result<BootPlan, ConfigError> {
    let field = "kernel.kernel_path";
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
    let entry = GuestPhysAddr::new(plan.image.entry.unwrap_or_default());
    let mode = CpuMode::Long {
        page_table_root: tables.page_table_root,
        gdt_base: tables.gdt_base,
    };
    Ok(BootPlan::direct(ImageFormat::Elf64, mode, entry, entry))
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
        .check_image_fits("kernel.memory_regions", GuestPhysAddr::new(BOOT_TABLES_START), BOOT_TABLES_END - BOOT_TABLES_START)
        .map_err(|_| {
            ConfigError::invalid(
                "kernel.memory_regions",
                format!("64-bit ELF guests need RAM at {BOOT_TABLES_START:#x}..{BOOT_TABLES_END:#x} for the boot page tables and GDT; add a region there"),
            )
        })?;
    for (index, segment) in info.segments.iter().enumerate() {
        let describe = format!(
            "{field} (ELF segment {index} at {:#x}, {:#x} bytes)",
            segment.paddr, segment.memsz
        );
        config.check_image_fits(&describe, GuestPhysAddr::new(segment.paddr), segment.memsz)?;
        if segment.paddr < BOOT_TABLES_END
            && segment.paddr.saturating_add(segment.memsz) > BOOT_TABLES_START
        {
            return Err(ConfigError::invalid(
                describe,
                format!("overlaps the boot page tables at {BOOT_TABLES_START:#x}..{BOOT_TABLES_END:#x}; link the image above {BOOT_TABLES_END:#x}"),
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
