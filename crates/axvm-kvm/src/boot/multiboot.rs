//! Multiboot (version 1): the protocol of GRUB legacy and of QEMU's `-kernel` for kernels
//! with a Multiboot header.
//!
//! The header (magic 0x1BADB002, 4-byte aligned in the first 8 KiB) says how to load the
//! image: with flag bit 16 (the "a.out kludge") its address fields do; otherwise the image
//! is an ELF file loaded by its program headers (ELF32, as QEMU requires, or ELF64). The
//! kernel is entered in 32-bit protected mode, paging off, with EAX = 0x2BADB002 and EBX =
//! the Multiboot information structure, which axvm writes in the boot data area
//! (`platform::pc::layout`) with the memory sizes, the command line, the ramdisk as the one module, the
//! memory map and the boot loader name "axvm".
//!
//! The command line is the kernel's name as the config writes it (`kernel_path`), a space,
//! then `kernel.cmdline` ([`boot_cmdline`](super::boot_cmdline)): what QEMU passes for
//! `-kernel PATH -append TEXT` and GRUB for `multiboot PATH ARGS`. Kernels skip that first
//! word as the loader's (Xen does, for every loader but GRUB 2), so a command line without
//! it loses its first argument.
//!
//! The module's string is "ramdisk": axvm gets the ramdisk's bytes, not its file name.
//!
//! ESP points at the top of a 4 KiB stack below the boot data (0x7000 while no image is
//! there, `low_memory.rs` otherwise): the spec leaves ESP undefined, but QEMU enters with
//! its firmware's stack and the ArceOS hypervisor's BIOS stub with ESP 0x7000, and kernels
//! (NimbOS) push before they set their own.

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr};

use super::e820::{e820_map, lower_and_upper_memory_kib};
use super::placement::{self, RamdiskPlacement, KERNEL_FIELD};
use super::protocol::{boot_info_area, BootProtocol, KernelImage, KernelPlan, GDT_AREA};
use super::{protected32_boot, BootImages, BootPlan, ImageFormat};
use crate::kvm::{BootRegs, KvmHal};
use crate::platform::pc::layout::{MULTIBOOT_STACK_END, MULTIBOOT_STACK_START};
use axvm_pc::boot_info::BootInfoWriter;
use axvm_pc::elf::{self, le32, Segment};

/// The header's magic number.
const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// What EAX holds at entry: tells the kernel a Multiboot loader started it.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// The header must lie in the image's first 8 KiB.
const SEARCH_LEN: usize = 8192;
/// Header flag bits 0-15 are requirements a loader must meet or refuse the image.
const FLAG_PAGE_ALIGN_MODULES: u32 = 1 << 0;
const FLAG_MEMORY_INFO: u32 = 1 << 1;
const FLAG_VIDEO_MODE: u32 = 1 << 2;
const REQUIRED_FLAGS: u32 = 0xffff;
/// The a.out kludge: the header's address fields say where to load the image.
const FLAG_AOUT_KLUDGE: u32 = 1 << 16;
/// Information structure flags for the fields axvm fills.
const INFO_MEM: u32 = 1 << 0;
const INFO_CMDLINE: u32 = 1 << 2;
const INFO_MODS: u32 = 1 << 3;
const INFO_MMAP: u32 = 1 << 6;
const INFO_LOADER_NAME: u32 = 1 << 9;
/// Size of the information structure (up to and including the framebuffer fields).
const INFO_SIZE: usize = 116;
/// The entry stack, as `axvm check` names it.
const STACK_AREA: (u64, u64, &str) = (
    MULTIBOOT_STACK_START,
    MULTIBOOT_STACK_END,
    "Multiboot entry stack (ESP at its end)",
);
/// Module addresses are 32-bit: the ramdisk must end below 4 GiB.
const RAMDISK_LIMIT: u64 = u32::MAX as u64;

/// The Multiboot header of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    /// Offset of the header in the file.
    offset: usize,
    flags: u32,
}

/// Where a Multiboot kernel's bytes go and where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Kernel {
    pub(crate) entry: u64,
    pub(crate) segments: Vec<Segment>,
}

/// The offset of the Multiboot header in `image`, if it has one: the first magic with a
/// valid checksum, or else the first magic at all, so that a damaged header is refused as
/// Multiboot rather than run as raw code.
fn find_header(image: &[u8]) -> Option<usize> {
    let searched = image.len().min(SEARCH_LEN);
    let mut candidates = (0..searched.saturating_sub(11))
        .step_by(4)
        .filter(|&offset| le32(image, offset) == HEADER_MAGIC);
    let first = candidates.next()?;
    let valid = |offset: &usize| checksum_ok(image, *offset);
    Some(
        std::iter::once(first)
            .chain(candidates)
            .find(valid)
            .unwrap_or(first),
    )
}

fn checksum_ok(image: &[u8], offset: usize) -> bool {
    let (flags, checksum) = (le32(image, offset + 4), le32(image, offset + 8));
    HEADER_MAGIC.wrapping_add(flags).wrapping_add(checksum) == 0
}

/// Parses the header and works out where the kernel goes, refusing what axvm cannot load.
fn parse(image: &[u8]) -> Result<Kernel, ConfigError> {
    let header = header(image).map_err(refuse)?;
    if header.flags & FLAG_AOUT_KLUDGE != 0 {
        aout_kludge(image, header.offset).map_err(refuse)
    } else {
        elf_kernel(image).map_err(refuse)
    }
}

/// Refuses a kernel that does not fit in RAM or starts outside RAM; used by the loader and
/// by `axvm check`. (Where its bytes collide with what axvm writes is `low_memory.rs`'s.)
fn check(config: &AxVMConfig, kernel: &Kernel) -> Result<(), ConfigError> {
    placement::check_segments(config, "Multiboot segment", &kernel.segments)?;
    placement::check_entry(config, kernel.entry)
}

/// The Multiboot protocol (see the module documentation).
pub(crate) struct Multiboot;

impl BootProtocol for Multiboot {
    fn format(&self) -> ImageFormat {
        ImageFormat::Multiboot
    }

    fn detected_by(&self) -> &'static str {
        "a Multiboot v1 header in the first 8 KiB"
    }

    fn boot_data(&self) -> Vec<(u64, u64, &'static str)> {
        vec![
            GDT_AREA,
            boot_info_area(
                "boot data area: command line, module list, memory map, Multiboot info (EBX)",
            ),
            STACK_AREA,
        ]
    }

    fn detect(&self, image: &[u8]) -> bool {
        find_header(image).is_some()
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
        KernelPlan::of_segments(
            config,
            kernel.entry,
            kernel.segments,
            ramdisk,
            RAMDISK_LIMIT,
        )
    }

    /// Loads the kernel and its ramdisk, writes the information structure and the GDT: vCPU
    /// 0 starts in 32-bit protected mode at the kernel's entry, the others wait for
    /// INIT-SIPI-SIPI.
    fn load(
        &self,
        vm: &AxVM<KvmHal>,
        images: &BootImages,
        plan: &KernelPlan,
        _rsdp: Option<GuestPhysAddr>,
    ) -> Result<BootPlan, ConfigError> {
        let placed = plan.ramdisk;
        placement::copy_segments(vm, &images.kernel, &plan.image.segments)?;
        placement::copy_ramdisk(vm, images.ramdisk.as_deref(), placed)?;
        let layout = plan.layout();
        let info = write_info(vm, images, placed, layout.boot_info)?;
        let bsp = protected32_boot(
            vm,
            layout.tables.0,
            BootRegs {
                rax: u64::from(BOOTLOADER_MAGIC),
                rbx: info.as_u64(),
                rsp: layout.stack.map_or(MULTIBOOT_STACK_END, |(_, end)| end),
                ..BootRegs::default()
            },
        )?;
        let entry = GuestPhysAddr::new(plan.image.entry.unwrap_or_default());
        Ok(BootPlan::protocol(
            ImageFormat::Multiboot,
            entry,
            bsp,
            info,
            placed,
        ))
    }
}

fn refuse(problem: String) -> ConfigError {
    ConfigError::invalid(KERNEL_FIELD, format!("Multiboot kernel: {problem}"))
}

/// Finds and validates the header: checksum, and requirements axvm can meet.
fn header(image: &[u8]) -> Result<Header, String> {
    let offset = find_header(image).ok_or("no Multiboot header in the first 8 KiB")?;
    let flags = le32(image, offset + 4);
    if !checksum_ok(image, offset) {
        let checksum = le32(image, offset + 8);
        return Err(format!(
            "the header at offset {offset:#x} has a bad checksum {checksum:#x} (magic + flags + checksum must be 0)"
        ));
    }
    if flags & FLAG_VIDEO_MODE != 0 {
        return Err(
            "the header requires a video mode (flag bit 2); axvm has no display and cannot set one"
                .into(),
        );
    }
    let unknown = flags & REQUIRED_FLAGS & !(FLAG_PAGE_ALIGN_MODULES | FLAG_MEMORY_INFO);
    if unknown != 0 {
        return Err(format!(
            "the header requires features axvm does not provide (flags {unknown:#x})"
        ));
    }
    Ok(Header { offset, flags })
}

/// The a.out kludge: header_addr, load_addr, load_end_addr, bss_end_addr and entry_addr
/// place the file's bytes from `load_addr`'s offset (header_addr − load_addr before the
/// header) up to load_end_addr (0: the end of the file), then zeros up to bss_end_addr.
fn aout_kludge(image: &[u8], offset: usize) -> Result<Kernel, String> {
    if offset + 32 > image.len() {
        return Err("the header's address fields run past the end of the file".into());
    }
    let field = |index: usize| u64::from(le32(image, offset + 12 + 4 * index));
    let (header_addr, load_addr, load_end_addr, bss_end_addr, entry) =
        (field(0), field(1), field(2), field(3), field(4));
    let file_start = (offset as u64)
        .checked_sub(header_addr.checked_sub(load_addr).ok_or_else(|| {
            format!("load_addr {load_addr:#x} is above header_addr {header_addr:#x}")
        })?)
        .ok_or_else(|| {
            format!("load_addr {load_addr:#x} would start before the beginning of the file")
        })?;
    let file_len = image.len() as u64;
    let load_end = match load_end_addr {
        0 => load_addr + (file_len - file_start),
        end => end,
    };
    let filesz = load_end
        .checked_sub(load_addr)
        .ok_or_else(|| format!("load_end_addr {load_end:#x} is below load_addr {load_addr:#x}"))?;
    if file_start + filesz > file_len {
        return Err(format!(
            "load_end_addr {load_end:#x} asks for {filesz:#x} bytes from offset {file_start:#x}, beyond the end of the file"
        ));
    }
    let memsz = match bss_end_addr {
        0 => filesz,
        bss_end if bss_end < load_end => {
            return Err(format!(
                "bss_end_addr {bss_end:#x} is below load_end_addr {load_end:#x}"
            ))
        }
        bss_end => bss_end - load_addr,
    };
    let segments = if memsz == 0 {
        Vec::new()
    } else {
        vec![Segment {
            paddr: load_addr,
            vaddr: load_addr,
            offset: file_start,
            filesz,
            memsz,
        }]
    };
    Ok(Kernel { entry, segments })
}

/// Without the kludge the image must be ELF: ELF32 (what QEMU accepts) or ELF64.
fn elf_kernel(image: &[u8]) -> Result<Kernel, String> {
    let info = match elf::class(image) {
        Some(1) => elf::parse_elf32(image),
        Some(2) => elf::parse_elf64(image),
        Some(class) => Err(format!("unknown ELF class {class}")),
        None => Err("the header has no load addresses (flag bit 16) and the image is not ELF, so axvm cannot tell where to load it".into()),
    }?;
    let entry = physical_entry(info.entry, &info.segments);
    Ok(Kernel {
        entry,
        segments: info.segments,
    })
}

/// The entry as a physical address: paging is off at entry, so an entry given as a virtual
/// address inside a segment loaded elsewhere is moved to where that segment really is.
fn physical_entry(entry: u64, segments: &[Segment]) -> u64 {
    let inside = |start: u64, s: &Segment| start <= entry && entry - start < s.memsz;
    if segments.iter().any(|s| inside(s.paddr, s)) {
        return entry;
    }
    segments
        .iter()
        .find(|s| inside(s.vaddr, s))
        .map_or(entry, |s| s.paddr + (entry - s.vaddr))
}

/// Writes the command line, loader name, module list, memory map and, last, the
/// information structure pointing at them; returns the structure's address.
fn write_info(
    vm: &AxVM<KvmHal>,
    images: &BootImages,
    ramdisk: Option<RamdiskPlacement>,
    area: (u64, u64),
) -> Result<GuestPhysAddr, ConfigError> {
    let config = vm.config();
    let mut writer = BootInfoWriter::new(vm, area);
    let line = super::boot_cmdline(ImageFormat::Multiboot, config, images).unwrap_or_default();
    let cmdline = writer.push_str("Multiboot command line", &line)?;
    let loader_name = writer.push_str("Multiboot boot loader name", "axvm")?;
    let (mods_count, mods_addr) = match ramdisk {
        Some(ramdisk) => {
            let name = writer.push_str("Multiboot module name", "ramdisk")?;
            let entry = module_entry(ramdisk, name);
            (1, writer.push("Multiboot module list", &entry, 4)?)
        }
        None => (0, GuestPhysAddr::new(0)),
    };
    let map = e820_map(config);
    let mmap: Vec<u8> = map.iter().flat_map(mmap_entry).collect();
    let mmap_addr = writer.push("Multiboot memory map", &mmap, 8)?;
    let (lower, upper) = lower_and_upper_memory_kib(&map);
    let mut info = [0u8; INFO_SIZE];
    let mut put = |at: usize, value: u32| info[at..at + 4].copy_from_slice(&value.to_le_bytes());
    put(
        0,
        INFO_MEM | INFO_CMDLINE | INFO_MODS | INFO_MMAP | INFO_LOADER_NAME,
    );
    put(4, saturate(lower));
    put(8, saturate(upper));
    put(16, low32(cmdline));
    put(20, mods_count);
    put(24, low32(mods_addr));
    put(44, mmap.len() as u32);
    put(48, low32(mmap_addr));
    put(64, low32(loader_name));
    writer.push("Multiboot information", &info, 8)
}

/// One module entry: mod_start, mod_end (exclusive), string, reserved.
fn module_entry(ramdisk: RamdiskPlacement, name: GuestPhysAddr) -> Vec<u8> {
    let start = ramdisk.gpa.as_u64();
    [start, start + ramdisk.size, name.as_u64(), 0]
        .iter()
        .flat_map(|&value| (value as u32).to_le_bytes())
        .collect()
}

/// One memory map entry: size (20, the bytes after this field), base, length, type.
fn mmap_entry(entry: &super::e820::E820Entry) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(&20u32.to_le_bytes());
    bytes.extend_from_slice(&entry.addr.to_le_bytes());
    bytes.extend_from_slice(&entry.size.to_le_bytes());
    bytes.extend_from_slice(&(entry.kind as u32).to_le_bytes());
    bytes
}

/// Boot data lies below 4 GiB (`low_memory.rs`), so its addresses fit the 32-bit fields.
fn low32(gpa: GuestPhysAddr) -> u32 {
    gpa.as_u64() as u32
}

fn saturate(kib: u64) -> u32 {
    u32::try_from(kib).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kludge_image(flags: u32, fields: [u32; 5], len: usize) -> Vec<u8> {
        let mut image = vec![0u8; len];
        let checksum = 0u32.wrapping_sub(HEADER_MAGIC).wrapping_sub(flags);
        let words = [HEADER_MAGIC, flags, checksum];
        for (index, word) in words.iter().chain(fields.iter()).enumerate() {
            image[8 + 4 * index..12 + 4 * index].copy_from_slice(&word.to_le_bytes());
        }
        image
    }

    #[test]
    fn kludge_fields_place_the_file_and_the_bss() {
        // Header at file offset 8 → header_addr 0x100008 means the file starts at 0x100000.
        let image = kludge_image(
            1 << 16,
            [0x10_0008, 0x10_0000, 0, 0x10_2000, 0x10_0020],
            0x100,
        );
        let kernel = parse(&image).unwrap();
        assert_eq!(kernel.entry, 0x10_0020);
        assert_eq!(
            kernel.segments,
            [Segment {
                paddr: 0x10_0000,
                vaddr: 0x10_0000,
                offset: 0,
                filesz: 0x100,
                memsz: 0x2000
            }]
        );
    }

    #[test]
    fn bad_headers_are_refused() {
        let fields = [0x10_0008, 0x10_0000, 0, 0, 0x10_0020];
        let mut bad_checksum = kludge_image(1 << 16, fields, 0x100);
        bad_checksum[16] ^= 1;
        let video = kludge_image((1 << 16) | FLAG_VIDEO_MODE, fields, 0x100);
        let load_above_header = kludge_image(1 << 16, [0x10_0008, 0x10_0010, 0, 0, 0], 0x100);
        let past_end = kludge_image(1 << 16, [0x10_0008, 0x10_0000, 0x10_0200, 0, 0], 0x100);
        let not_elf = kludge_image(0, fields, 0x100);
        for (image, words) in [
            (bad_checksum, "bad checksum"),
            (video, "video mode"),
            (load_above_header, "above header_addr"),
            (past_end, "beyond the end of the file"),
            (not_elf, "not ELF"),
        ] {
            let err = parse(&image).unwrap_err();
            assert_eq!(err.field(), Some(KERNEL_FIELD));
            assert!(err.to_string().contains(words), "{err}");
        }
    }

    #[test]
    fn the_first_header_with_a_valid_checksum_wins() {
        let fields = [0x10_0010, 0x10_0000, 0, 0, 0x10_0040];
        let mut image = kludge_image(1 << 16, fields, 0x100);
        // A stray magic before the real header (at 8) is skipped...
        image[0..4].copy_from_slice(&HEADER_MAGIC.to_le_bytes());
        image.copy_within(8..40, 16);
        image[8..16].fill(0);
        assert_eq!(find_header(&image), Some(16));
        assert_eq!(parse(&image).unwrap().entry, 0x10_0040);
        // ...but with no valid header the first magic is reported.
        image[24] ^= 1;
        assert_eq!(find_header(&image), Some(0));
    }

    #[test]
    fn a_virtual_entry_is_moved_to_its_physical_segment() {
        let segment = Segment {
            paddr: 0x10_0000,
            vaddr: 0xc010_0000,
            offset: 0,
            filesz: 0x10,
            memsz: 0x1000,
        };
        assert_eq!(physical_entry(0xc010_0040, &[segment]), 0x10_0040);
        assert_eq!(physical_entry(0x10_0040, &[segment]), 0x10_0040);
    }
}
