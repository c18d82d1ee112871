//! Turns an x86-64 ELF64 executable into an i386 ELF32 one with the same segments, the way
//! Xen's build makes its 32-bit `xen` image from the 64-bit link (its `mkelf32` tool), and
//! `objcopy -O elf32-i386` would: the PVH entry is 32-bit code, so boot loaders ship PVH
//! kernels as ELF32 too, and VMMs must boot both.
//!
//! Only what a loader reads is kept: the ELF header and the program headers, rewritten in
//! their 32-bit form at the start of the file, and the bytes the segments take from the
//! file, at their offsets. Section headers (and the symbols) are dropped. Every address,
//! offset and size must fit 32 bits, and no segment may take bytes from the ELF64 headers
//! (which the rewrite replaces).

const ELF64_EHDR_SIZE: usize = 64;
const ELF64_PHDR_SIZE: usize = 56;
const ELF32_EHDR_SIZE: usize = 52;
const ELF32_PHDR_SIZE: usize = 32;
const ELFCLASS32: u8 = 1;
const ELFCLASS64: u8 = 2;
const EM_386: u16 = 3;
const EM_X86_64: u16 = 62;

/// One program header, read from the ELF64 file.
struct ProgramHeader {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// `value` as a 32-bit field, or an error naming `what`.
fn narrow(value: u64, what: &str) -> Result<u32, String> {
    u32::try_from(value).map_err(|_| format!("{what} {value:#x} does not fit 32 bits"))
}

/// The ELF64 header's entry and program headers, checked to be an x86-64 executable whose
/// headers lie inside the file.
fn read_elf64(elf: &[u8]) -> Result<(u64, Vec<ProgramHeader>), String> {
    if elf.len() < ELF64_EHDR_SIZE || !elf.starts_with(b"\x7fELF") || elf[4] != ELFCLASS64 {
        return Err("not an ELF64 file".into());
    }
    if u16_at(elf, 18) != EM_X86_64 {
        return Err("not an x86-64 ELF file".into());
    }
    let phoff = usize::try_from(u64_at(elf, 32)).map_err(|_| "e_phoff too large")?;
    let phnum = usize::from(u16_at(elf, 56));
    if usize::from(u16_at(elf, 54)) != ELF64_PHDR_SIZE {
        return Err("unexpected program header size".into());
    }
    if phoff + phnum * ELF64_PHDR_SIZE > elf.len() {
        return Err("program headers beyond the end of the file".into());
    }
    let phdrs = (0..phnum)
        .map(|index| {
            let at = phoff + index * ELF64_PHDR_SIZE;
            ProgramHeader {
                kind: u32_at(elf, at),
                flags: u32_at(elf, at + 4),
                offset: u64_at(elf, at + 8),
                vaddr: u64_at(elf, at + 16),
                paddr: u64_at(elf, at + 24),
                filesz: u64_at(elf, at + 32),
                memsz: u64_at(elf, at + 40),
                align: u64_at(elf, at + 48),
            }
        })
        .collect();
    Ok((u64_at(elf, 24), phdrs))
}

/// The i386 ELF32 form of the x86-64 ELF64 executable `elf` (see the module documentation).
pub fn elf64_to_elf32(elf: &[u8]) -> Result<Vec<u8>, String> {
    let (entry, phdrs) = read_elf64(elf)?;
    let old_headers_end = usize::try_from(u64_at(elf, 32)).map_err(|_| "e_phoff too large")?
        + phdrs.len() * ELF64_PHDR_SIZE;
    let mut file_end = ELF32_EHDR_SIZE + phdrs.len() * ELF32_PHDR_SIZE;
    for (index, phdr) in phdrs.iter().enumerate() {
        if phdr.filesz == 0 {
            continue;
        }
        let end = phdr
            .offset
            .checked_add(phdr.filesz)
            .ok_or("segment overflows")?;
        if end > elf.len() as u64 {
            return Err(format!("segment {index} lies beyond the end of the file"));
        }
        if (phdr.offset as usize) < old_headers_end {
            return Err(format!(
                "segment {index} takes bytes from the ELF64 headers"
            ));
        }
        file_end = file_end.max(end as usize);
    }
    let mut out = elf[..file_end].to_vec();
    out[..old_headers_end.min(file_end)].fill(0);

    // The ELF header: the identification with class 32, then the 32-bit fields.
    out[..16].copy_from_slice(&elf[..16]);
    out[4] = ELFCLASS32;
    let mut header = Vec::with_capacity(ELF32_EHDR_SIZE);
    header.extend_from_slice(&out[..16]);
    header.extend_from_slice(&elf[16..18]); // e_type
    header.extend_from_slice(&EM_386.to_le_bytes());
    header.extend_from_slice(&elf[20..24]); // e_version
    header.extend_from_slice(&narrow(entry, "the entry")?.to_le_bytes());
    header.extend_from_slice(&(ELF32_EHDR_SIZE as u32).to_le_bytes()); // e_phoff
    header.extend_from_slice(&0u32.to_le_bytes()); // e_shoff: no sections
    header.extend_from_slice(&elf[48..52]); // e_flags
    for half in [ELF32_EHDR_SIZE, ELF32_PHDR_SIZE, phdrs.len(), 0, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        header.extend_from_slice(&(half as u16).to_le_bytes());
    }
    out[..ELF32_EHDR_SIZE].copy_from_slice(&header);

    for (index, phdr) in phdrs.iter().enumerate() {
        let fields = [
            phdr.kind,
            narrow(phdr.offset, "a segment offset")?,
            narrow(phdr.vaddr, "a virtual address")?,
            narrow(phdr.paddr, "a physical address")?,
            narrow(phdr.filesz, "a segment's file size")?,
            narrow(phdr.memsz, "a segment's memory size")?,
            phdr.flags,
            narrow(phdr.align, "a segment's alignment")?,
        ];
        let at = ELF32_EHDR_SIZE + index * ELF32_PHDR_SIZE;
        for (i, field) in fields.iter().enumerate() {
            out[at + 4 * i..at + 4 * i + 4].copy_from_slice(&field.to_le_bytes());
        }
    }
    Ok(out)
}
