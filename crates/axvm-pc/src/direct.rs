//! axvm's direct starts, for images without a boot protocol, checked and loaded the same on
//! every host:
//!
//! - **ELF64**: the segments go to their physical addresses, the GDT and identity page
//!   tables of [`boot_tables`](crate::boot_tables) are written, and every vCPU starts in
//!   64-bit long mode at the ELF entry;
//! - **raw**: the bytes go to `kernel_load_addr`, and every vCPU starts in real mode at the
//!   config's entries;
//! - **BIOS** (the ArceOS hypervisor's x86 start): when the config loads a BIOS image and
//!   `entry_point` lies in it ([`bios_holding_entry`]), vCPU 0 starts there in real mode, the
//!   kernel is copied as it is to `kernel_load_addr` (the BIOS enters it), and the other vCPUs
//!   wait for INIT-SIPI-SIPI.
//!
//! [`plan_elf64`] checks everything first, so a misplaced image is refused, naming the
//! config field, before the VM exists (`axvm check` says the same without running).

use alloc::format;

use axvm::{AxVM, AxVMConfig, AxVMHal, ConfigError, GuestPhysAddr};

use crate::boot_tables::{write_boot_tables, BOOT_TABLES_END, BOOT_TABLES_START};
use crate::elf::{self, ElfInfo};
use crate::load::{copy_image, copy_segments, KERNEL_FIELD};
use crate::vcpu_boot::{CpuMode, StartPolicy, VCpuBoot};

/// The field that names the RAM the boot tables need.
const REGIONS_FIELD: &str = "kernel.memory_regions";

/// The ELF64 image `kernel`, parsed and checked against `config`: segments each inside one
/// RAM region and clear of the boot tables, the entry in RAM, RAM for the boot tables.
pub fn plan_elf64(config: &AxVMConfig, kernel: &[u8]) -> Result<ElfInfo, ConfigError> {
    let not_loadable = |problem| {
        ConfigError::invalid(
            KERNEL_FIELD,
            format!("not a loadable ELF64 image: {problem}"),
        )
    };
    let info = elf::parse_elf64(kernel).map_err(not_loadable)?;
    // Not a PVH kernel, but a malformed PT_NOTE is refused all the same.
    elf::pvh_entry(kernel).map_err(not_loadable)?;
    check_elf_placement(config, &info)?;
    Ok(info)
}

/// Loads the ELF64 image that [`plan_elf64`] checked and writes the boot tables; returns
/// how every vCPU starts (long mode, at `info.entry`).
pub fn load_elf64<H: AxVMHal>(
    vm: &AxVM<H>,
    kernel: &[u8],
    info: &ElfInfo,
) -> Result<VCpuBoot, ConfigError> {
    copy_segments(vm, kernel, &info.segments)?;
    let tables = write_boot_tables(vm).map_err(|err| {
        ConfigError::invalid(
            REGIONS_FIELD,
            format!("cannot write the boot page tables: {err}"),
        )
    })?;
    Ok(VCpuBoot {
        mode: CpuMode::Long {
            page_table_root: tables.page_table_root,
            gdt_base: tables.gdt_base,
        },
        ..VCpuBoot::default()
    })
}

/// Copies a raw image to `kernel_load_addr` after checking it fits in one RAM region;
/// every vCPU then starts in real mode (`VCpuBoot::default()`) at the config's entries.
pub fn load_raw<H: AxVMHal>(vm: &AxVM<H>, kernel: &[u8]) -> Result<VCpuBoot, ConfigError> {
    let gpa = vm.config().image_config.kernel_load_gpa;
    copy_image(vm, "kernel.kernel_load_addr", gpa, kernel)?;
    Ok(VCpuBoot::default())
}

/// The BIOS image's range `[start, end)` when `config` starts in it: a BIOS image of
/// `bios_len` bytes is given, with a load address, and `entry_point` lies inside it. None
/// otherwise (the BIOS image, if any, is then only copied).
pub fn bios_holding_entry(config: &AxVMConfig, bios_len: Option<u64>) -> Option<(u64, u64)> {
    let start = config.image_config.bios_load_gpa?.as_u64();
    let end = start.checked_add(bios_len?)?;
    let entry = config.bsp_entry().as_u64();
    (start <= entry && entry < end).then_some((start, end))
}

/// How the vCPUs of the BIOS start begin: vCPU 0 in real mode at `entry_point`, the others
/// waiting for INIT-SIPI-SIPI (`(bsp, aps)`), as axvisor starts only the primary vCPU.
pub fn bios_start_boot() -> (VCpuBoot, VCpuBoot) {
    let aps = VCpuBoot {
        start: StartPolicy::WaitForSipi,
        ..VCpuBoot::default()
    };
    (VCpuBoot::default(), aps)
}

/// Refuses segments outside RAM or over the boot tables, an entry outside RAM, and a config
/// without RAM for the boot tables, naming the problem before anything is written.
fn check_elf_placement(config: &AxVMConfig, info: &ElfInfo) -> Result<(), ConfigError> {
    let tables = GuestPhysAddr::new(BOOT_TABLES_START);
    config
        .check_image_fits(REGIONS_FIELD, tables, BOOT_TABLES_END - BOOT_TABLES_START)
        .map_err(|_| {
            ConfigError::invalid(
                REGIONS_FIELD,
                format!("64-bit ELF guests need RAM at {BOOT_TABLES_START:#x}..{BOOT_TABLES_END:#x} for the boot page tables and GDT; add a region there"),
            )
        })?;
    for (index, segment) in info.segments.iter().enumerate() {
        let describe = format!(
            "{KERNEL_FIELD} (ELF segment {index} at {:#x}, {:#x} bytes)",
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
            KERNEL_FIELD,
            format!(
                "the ELF entry {:#x} is not inside any memory region",
                info.entry
            ),
        ));
    }
    Ok(())
}
