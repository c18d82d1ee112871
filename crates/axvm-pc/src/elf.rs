//! Reading ELF kernels' headers, loadable segments and notes, bounds-checked, so that a bad
//! image is refused with the segment named before anything is written to guest memory.
//!
//! ELF64 (x86-64) is what the direct 64-bit start loads; PVH kernels come as ELF64 or ELF32
//! (boot loaders and Xen ship 32-bit builds, QEMU boots both); ELF32 (i386) is what
//! Multiboot kernels are, which QEMU requires and axvm accepts too.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
/// ELF32 header and program header sizes.
const ELF32_EHDR_SIZE: usize = 52;
const ELF32_PHDR_SIZE: usize = 32;
/// ELF64 header and program header sizes.
const ELF64_EHDR_SIZE: usize = 64;
const ELF64_PHDR_SIZE: usize = 56;
/// The Xen note giving the 32-bit physical entry of a PVH kernel.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// A segment the image wants in memory: `filesz` bytes from file offset `offset`, then
/// zeros up to `memsz`, at guest-physical `paddr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical load address.
    pub paddr: u64,
    /// Virtual address (where the entry may be expressed).
    pub vaddr: u64,
    /// Offset of the segment's bytes in the file.
    pub offset: u64,
    /// Bytes taken from the file.
    pub filesz: u64,
    /// Bytes in memory (file bytes, then zeros).
    pub memsz: u64,
}

/// What the loader needs to know of an ELF image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    /// The entry address from the ELF header.
    pub entry: u64,
    /// The non-empty PT_LOAD segments, in file order.
    pub segments: Vec<Segment>,
}

/// Whether `image` starts with the ELF magic.
pub fn is_elf(image: &[u8]) -> bool {
    image.starts_with(ELF_MAGIC)
}

/// The ELF class byte (1 = 32-bit, 2 = 64-bit) of an ELF image.
pub fn class(image: &[u8]) -> Option<u8> {
    is_elf(image).then(|| image.get(4).copied()).flatten()
}

/// What axvm says of a 32-bit ELF image that neither boot protocol for such images claims:
/// what would make it bootable.
const ELF32_HINT: &str = "it is a 32-bit ELF image without a PVH note or Multiboot header; \
    axvm, like QEMU, boots 32-bit ELF kernels through PVH when they carry a Xen \
    XEN_ELFNOTE_PHYS32_ENTRY note, or through Multiboot when a Multiboot header is in their \
    first 8 KiB: add one of those, or build the kernel as an x86-64 ELF64 for axvm's \
    direct 64-bit start";

/// One program header of either class, widened to 64 bits.
struct ProgramHeader {
    kind: u32,
    segment: Segment,
}

/// Parses an x86-64 ELF64 image's header and PT_LOAD program headers.
pub fn parse_elf64(image: &[u8]) -> Result<ElfInfo, String> {
    match class(image) {
        Some(ELFCLASS32) => Err(ELF32_HINT.into()),
        _ => loadable(image),
    }
}

/// Parses an ELF32 image's header and PT_LOAD program headers (Multiboot and PVH kernels).
pub fn parse_elf32(image: &[u8]) -> Result<ElfInfo, String> {
    match class(image) {
        Some(ELFCLASS32) => loadable(image),
        _ => Err("it is not a 32-bit ELF image".into()),
    }
}

/// Parses an ELF image of either class (PVH kernels come as both).
pub fn parse_elf(image: &[u8]) -> Result<ElfInfo, String> {
    loadable(image)
}

/// The entry and the checked, non-empty PT_LOAD segments of `image`.
fn loadable(image: &[u8]) -> Result<ElfInfo, String> {
    let (entry, phdrs) = program_headers(image)?;
    let mut segments = Vec::new();
    for (index, phdr) in phdrs.into_iter().enumerate() {
        if phdr.kind != PT_LOAD {
            continue;
        }
        if let Some(segment) = checked_segment(image, index, phdr.segment)? {
            segments.push(segment);
        }
    }
    finish(entry, segments)
}

/// The entry and every program header of an x86 ELF image of either class.
fn program_headers(image: &[u8]) -> Result<(u64, Vec<ProgramHeader>), String> {
    match class(image) {
        Some(ELFCLASS32) => elf32_headers(image),
        Some(ELFCLASS64) => elf64_headers(image),
        Some(other) => Err(format!("unknown ELF class {other}")),
        None => Err("it is not an ELF image".into()),
    }
}

/// An ELF32 image's entry and program headers. i386 (3) is the usual machine; x86-64 (62)
/// is accepted too, as QEMU does, for 32-bit images of 64-bit kernels (`elf32-x86-64`).
fn elf32_headers(image: &[u8]) -> Result<(u64, Vec<ProgramHeader>), String> {
    if image.len() < ELF32_EHDR_SIZE {
        return Err("the ELF header is truncated".into());
    }
    let machine = le16(image, 18);
    if machine != EM_386 && machine != EM_X86_64 {
        return Err(format!(
            "it is built for ELF machine {machine}, not i386 (3) or x86-64 (62)"
        ));
    }
    let entry = u64::from(le32(image, 24));
    let phoff = le32(image, 28) as usize;
    let phentsize = usize::from(le16(image, 42));
    let phnum = usize::from(le16(image, 44));
    if phnum > 0 && phentsize != ELF32_PHDR_SIZE {
        return Err(format!(
            "program headers are {phentsize} bytes, not {ELF32_PHDR_SIZE}"
        ));
    }
    let mut phdrs = Vec::with_capacity(phnum);
    for index in 0..phnum {
        let at = index
            .checked_mul(ELF32_PHDR_SIZE)
            .and_then(|offset| offset.checked_add(phoff))
            .filter(|&at| {
                at.checked_add(ELF32_PHDR_SIZE)
                    .is_some_and(|end| end <= image.len())
            })
            .ok_or("program headers lie beyond the end of the file")?;
        phdrs.push(ProgramHeader {
            kind: le32(image, at),
            segment: Segment {
                offset: u64::from(le32(image, at + 4)),
                vaddr: u64::from(le32(image, at + 8)),
                paddr: u64::from(le32(image, at + 12)),
                filesz: u64::from(le32(image, at + 16)),
                memsz: u64::from(le32(image, at + 20)),
            },
        });
    }
    Ok((entry, phdrs))
}

/// The PVH entry of an ELF image of either class: the first `XEN_ELFNOTE_PHYS32_ENTRY`
/// note named "Xen" in a PT_NOTE segment, or None. Malformed notes are refused.
pub fn pvh_entry(image: &[u8]) -> Result<Option<u64>, String> {
    let (_, phdrs) = program_headers(image)?;
    for phdr in phdrs.iter().filter(|phdr| phdr.kind == PT_NOTE) {
        let notes = usize::try_from(phdr.segment.offset)
            .ok()
            .zip(usize::try_from(phdr.segment.filesz).ok())
            .and_then(|(start, len)| image.get(start..start.checked_add(len)?))
            .ok_or("a note segment lies beyond the end of the file")?;
        if let Some(entry) = find_pvh_note(notes)? {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

/// Walks the notes of one PT_NOTE segment (4-byte aligned name and descriptor).
fn find_pvh_note(mut notes: &[u8]) -> Result<Option<u64>, String> {
    while notes.len() >= 12 {
        let (namesz, descsz, kind) = (le32(notes, 0), le32(notes, 4), le32(notes, 8));
        let name_end = 12 + (namesz as usize).next_multiple_of(4);
        let desc_end = name_end
            .checked_add((descsz as usize).next_multiple_of(4))
            .filter(|&end| end <= notes.len())
            .ok_or("an ELF note runs past the end of its segment")?;
        if kind == XEN_ELFNOTE_PHYS32_ENTRY && notes[12..].starts_with(b"Xen\0") && namesz == 4 {
            if descsz < 4 {
                return Err("the PVH entry note is shorter than 4 bytes".into());
            }
            return Ok(Some(u64::from(le32(notes, name_end))));
        }
        notes = &notes[desc_end..];
    }
    Ok(None)
}

/// Refuses a segment whose file bytes lie outside the file or exceed its memory size;
/// drops empty ones.
fn checked_segment(
    image: &[u8],
    index: usize,
    segment: Segment,
) -> Result<Option<Segment>, String> {
    let file_end = segment.offset.checked_add(segment.filesz);
    if file_end.is_none_or(|end| end > image.len() as u64) {
        return Err(format!(
            "program header {index} describes bytes beyond the end of the file"
        ));
    }
    if segment.filesz > segment.memsz {
        return Err(format!(
            "program header {index} has more file bytes than memory bytes"
        ));
    }
    Ok((segment.memsz != 0).then_some(segment))
}

fn finish(entry: u64, segments: Vec<Segment>) -> Result<ElfInfo, String> {
    if segments.is_empty() {
        return Err("it has no loadable segment".into());
    }
    Ok(ElfInfo { entry, segments })
}

/// An ELF64 image's entry (x86-64 checked) and program headers.
fn elf64_headers(image: &[u8]) -> Result<(u64, Vec<ProgramHeader>), String> {
    if image.len() < ELF64_EHDR_SIZE {
        return Err("the ELF header is truncated".into());
    }
    let machine = le16(image, 18);
    if machine != EM_X86_64 {
        return Err(format!(
            "it is built for ELF machine {machine}, not x86-64 (62)"
        ));
    }
    let entry = le64(image, 24);
    let phoff = usize::try_from(le64(image, 32)).ok();
    let phentsize = usize::from(le16(image, 54));
    let phnum = usize::from(le16(image, 56));
    if phnum > 0 && phentsize != ELF64_PHDR_SIZE {
        return Err(format!(
            "program headers are {phentsize} bytes, not {ELF64_PHDR_SIZE}"
        ));
    }
    let mut phdrs = Vec::with_capacity(phnum);
    for index in 0..phnum {
        let at = phoff
            .and_then(|phoff| phoff.checked_add(index.checked_mul(ELF64_PHDR_SIZE)?))
            .filter(|&at| {
                at.checked_add(ELF64_PHDR_SIZE)
                    .is_some_and(|end| end <= image.len())
            })
            .ok_or("program headers lie beyond the end of the file")?;
        phdrs.push(ProgramHeader {
            kind: le32(image, at),
            segment: Segment {
                offset: le64(image, at + 8),
                vaddr: le64(image, at + 16),
                paddr: le64(image, at + 24),
                filesz: le64(image, at + 32),
                memsz: le64(image, at + 40),
            },
        });
    }
    Ok((entry, phdrs))
}

/// Little-endian u16 at `at` (the caller has checked the bounds).
fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Little-endian u64 at `at` (the caller has checked the bounds).
fn le64(bytes: &[u8], at: usize) -> u64 {
    u64::from(le32(bytes, at)) | (u64::from(le32(bytes, at + 4)) << 32)
}

/// Little-endian u32 at `at` (the caller has checked the bounds).
pub fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// An ELF32 for `machine` with one PT_NOTE segment holding `notes` (no PT_LOAD).
    fn elf32_with_notes(machine: u16, notes: &[u8]) -> Vec<u8> {
        let mut elf = vec![0u8; ELF32_EHDR_SIZE + ELF32_PHDR_SIZE];
        elf[..6].copy_from_slice(b"\x7fELF\x01\x01");
        elf[18..20].copy_from_slice(&machine.to_le_bytes());
        elf[28..32].copy_from_slice(&(ELF32_EHDR_SIZE as u32).to_le_bytes());
        elf[42..44].copy_from_slice(&(ELF32_PHDR_SIZE as u16).to_le_bytes());
        elf[44..46].copy_from_slice(&1u16.to_le_bytes());
        let phdr = ELF32_EHDR_SIZE;
        let fields = [PT_NOTE, elf.len() as u32, 0, 0, notes.len() as u32, 0, 4, 4];
        for (i, field) in fields.iter().enumerate() {
            elf[phdr + 4 * i..phdr + 4 * i + 4].copy_from_slice(&field.to_le_bytes());
        }
        elf.extend_from_slice(notes);
        elf
    }

    #[test]
    fn elf32_notes_are_found_for_i386_and_x86_64_only() {
        let mut note = vec![4, 0, 0, 0, 4, 0, 0, 0, 18, 0, 0, 0];
        note.extend_from_slice(b"Xen\0");
        note.extend_from_slice(&0x20_0000u32.to_le_bytes());
        for machine in [EM_386, EM_X86_64] {
            assert_eq!(
                pvh_entry(&elf32_with_notes(machine, &note)),
                Ok(Some(0x20_0000))
            );
        }
        let arm = pvh_entry(&elf32_with_notes(40, &note)).unwrap_err();
        assert!(arm.contains("machine 40"), "{arm}");
        // No PT_LOAD: nothing to load, whichever parser is asked.
        let image = elf32_with_notes(EM_386, &note);
        assert!(parse_elf(&image)
            .unwrap_err()
            .contains("no loadable segment"));
        assert!(parse_elf64(&image)
            .unwrap_err()
            .contains("XEN_ELFNOTE_PHYS32_ENTRY"));
    }

    #[test]
    fn notes_are_walked_with_alignment_and_bounds() {
        let mut notes = Vec::new();
        // A foreign note with a 5-byte name (padded to 8) and a 2-byte descriptor (to 4).
        notes.extend_from_slice(&[5, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0]);
        notes.extend_from_slice(b"GNU\0\0\0\0\0\x01\x02\0\0");
        notes.extend_from_slice(&[4, 0, 0, 0, 8, 0, 0, 0, 18, 0, 0, 0]);
        notes.extend_from_slice(b"Xen\0");
        notes.extend_from_slice(&0x10_0040u64.to_le_bytes());
        assert_eq!(find_pvh_note(&notes), Ok(Some(0x10_0040)));
        assert!(find_pvh_note(&notes[..notes.len() - 4]).is_err());
        assert_eq!(find_pvh_note(&notes[..24]), Ok(None));
    }

    /// An x86-64 ELF64 with one PT_LOAD segment of `filesz`/`memsz` bytes at `paddr`.
    fn elf64_with_load(paddr: u64, filesz: u64, memsz: u64) -> Vec<u8> {
        let mut elf = vec![0u8; ELF64_EHDR_SIZE + ELF64_PHDR_SIZE];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
        elf[24..32].copy_from_slice(&(paddr + 0x40).to_le_bytes());
        elf[32..40].copy_from_slice(&(ELF64_EHDR_SIZE as u64).to_le_bytes());
        elf[54..56].copy_from_slice(&(ELF64_PHDR_SIZE as u16).to_le_bytes());
        elf[56..58].copy_from_slice(&1u16.to_le_bytes());
        let at = ELF64_EHDR_SIZE;
        elf[at..at + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        let fields = [0, paddr | 0xffff_8000_0000_0000, paddr, filesz, memsz];
        for (i, field) in fields.iter().enumerate() {
            let field_at = at + 8 + 8 * i;
            elf[field_at..field_at + 8].copy_from_slice(&field.to_le_bytes());
        }
        elf.resize(elf.len().max(filesz as usize), 0);
        elf
    }

    #[test]
    fn elf64_load_segments_are_read_field_by_field() {
        let image = elf64_with_load(0x20_0000, 0x100, 0x3000);
        let info = parse_elf64(&image).unwrap();
        assert_eq!(info.entry, 0x20_0040);
        assert_eq!(
            info.segments,
            [Segment {
                paddr: 0x20_0000,
                vaddr: 0xffff_8000_0020_0000,
                offset: 0,
                filesz: 0x100,
                memsz: 0x3000,
            }]
        );
    }

    #[test]
    fn bad_elf64_headers_are_refused_with_the_reason() {
        let image = elf64_with_load(0x20_0000, 0x100, 0x80);
        let err = parse_elf64(&image).unwrap_err();
        assert!(err.contains("more file bytes than memory bytes"), "{err}");
        let image = elf64_with_load(0x20_0000, 0x100, 0x100);
        let err = parse_elf64(&image[..ELF64_EHDR_SIZE + 8]).unwrap_err();
        assert!(err.contains("beyond the end of the file"), "{err}");
        let err = parse_elf64(&image[..20]).unwrap_err();
        assert!(err.contains("truncated"), "{err}");
        let mut arm = image.clone();
        arm[18] = 183;
        assert!(parse_elf64(&arm).unwrap_err().contains("machine 183"));
    }
}
