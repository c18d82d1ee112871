//! PVH: the Xen-born direct boot that Linux, FreeBSD and others support from an ELF image
//! (`vmlinux`) carrying a `XEN_ELFNOTE_PHYS32_ENTRY` note, and that QEMU uses for such
//! images with `-kernel`.
//!
//! The image may be ELF64 or ELF32 (QEMU boots both; boot loaders and Xen ship 32-bit
//! builds, the entry being 32-bit anyway). An ELF64 image is loaded by its program headers
//! with linux-loader, which also reads the note; linux-loader reads ELF64 only, so an ELF32
//! image's segments, which `elf.rs` parsed and bounds-checked, are copied by axvm. The kernel is entered at the note's 32-bit entry in protected mode, paging off, with
//! EBX = the `hvm_start_info` structure (version 1, with the memory map) that axvm writes in
//! the boot data area (`platform::pc::layout`), together with the command line, the ramdisk as the one
//! module, and the memory map. The ACPI RSDP address is the caller's, since the ACPI tables
//! are written elsewhere.

use std::io::Cursor;

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr};
use linux_loader::loader::elf::start_info::{
    hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info,
};
use linux_loader::loader::elf::{Elf, PvhBootCapability};
use linux_loader::loader::KernelLoader;
use vm_memory::ByteValued;

use super::e820::e820_map;
use super::placement::{self, RamdiskPlacement, FOUR_GIB, KERNEL_FIELD};
use super::protocol::{boot_info_area, BootProtocol, KernelImage, KernelPlan, GDT_AREA};
use super::{protected32_boot, BootImages, BootPlan, ImageFormat};
use crate::kvm::{BootRegs, KvmHal};
use crate::vm_memory_view::vm_memory_view;
use axvm_pc::boot_info::BootInfoWriter;
use axvm_pc::elf::{self, Segment};

/// `hvm_start_info.magic`: tells the kernel the structure is there.
pub const START_INFO_MAGIC: u32 = 0x336e_c578;
/// Version 1 adds the memory map fields, which Linux reads when present.
const START_INFO_VERSION: u32 = 1;

/// Where a PVH kernel's bytes go and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Kernel {
    /// The 32-bit entry from the PVH note (not the ELF entry, which is 64-bit).
    pub(crate) entry: u64,
    pub(crate) segments: Vec<Segment>,
}

/// Whether `image` is an ELF image (64- or 32-bit) with a PVH entry note.
fn detect(image: &[u8]) -> bool {
    matches!(elf::class(image), Some(1 | 2)) && matches!(elf::pvh_entry(image), Ok(Some(_)))
}

/// The PVH entry and loadable segments of `image`.
fn parse(image: &[u8]) -> Result<Kernel, ConfigError> {
    let refuse =
        |problem: String| ConfigError::invalid(KERNEL_FIELD, format!("PVH kernel: {problem}"));
    let info = elf::parse_elf(image).map_err(refuse)?;
    let entry = elf::pvh_entry(image)
        .map_err(refuse)?
        .ok_or_else(|| refuse("it has no XEN_ELFNOTE_PHYS32_ENTRY note".into()))?;
    Ok(Kernel {
        entry,
        segments: info.segments,
    })
}

/// Refuses a kernel outside RAM or with its entry outside RAM.
fn check(config: &AxVMConfig, kernel: &Kernel) -> Result<(), ConfigError> {
    placement::check_segments(config, "ELF segment", &kernel.segments)?;
    placement::check_entry(config, kernel.entry)
}

/// The PVH protocol (see the module documentation).
pub(crate) struct Pvh;

impl BootProtocol for Pvh {
    fn format(&self) -> ImageFormat {
        ImageFormat::Pvh
    }

    fn detected_by(&self) -> &'static str {
        "an ELF image (64- or 32-bit) with a XEN_ELFNOTE_PHYS32_ENTRY note"
    }

    fn boot_data(&self) -> Vec<(u64, u64, &'static str)> {
        vec![
            GDT_AREA,
            boot_info_area(
                "boot data area: command line, module list, memory map, hvm_start_info (EBX)",
            ),
        ]
    }

    fn detect(&self, image: &[u8]) -> bool {
        detect(image)
    }

    fn layout(&self, kernel: &[u8], _raw_load_gpa: GuestPhysAddr) -> Result<KernelImage, String> {
        let kernel = parse(kernel).map_err(|err| err.to_string())?;
        Ok(KernelImage::new(kernel.entry, kernel.segments))
    }

    fn plan(
        &self,
        config: &AxVMConfig,
        kernel: &[u8],
        ramdisk: Option<&[u8]>,
    ) -> Result<KernelPlan, ConfigError> {
        let kernel = parse(kernel)?;
        check(config, &kernel)?;
        KernelPlan::of_segments(config, kernel.entry, kernel.segments, ramdisk, FOUR_GIB)
    }

    /// Loads the kernel and its ramdisk, writes `hvm_start_info` and the GDT: vCPU 0 starts
    /// in 32-bit protected mode at the PVH entry, the others wait for INIT-SIPI-SIPI. `rsdp`
    /// is the ACPI RSDP address the guest is given (0 when None).
    fn load(
        &self,
        vm: &AxVM<KvmHal>,
        images: &BootImages,
        plan: &KernelPlan,
        rsdp: Option<GuestPhysAddr>,
    ) -> Result<BootPlan, ConfigError> {
        let placed = plan.ramdisk;
        let kernel = Kernel {
            entry: plan.image.entry.unwrap_or_default(),
            segments: plan.image.segments.clone(),
        };
        load_elf(vm, &images.kernel, &kernel)?;
        placement::copy_ramdisk(vm, images.ramdisk.as_deref(), placed)?;
        let layout = plan.layout();
        let start_info = write_start_info(vm, placed, rsdp, layout.boot_info)?;
        let bsp = protected32_boot(
            vm,
            layout.tables.0,
            BootRegs {
                rbx: start_info.as_u64(),
                ..BootRegs::default()
            },
        )?;
        Ok(BootPlan::protocol(
            ImageFormat::Pvh,
            GuestPhysAddr::new(kernel.entry),
            bsp,
            start_info,
            placed,
        ))
    }
}

/// Loads an ELF64 image's segments with linux-loader and checks it found the entry axvm
/// checked, then zeroes the bss, which linux-loader leaves as it is; copies an ELF32
/// image's segments (bss zeroed) itself.
fn load_elf(vm: &AxVM<KvmHal>, image: &[u8], kernel: &Kernel) -> Result<(), ConfigError> {
    if elf::class(image) == Some(1) {
        return placement::copy_segments(vm, image, &kernel.segments);
    }
    let memory = vm_memory_view(vm.memory())
        .map_err(|problem| ConfigError::invalid(KERNEL_FIELD, problem))?;
    let loaded = Elf::load(&memory, None, &mut Cursor::new(image), None).map_err(|err| {
        ConfigError::invalid(
            KERNEL_FIELD,
            format!("loading the PVH kernel failed: {err}"),
        )
    })?;
    match loaded.pvh_boot_cap {
        PvhBootCapability::PvhEntryPresent(entry) if entry.0 == kernel.entry => {}
        other => {
            return Err(ConfigError::invalid(
                KERNEL_FIELD,
                format!(
                    "the PVH note gives entry {:#x} but linux-loader reports: {other}",
                    kernel.entry
                ),
            ))
        }
    }
    placement::zero_bss(vm, &kernel.segments)
}

/// Writes the command line, module list, memory map and, last, `hvm_start_info`; returns
/// its address.
fn write_start_info(
    vm: &AxVM<KvmHal>,
    ramdisk: Option<RamdiskPlacement>,
    rsdp: Option<GuestPhysAddr>,
    area: (u64, u64),
) -> Result<GuestPhysAddr, ConfigError> {
    let config = vm.config();
    let mut writer = BootInfoWriter::new(vm, area);
    let cmdline_paddr = match super::kernel_cmdline(config).as_deref() {
        Some(cmdline) => writer.push_str("PVH command line", cmdline)?.as_u64(),
        None => 0,
    };
    let (nr_modules, modlist_paddr) = match ramdisk {
        Some(ramdisk) => {
            let module = hvm_modlist_entry {
                paddr: ramdisk.gpa.as_u64(),
                size: ramdisk.size,
                cmdline_paddr: 0,
                reserved: 0,
            };
            let at = writer.push("PVH module list", module.as_slice(), 8)?;
            (1, at.as_u64())
        }
        None => (0, 0),
    };
    let memmap: Vec<u8> = e820_map(config)
        .iter()
        .flat_map(|entry| {
            let entry = hvm_memmap_table_entry {
                addr: entry.addr,
                size: entry.size,
                type_: entry.kind as u32,
                reserved: 0,
            };
            entry.as_slice().to_vec()
        })
        .collect();
    let memmap_entries = (memmap.len() / std::mem::size_of::<hvm_memmap_table_entry>()) as u32;
    let memmap_paddr = writer.push("PVH memory map", &memmap, 8)?.as_u64();
    let start_info = hvm_start_info {
        magic: START_INFO_MAGIC,
        version: START_INFO_VERSION,
        flags: 0,
        nr_modules,
        modlist_paddr,
        cmdline_paddr,
        rsdp_paddr: rsdp.map_or(0, |rsdp| rsdp.as_u64()),
        memmap_paddr,
        memmap_entries,
        reserved: 0,
    };
    writer.push("PVH start_info", start_info.as_slice(), 8)
}
