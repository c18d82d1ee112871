//! Reading ELF kernels' headers, loadable segments and notes, bounds-checked, so that a bad
//! image is refused with the segment named before anything is written to guest memory.
//!
//! ELF64 (x86-64) is what the direct 64-bit start and PVH load; ELF32 (i386) is what
//! Multiboot kernels are, which QEMU requires and axvm accepts too.

use linux_loader::elf::{Elf64_Ehdr, Elf64_Phdr, PT_LOAD};
use vm_memory::ByteValued;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;
const PT_NOTE: u32 = 4;
/// ELF32 header and program header sizes.
const ELF32_EHDR_SIZE: usize = 52;
const ELF32_PHDR_SIZE: usize = 32;
/// The Xen note giving the 32-bit physical entry of a PVH kernel.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// A segment the image wants in memory: `filesz` bytes from file offset `offset`, then
/// zeros up to `memsz`, at guest-physical `paddr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Guest-physical load address.
    pub(crate) paddr: u64,
    /// Virtual address (where the entry may be expressed).
    pub(crate) vaddr: u64,
    /// Offset of the segment's bytes in the file.
    pub(crate) offset: u64,
    /// Bytes taken from the file.
    pub(crate) filesz: u64,
    /// Bytes in memory (file bytes, then zeros).
    pub(crate) memsz: u64,
}

/// What the loader needs to know of an ELF image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ElfInfo {
    pub(crate) entry: u64,
    pub(crate) segments: Vec<Segment>,
}

/// Whether `image` starts with the ELF magic.
pub(crate) fn is_elf(image: &[u8]) -> bool {
    image.starts_with(ELF_MAGIC)
}

/// The ELF class byte (1 = 32-bit, 2 = 64-bit) of an ELF image.
pub(crate) fn class(image: &[u8]) -> Option<u8> {
    is_elf(image).then(|| image.get(4).copied()).flatten()
}

/// Parses an x86-64 ELF64 image's header and PT_LOAD program headers.
pub(crate) fn parse_elf64(image: &[u8]) -> Result<ElfInfo, String> {
    let (header, phdrs) = elf64_headers(image)?;
    let mut segments = Vec::new();
    for (index, phdr) in phdrs.iter().enumerate() {
        if phdr.p_type != PT_LOAD {
            continue;
        }
        let segment = Segment {
            paddr: phdr.p_paddr,
            vaddr: phdr.p_vaddr,
            offset: phdr.p_offset,
            filesz: phdr.p_filesz,
            memsz: phdr.p_memsz,
        };
        if let Some(segment) = checked_segment(image, index, segment)? {
            segments.push(segment);
        }
    }
    finish(header.e_entry, segments)
}

/// Parses an i386 ELF32 image's header and PT_LOAD program headers (Multiboot kernels).
pub(crate) fn parse_elf32(image: &[u8]) -> Result<ElfInfo, String> {
    if image.len() < ELF32_EHDR_SIZE {
        return Err("the ELF header is truncated".into());
    }
    if image[4] != ELFCLASS32 {
        return Err("it is not a 32-bit ELF image".into());
    }
    let machine = le16(image, 18);
    if machine != EM_386 {
        return Err(format!(
            "it is built for ELF machine {machine}, not i386 (3)"
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
    let mut segments = Vec::new();
    for index in 0..phnum {
        let at = index
            .checked_mul(ELF32_PHDR_SIZE)
            .and_then(|offset| offset.checked_add(phoff))
            .filter(|&at| {
                at.checked_add(ELF32_PHDR_SIZE)
                    .is_some_and(|end| end <= image.len())
            })
            .ok_or("program headers lie beyond the end of the file")?;
        if le32(image, at) != PT_LOAD {
            continue;
        }
        let segment = Segment {
            offset: u64::from(le32(image, at + 4)),
            vaddr: u64::from(le32(image, at + 8)),
            paddr: u64::from(le32(image, at + 12)),
            filesz: u64::from(le32(image, at + 16)),
            memsz: u64::from(le32(image, at + 20)),
        };
        if let Some(segment) = checked_segment(image, index, segment)? {
            segments.push(segment);
        }
    }
    finish(entry, segments)
}

/// The PVH entry of an ELF64 image: the first `XEN_ELFNOTE_PHYS32_ENTRY` note named "Xen"
/// in a PT_NOTE segment, or None. Malformed notes are refused.
pub(crate) fn pvh_entry(image: &[u8]) -> Result<Option<u64>, String> {
    let (_, phdrs) = elf64_headers(image)?;
    for phdr in phdrs.iter().filter(|phdr| phdr.p_type == PT_NOTE) {
        let notes = usize::try_from(phdr.p_offset)
            .ok()
            .zip(usize::try_from(phdr.p_filesz).ok())
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

/// The ELF64 header (x86-64 checked) and every program header.
fn elf64_headers(image: &[u8]) -> Result<(Elf64_Ehdr, Vec<Elf64_Phdr>), String> {
    let mut header = Elf64_Ehdr::default();
    let header_bytes = image
        .get(..header.as_slice().len())
        .ok_or("the ELF header is truncated")?;
    header.as_mut_slice().copy_from_slice(header_bytes);
    match header.e_ident[4] {
        ELFCLASS64 => {}
        ELFCLASS32 => {
            return Err("it is a 32-bit ELF image; axvm starts 64-bit ELF images only".into())
        }
        class => return Err(format!("unknown ELF class {class}")),
    }
    if header.e_machine != EM_X86_64 {
        return Err(format!(
            "it is built for ELF machine {}, not x86-64 (62)",
            header.e_machine
        ));
    }
    let phdrs = (0..usize::from(header.e_phnum))
        .map(|index| program_header(image, &header, index))
        .collect::<Result<_, _>>()?;
    Ok((header, phdrs))
}

fn program_header(image: &[u8], header: &Elf64_Ehdr, index: usize) -> Result<Elf64_Phdr, String> {
    let mut phdr = Elf64_Phdr::default();
    let size = phdr.as_slice().len();
    if usize::from(header.e_phentsize) != size {
        return Err(format!(
            "program headers are {} bytes, not {size}",
            header.e_phentsize
        ));
    }
    let start = usize::try_from(header.e_phoff)
        .ok()
        .and_then(|offset| offset.checked_add(index * size))
        .ok_or("program headers lie beyond the end of the file")?;
    let bytes = start
        .checked_add(size)
        .and_then(|end| image.get(start..end))
        .ok_or("program headers lie beyond the end of the file")?;
    phdr.as_mut_slice().copy_from_slice(bytes);
    Ok(phdr)
}

/// Little-endian u16 at `at` (the caller has checked the bounds).
fn le16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

/// Little-endian u32 at `at` (the caller has checked the bounds).
pub(crate) fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
