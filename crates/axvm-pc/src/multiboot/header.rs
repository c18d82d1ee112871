//! The Multiboot v1 header and where it says the kernel goes.
//!
//! The header (magic 0x1BADB002, 4-byte aligned in the first 8 KiB) says how to load the
//! image: with flag bit 16 (the "a.out kludge") its address fields do; otherwise the image
//! is an ELF file loaded by its program headers (ELF32, as QEMU requires, or ELF64).

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use axvm::{AxVMConfig, ConfigError};

use crate::elf::{self, le32, Segment};
use crate::load::{check_entry, check_segments, KERNEL_FIELD};

/// The header's magic number.
const HEADER_MAGIC: u32 = 0x1BAD_B002;
/// The header must lie in the image's first 8 KiB.
const SEARCH_LEN: usize = 8192;
/// Header flag bits 0-15 are requirements a loader must meet or refuse the image.
const FLAG_PAGE_ALIGN_MODULES: u32 = 1 << 0;
const FLAG_MEMORY_INFO: u32 = 1 << 1;
const FLAG_VIDEO_MODE: u32 = 1 << 2;
const REQUIRED_FLAGS: u32 = 0xffff;
/// The a.out kludge: the header's address fields say where to load the image.
const FLAG_AOUT_KLUDGE: u32 = 1 << 16;
/// The Multiboot header of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    /// Offset of the header in the file.
    offset: usize,
    flags: u32,
}

/// Where a Multiboot kernel's bytes go and where it starts, as its header (or ELF headers)
/// say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    /// Where it starts: a physical address (paging is off at entry).
    pub entry: u64,
    /// Where its bytes go (file bytes, then zeros).
    pub segments: Vec<Segment>,
}

/// Whether `image` is a Multiboot kernel: it has the header's magic in its first 8 KiB (a
/// damaged header is then refused as Multiboot rather than run as raw code).
pub fn detect(image: &[u8]) -> bool {
    find_header(image).is_some()
}

/// The offset of the Multiboot header in `image`, if it has one: the first magic with a
/// valid checksum, or else the first magic at all, so that a damaged header is refused as
/// Multiboot rather than run as raw code.
pub fn find_header(image: &[u8]) -> Option<usize> {
    let searched = image.len().min(SEARCH_LEN);
    let mut candidates = (0..searched.saturating_sub(11))
        .step_by(4)
        .filter(|&offset| le32(image, offset) == HEADER_MAGIC);
    let first = candidates.next()?;
    let valid = |offset: &usize| checksum_ok(image, *offset);
    Some(
        core::iter::once(first)
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
pub fn parse(image: &[u8]) -> Result<Kernel, ConfigError> {
    let header = header(image).map_err(refuse)?;
    if header.flags & FLAG_AOUT_KLUDGE != 0 {
        aout_kludge(image, header.offset).map_err(refuse)
    } else {
        elf_kernel(image).map_err(refuse)
    }
}

/// Refuses a kernel that does not fit in RAM or starts outside RAM; used by the loader and
/// by `axvm check`. (Where its bytes collide with what axvm writes is
/// [`low_memory`](crate::low_memory)'s.)
pub fn check(config: &AxVMConfig, kernel: &Kernel) -> Result<(), ConfigError> {
    check_segments(config, "Multiboot segment", &kernel.segments)?;
    check_entry(config, kernel.entry)
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

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
