//! The Linux x86 boot protocol for bzImage kernels, through its 64-bit entry.
//!
//! A bzImage is a real-mode setup part (boot sector and `setup_sects` sectors, with the
//! setup header at 0x1f1, "HdrS" at 0x202) followed by the protected-mode kernel. axvm runs
//! no real-mode setup code: like other VMMs it loads the protected-mode kernel at 1 MiB (the
//! header's default `code32_start`, where QEMU loads it too), fills the "zero page"
//! (`boot_params`) itself, and enters the kernel's 64-bit entry (load address + 0x200) in
//! long mode with the low 4 GiB identity-mapped and RSI = the zero page. That entry exists
//! when the header's `xloadflags` has XLF_KERNEL_64 (protocol 2.12+), which is required.
//!
//! The zero page gets the image's setup header with the loader's fields set (loader type
//! 0xff, command line, ramdisk), the e820 memory map and, from protocol 2.14, the ACPI RSDP
//! address. It goes in the boot data area (`platform::pc::layout`, or where `axvm_pc::low_memory`
//! moved it), after the command line.

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr};
use linux_loader::loader::bootparam::{boot_e820_entry, boot_params, setup_header};
use vm_memory::ByteValued;

use super::e820::e820_map;
use super::placement::{self, RamdiskPlacement, KERNEL_FIELD};
use super::protocol::{boot_info_area, BootProtocol, KernelImage, KernelPlan, BOOT_TABLES_AREA};
use super::{BootImages, BootPlan, ImageFormat};
use crate::kvm::{BootRegs, CpuMode, KvmHal, VCpuBoot};
use crate::platform::pc::layout::BZIMAGE_LOAD_ADDR;
use axvm_pc::boot_info::BootInfoWriter;
use axvm_pc::boot_tables::write_boot_tables_at;
use axvm_pc::elf::Segment;

/// Where the protected-mode kernel goes (the PC layout's [`BZIMAGE_LOAD_ADDR`]).
pub const KERNEL_LOAD_ADDR: u64 = BZIMAGE_LOAD_ADDR;
/// The 64-bit entry is this far into the protected-mode kernel.
const ENTRY_64_OFFSET: u64 = 0x200;
/// The setup header's offset in the image and in `boot_params`.
const SETUP_HEADER_OFFSET: usize = 0x1f1;
/// "HdrS", the setup header's magic, at 0x202.
const HDRS: &[u8; 4] = b"HdrS";
const MAGIC_OFFSET: usize = 0x202;
/// Protocol 2.12 introduced `xloadflags`, which says whether the 64-bit entry exists.
const MIN_VERSION: u16 = 0x020c;
/// Protocol 2.14 introduced `acpi_rsdp_addr`.
const RSDP_VERSION: u16 = 0x020e;
const XLF_KERNEL_64: u16 = 1 << 0;
/// `loadflags` bit 0: the protected-mode kernel is loaded at 1 MiB (a bzImage, not a zImage).
const LOADED_HIGH: u8 = 1 << 0;
/// `type_of_loader` for a loader without an assigned id.
const LOADER_UNDEFINED: u8 = 0xff;
/// Before protocol 2.03 kernels did not say; this is the documented default.
const DEFAULT_INITRD_ADDR_MAX: u32 = 0x37ff_ffff;
/// The zero page's e820 table holds this many entries.
const E820_MAX: usize = 128;

/// A bzImage's setup header and where its protected-mode kernel goes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Kernel {
    header: setup_header,
    /// The protected-mode kernel: file bytes from the end of the setup sectors, at 1 MiB.
    pub(crate) segment: Segment,
}

impl Kernel {
    /// The 64-bit entry.
    pub(crate) fn entry(&self) -> u64 {
        KERNEL_LOAD_ADDR + ENTRY_64_OFFSET
    }

    /// What the ramdisk must keep clear of: the loaded file, and the `init_size` bytes the
    /// kernel works in from its runtime address, where it decompresses itself. A relocatable
    /// kernel runs at its load address aligned up to `kernel_alignment`, but not below
    /// `pref_address` (its link address); another one runs at `pref_address` (the load
    /// address when the header gives none).
    pub(crate) fn footprint(&self) -> Vec<Segment> {
        let header = self.header;
        let pref_address = header.pref_address;
        let runtime = if header.relocatable_kernel != 0 {
            let align = u64::from(header.kernel_alignment).max(1);
            KERNEL_LOAD_ADDR.next_multiple_of(align).max(pref_address)
        } else if pref_address != 0 {
            pref_address
        } else {
            KERNEL_LOAD_ADDR
        };
        let working = Segment {
            paddr: runtime,
            vaddr: runtime,
            offset: 0,
            filesz: 0,
            memsz: u64::from(header.init_size),
        };
        [self.segment, working]
            .into_iter()
            .filter(|segment| segment.memsz != 0)
            .collect()
    }

    /// One past the highest address the kernel accepts a ramdisk at.
    pub(crate) fn ramdisk_limit(&self) -> u64 {
        let max = match self.header.initrd_addr_max {
            0 => DEFAULT_INITRD_ADDR_MAX,
            max => max,
        };
        u64::from(max) + 1
    }
}

/// Whether `image` has the Linux setup header magic "HdrS" at 0x202.
fn detect(image: &[u8]) -> bool {
    image.get(MAGIC_OFFSET..MAGIC_OFFSET + 4) == Some(HDRS)
}

/// Reads the setup header and refuses images axvm cannot start through the 64-bit entry.
fn parse(image: &[u8]) -> Result<Kernel, ConfigError> {
    let refuse =
        |problem: String| ConfigError::invalid(KERNEL_FIELD, format!("bzImage: {problem}"));
    let mut header = setup_header::default();
    let size = header.as_slice().len();
    let bytes = image
        .get(SETUP_HEADER_OFFSET..SETUP_HEADER_OFFSET + size)
        .ok_or_else(|| refuse("the setup header is truncated".into()))?;
    header.as_mut_slice().copy_from_slice(bytes);
    let version = header.version;
    if version < MIN_VERSION {
        return Err(refuse(format!(
            "boot protocol {}.{:02} is older than 2.12, so the kernel has no 64-bit entry axvm could use",
            version >> 8,
            version & 0xff
        )));
    }
    if header.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(refuse(
            "the setup header's xloadflags lack XLF_KERNEL_64 (bit 0): the kernel has no 64-bit entry; build it for x86-64".into(),
        ));
    }
    if header.loadflags & LOADED_HIGH == 0 {
        return Err(refuse(
            "loadflags lack LOADED_HIGH: a zImage loaded below 1 MiB is not supported".into(),
        ));
    }
    let setup_sects = match header.setup_sects {
        0 => 4,
        sects => u64::from(sects),
    };
    let offset = (setup_sects + 1) * 512;
    let len = (image.len() as u64)
        .checked_sub(offset)
        .filter(|&len| len > ENTRY_64_OFFSET)
        .ok_or_else(|| {
            refuse(format!(
                "the file ends before the 64-bit entry ({setup_sects} setup sectors, then 0x200 bytes)"
            ))
        })?;
    let segment = Segment {
        paddr: KERNEL_LOAD_ADDR,
        vaddr: KERNEL_LOAD_ADDR,
        offset,
        filesz: len,
        memsz: len,
    };
    Ok(Kernel { header, segment })
}

/// Refuses a kernel that does not fit in RAM, or a command line longer than it accepts.
fn check(config: &AxVMConfig, kernel: &Kernel) -> Result<(), ConfigError> {
    placement::check_segments(config, "protected-mode kernel", &[kernel.segment])?;
    let cmdline_len = super::kernel_cmdline(config).map_or(0, |line| line.len());
    let max = kernel.header.cmdline_size;
    if cmdline_len as u64 > u64::from(max) {
        return Err(ConfigError::invalid(
            "kernel.cmdline",
            format!("is {cmdline_len} bytes; this kernel accepts at most {max}"),
        ));
    }
    check_e820_fits(config)
}

/// Refuses a memory map longer than the zero page's e820 table.
fn check_e820_fits(config: &AxVMConfig) -> Result<(), ConfigError> {
    let entries = e820_map(config).len();
    if entries > E820_MAX {
        return Err(ConfigError::invalid(
            "kernel.memory_regions",
            format!("make {entries} memory map entries; the Linux zero page holds {E820_MAX}: use fewer regions"),
        ));
    }
    Ok(())
}

/// The Linux boot protocol for bzImages (see the module documentation).
pub(crate) struct BzImage;

impl BootProtocol for BzImage {
    fn format(&self) -> ImageFormat {
        ImageFormat::BzImage
    }

    fn detected_by(&self) -> &'static str {
        "the Linux setup header's \"HdrS\" at 0x202"
    }

    fn boot_data(&self) -> Vec<(u64, u64, &'static str)> {
        vec![
            BOOT_TABLES_AREA,
            boot_info_area("boot data area: command line, zero page (RSI)"),
        ]
    }

    fn detect(&self, image: &[u8]) -> bool {
        detect(image)
    }

    fn layout(&self, kernel: &[u8], _raw_load_gpa: GuestPhysAddr) -> Result<KernelImage, String> {
        let kernel = parse(kernel).map_err(|err| err.to_string())?;
        Ok(KernelImage::new(kernel.entry(), vec![kernel.segment]))
    }

    fn plan(
        &self,
        config: &AxVMConfig,
        kernel: &[u8],
        ramdisk: Option<&[u8]>,
    ) -> Result<KernelPlan, ConfigError> {
        let kernel = parse(kernel)?;
        check(config, &kernel)?;
        let footprint = kernel.footprint();
        let ramdisk = placement::plan_ramdisk(config, ramdisk, &footprint, kernel.ramdisk_limit())?;
        Ok(KernelPlan {
            image: KernelImage::new(kernel.entry(), vec![kernel.segment]),
            ramdisk,
            layout: None,
        })
    }

    fn load(
        &self,
        vm: &AxVM<KvmHal>,
        images: &BootImages,
        plan: &KernelPlan,
        rsdp: Option<GuestPhysAddr>,
    ) -> Result<BootPlan, ConfigError> {
        // The zero page copies the setup header, which the plan does not keep.
        let kernel = parse(&images.kernel)?;
        load(vm, images, &kernel, plan, rsdp)
    }
}

/// Loads the protected-mode kernel and the ramdisk (placed by [`BzImage::plan`]), writes the
/// zero page, the command line and the boot page tables, and returns the plan: vCPU 0 in
/// long mode at the 64-bit entry, the others waiting for INIT-SIPI-SIPI. `rsdp` goes in
/// `acpi_rsdp_addr` when the kernel knows the field.
fn load(
    vm: &AxVM<KvmHal>,
    images: &BootImages,
    kernel: &Kernel,
    plan: &KernelPlan,
    rsdp: Option<GuestPhysAddr>,
) -> Result<BootPlan, ConfigError> {
    let placed = plan.ramdisk;
    let layout = plan.layout();
    placement::copy_segments(vm, &images.kernel, &[kernel.segment])?;
    placement::copy_ramdisk(vm, images.ramdisk.as_deref(), placed)?;
    let zero_page = write_zero_page(vm, kernel, placed, rsdp, layout.boot_info)?;
    let (start, end) = layout.tables;
    let tables = write_boot_tables_at(vm, start).map_err(|err| {
        ConfigError::invalid(
            "kernel.memory_regions",
            format!("cannot write the boot page tables at {start:#x}..{end:#x}, which must be RAM: {err}"),
        )
    })?;
    let bsp = VCpuBoot {
        mode: CpuMode::Long {
            page_table_root: tables.page_table_root,
            gdt_base: tables.gdt_base,
        },
        regs: BootRegs {
            rsi: zero_page.as_u64(),
            ..BootRegs::default()
        },
        ..VCpuBoot::default()
    };
    Ok(BootPlan::protocol(
        ImageFormat::BzImage,
        GuestPhysAddr::new(kernel.entry()),
        bsp,
        zero_page,
        placed,
    ))
}

/// Writes the command line and the zero page after it; returns the zero page's address.
fn write_zero_page(
    vm: &AxVM<KvmHal>,
    kernel: &Kernel,
    ramdisk: Option<RamdiskPlacement>,
    rsdp: Option<GuestPhysAddr>,
    area: (u64, u64),
) -> Result<GuestPhysAddr, ConfigError> {
    let config = vm.config();
    let mut writer = BootInfoWriter::new(vm, area);
    let cmdline = writer.push_str(
        "Linux command line",
        super::kernel_cmdline(config).as_deref().unwrap_or(""),
    )?;
    let params = zero_page(config, kernel, cmdline, ramdisk, rsdp)?;
    writer.push("Linux zero page", params.as_slice(), 0x1000)
}

/// The zero page: the image's setup header with the loader's fields, and the memory map.
/// Everything else stays zero, `sentinel` included (a nonzero one makes the kernel clear
/// fields it thinks a careless loader copied).
fn zero_page(
    config: &AxVMConfig,
    kernel: &Kernel,
    cmdline: GuestPhysAddr,
    ramdisk: Option<RamdiskPlacement>,
    rsdp: Option<GuestPhysAddr>,
) -> Result<boot_params, ConfigError> {
    let mut params = boot_params {
        hdr: kernel.header,
        ..boot_params::default()
    };
    params.hdr.type_of_loader = LOADER_UNDEFINED;
    params.hdr.code32_start = KERNEL_LOAD_ADDR as u32;
    // Boot data lies below 4 GiB and the ramdisk below initrd_addr_max: both fit 32 bits.
    params.hdr.cmd_line_ptr = cmdline.as_u64() as u32;
    if let Some(ramdisk) = ramdisk {
        params.hdr.ramdisk_image = ramdisk.gpa.as_u64() as u32;
        params.hdr.ramdisk_size = ramdisk.size as u32;
    }
    if let Some(rsdp) = rsdp.filter(|_| kernel.header.version >= RSDP_VERSION) {
        params.acpi_rsdp_addr = rsdp.as_u64();
    }
    check_e820_fits(config)?;
    let map = e820_map(config);
    let mut table = [boot_e820_entry::default(); E820_MAX];
    for (slot, entry) in table.iter_mut().zip(&map) {
        *slot = boot_e820_entry {
            addr: entry.addr,
            size: entry.size,
            r#type: entry.kind as u32,
        };
    }
    params.e820_table = table;
    params.e820_entries = map.len() as u8;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axvm::{MappingFlags, VmMemConfig, VmMemMappingType};

    #[test]
    fn the_ramdisk_keeps_clear_of_where_the_kernel_decompresses() {
        let mut config = AxVMConfig::new("bzimage", 1);
        config.memory_regions.push(VmMemConfig {
            gpa: GuestPhysAddr::new(0),
            size: 0x400_0000,
            flags: MappingFlags::READ | MappingFlags::WRITE,
            map_type: VmMemMappingType::MapAlloc,
        });
        let header = setup_header {
            relocatable_kernel: 1,
            kernel_alignment: 0x20_0000,
            init_size: 0x1f0_0000,
            initrd_addr_max: 0x1ff_ffff,
            ..setup_header::default()
        };
        let segment = Segment {
            paddr: KERNEL_LOAD_ADDR,
            vaddr: KERNEL_LOAD_ADDR,
            offset: 0x400,
            filesz: 0x1000,
            memsz: 0x1000,
        };
        let kernel = Kernel { header, segment };
        // The kernel works in 2 MiB..33 MiB; the ramdisk must end below 32 MiB, so it goes
        // below 2 MiB, above the loaded file.
        let footprint = kernel.footprint();
        assert_eq!(footprint[1].paddr, 0x20_0000);
        let at = placement::place_ramdisk(&config, 0x800, &footprint, kernel.ramdisk_limit());
        assert_eq!(at.unwrap(), GuestPhysAddr::new(0x1f_f000));
    }
}
