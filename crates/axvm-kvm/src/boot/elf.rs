//! Reading an ELF64 kernel's header and loadable segments, bounds-checked, so that a bad
//! image is refused with the segment named before anything is written to guest memory.

use linux_loader::elf::{Elf64_Ehdr, Elf64_Phdr, PT_LOAD};
use vm_memory::ByteValued;

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const EM_X86_64: u16 = 62;

/// A segment the image wants in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Guest-physical load address.
    pub(crate) paddr: u64,
    /// Bytes in memory (file bytes, then zeros).
    pub(crate) memsz: u64,
}

/// What the loader needs to know of an ELF64 image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ElfInfo {
    pub(crate) entry: u64,
    pub(crate) segments: Vec<Segment>,
}

/// Whether `image` starts with the ELF magic.
pub(crate) fn is_elf(image: &[u8]) -> bool {
    image.starts_with(ELF_MAGIC)
}

/// Parses an x86-64 ELF64 image's header and PT_LOAD program headers.
pub(crate) fn parse_elf64(image: &[u8]) -> Result<ElfInfo, String> {
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
    let mut segments = Vec::new();
    for index in 0..usize::from(header.e_phnum) {
        let phdr = program_header(image, &header, index)?;
        if phdr.p_type != PT_LOAD {
            continue;
        }
        let file_end = phdr.p_offset.checked_add(phdr.p_filesz);
        if file_end.is_none_or(|end| end > image.len() as u64) {
            return Err(format!(
                "program header {index} describes bytes beyond the end of the file"
            ));
        }
        if phdr.p_filesz > phdr.p_memsz {
            return Err(format!(
                "program header {index} has more file bytes than memory bytes"
            ));
        }
        if phdr.p_memsz == 0 {
            continue;
        }
        segments.push(Segment {
            paddr: phdr.p_paddr,
            memsz: phdr.p_memsz,
        });
    }
    if segments.is_empty() {
        return Err("it has no loadable segment".into());
    }
    Ok(ElfInfo {
        entry: header.e_entry,
        segments,
    })
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
