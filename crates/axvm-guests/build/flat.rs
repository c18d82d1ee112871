//! Lays an arm64 guest's ELF64 executable out flat, as `objcopy -O binary` would: the
//! bytes of its loaded segments at their physical addresses less the lowest one, gaps
//! zero-filled, nothing past the last byte taken from the file (`.bss` is not stored).
//!
//! The arm64 guests begin with a Linux arm64 Image header (`guests-arm64/rt/src/entry.rs`),
//! so the result is an `Image` whose text_offset puts it at its link address. The header is
//! checked here, so that a change to the runtime cannot silently produce something QEMU
//! would boot as a raw binary (without x0 = the device tree).

const ELF64_EHDR_SIZE: usize = 64;
const ELF64_PHDR_SIZE: usize = 56;
const ELFCLASS64: u8 = 2;
const EM_AARCH64: u16 = 183;
const PT_LOAD: u32 = 1;
/// The Image header's magic, "ARM\x64", a little-endian u32 at offset 56.
const IMAGE_MAGIC: &[u8; 4] = b"ARM\x64";
const IMAGE_MAGIC_OFFSET: usize = 56;

/// A loaded segment's file bytes and where they go.
struct Segment {
    paddr: u64,
    offset: usize,
    filesz: usize,
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], String> {
    bytes
        .get(at..at + N)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("the file ends before offset {:#x}", at + N))
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    field(bytes, at).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    field(bytes, at).map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, String> {
    field(bytes, at).map(u64::from_le_bytes)
}

/// The PT_LOAD segments with file bytes, of an AArch64 ELF64 executable.
fn loaded_segments(elf: &[u8]) -> Result<Vec<Segment>, String> {
    if elf.len() < ELF64_EHDR_SIZE || !elf.starts_with(b"\x7fELF") || elf[4] != ELFCLASS64 {
        return Err("not an ELF64 file".into());
    }
    if u16_at(elf, 18)? != EM_AARCH64 {
        return Err("not an AArch64 ELF file".into());
    }
    if usize::from(u16_at(elf, 54)?) != ELF64_PHDR_SIZE {
        return Err("unexpected program header size".into());
    }
    let phoff = usize::try_from(u64_at(elf, 32)?).map_err(|_| "e_phoff too large")?;
    let mut segments = Vec::new();
    for index in 0..usize::from(u16_at(elf, 56)?) {
        let at = phoff + index * ELF64_PHDR_SIZE;
        let filesz = usize::try_from(u64_at(elf, at + 32)?).map_err(|_| "p_filesz too large")?;
        if u32_at(elf, at)? != PT_LOAD || filesz == 0 {
            continue;
        }
        let segment = Segment {
            paddr: u64_at(elf, at + 24)?,
            offset: usize::try_from(u64_at(elf, at + 8)?).map_err(|_| "p_offset too large")?,
            filesz,
        };
        if segment.offset + segment.filesz > elf.len() {
            return Err(format!("segment {index} lies beyond the end of the file"));
        }
        segments.push(segment);
    }
    Ok(segments)
}

/// The flat layout of `elf`, which must start with a Linux arm64 Image header.
pub fn arm64_image(elf: &[u8]) -> Result<Vec<u8>, String> {
    let segments = loaded_segments(elf)?;
    let base = segments
        .iter()
        .map(|s| s.paddr)
        .min()
        .ok_or("no loaded segment")?;
    let end = segments
        .iter()
        .map(|s| s.paddr + s.filesz as u64)
        .max()
        .unwrap_or(base);
    let mut image = vec![0; usize::try_from(end - base).map_err(|_| "image too large")?];
    for segment in &segments {
        let at = (segment.paddr - base) as usize;
        image[at..at + segment.filesz]
            .copy_from_slice(&elf[segment.offset..segment.offset + segment.filesz]);
    }
    if image.get(IMAGE_MAGIC_OFFSET..IMAGE_MAGIC_OFFSET + 4) != Some(IMAGE_MAGIC) {
        return Err("its first bytes are not a Linux arm64 Image header (magic ARM\\x64)".into());
    }
    Ok(image)
}
