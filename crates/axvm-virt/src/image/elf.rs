//! ELF64 AArch64 kernels: the `PT_LOAD` segments at their physical addresses (the MMU is
//! off when the guest starts). Every offset and size comes from the file, so each is
//! bounds-checked before it is used.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use axvm::{AxVMConfig, GuestPhysAddr};

use super::{refuse, KernelPlan, Segment, KERNEL_PATH_FIELD};

/// The first four bytes of every ELF file.
pub(super) const ELF_MAGIC: &[u8] = b"\x7fELF";
/// `e_machine` of AArch64.
pub(super) const EM_AARCH64: u16 = 183;
const ELFCLASS64: u8 = 2;
const ELFDATA2LSB: u8 = 1;
const PT_LOAD: u32 = 1;
const EHDR_LEN: usize = 64;
const PHDR_LEN: usize = 56;

/// A loadable segment as the file states it.
struct ProgramHeader {
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
}

fn bytes<const N: usize>(file: &[u8], at: usize) -> Option<[u8; N]> {
    file.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(file: &[u8], at: usize) -> Option<u16> {
    bytes(file, at).map(u16::from_le_bytes)
}

fn u32_at(file: &[u8], at: usize) -> Option<u32> {
    bytes(file, at).map(u32::from_le_bytes)
}

fn u64_at(file: &[u8], at: usize) -> Option<u64> {
    bytes(file, at).map(u64::from_le_bytes)
}

fn bad(problem: String) -> String {
    refuse(KERNEL_PATH_FIELD, problem)
}

/// Refuses ELF files that are not little-endian ELF64 for AArch64.
fn check_header(file: &[u8]) -> Result<(), String> {
    if file.len() < EHDR_LEN {
        return Err(bad(format!(
            "an ELF file of {} bytes is shorter than its 64-byte header",
            file.len()
        )));
    }
    if file[4] != ELFCLASS64 {
        return Err(bad("a 32-bit ELF file: arm64 guests need ELF64".into()));
    }
    if file[5] != ELFDATA2LSB {
        return Err(bad(
            "a big-endian ELF file: axvm loads little-endian AArch64 ELF64".into(),
        ));
    }
    let machine = u16_at(file, 18).unwrap_or(0);
    if machine != EM_AARCH64 {
        return Err(bad(format!(
            "an ELF file for machine {machine}, not AArch64 ({EM_AARCH64}): build the kernel for aarch64"
        )));
    }
    Ok(())
}

/// The `PT_LOAD` headers with a non-zero memory size, each read inside the file.
fn load_headers(file: &[u8]) -> Result<Vec<ProgramHeader>, String> {
    let phoff = u64_at(file, 32).unwrap_or(0);
    let phentsize = usize::from(u16_at(file, 54).unwrap_or(0));
    let phnum = usize::from(u16_at(file, 56).unwrap_or(0));
    if phnum > 0 && phentsize < PHDR_LEN {
        return Err(bad(format!(
            "program headers of {phentsize} bytes, fewer than ELF64's {PHDR_LEN}"
        )));
    }
    let mut headers = Vec::new();
    for index in 0..phnum {
        let at = usize::try_from(phoff)
            .ok()
            .and_then(|phoff| phoff.checked_add(index.checked_mul(phentsize)?))
            .filter(|at| {
                at.checked_add(PHDR_LEN)
                    .is_some_and(|end| end <= file.len())
            });
        let Some(at) = at else {
            return Err(bad(format!(
                "program header {index} lies beyond the end of the file ({} bytes)",
                file.len()
            )));
        };
        if u32_at(file, at) != Some(PT_LOAD) {
            continue;
        }
        let field = |offset| u64_at(file, at + offset).unwrap_or(0);
        let header = ProgramHeader {
            offset: field(8),
            vaddr: field(16),
            paddr: field(24),
            filesz: field(32),
            memsz: field(40),
        };
        if header.memsz > 0 {
            headers.push(header);
        }
    }
    Ok(headers)
}

/// One segment as a plan entry, refused unless its file bytes are in the file and its
/// memory lies in one RAM region.
fn segment(
    config: &AxVMConfig,
    file: &[u8],
    index: usize,
    header: &ProgramHeader,
) -> Result<Segment, String> {
    let file_bytes = usize::try_from(header.offset).ok().and_then(|start| {
        let end = start.checked_add(usize::try_from(header.filesz).ok()?)?;
        (end <= file.len()).then_some(start..end)
    });
    let Some(file_bytes) = file_bytes else {
        return Err(bad(format!(
            "PT_LOAD segment {index} claims file bytes {:#x}+{:#x}, beyond the file's {:#x}",
            header.offset,
            header.filesz,
            file.len()
        )));
    };
    if header.filesz > header.memsz {
        return Err(bad(format!(
            "PT_LOAD segment {index} has more file bytes ({:#x}) than memory ({:#x})",
            header.filesz, header.memsz
        )));
    }
    let at = GuestPhysAddr::new(header.paddr);
    if let Err(err) = config.check_image_fits(KERNEL_PATH_FIELD, at, header.memsz) {
        return Err(format!(
            "{err} (PT_LOAD segment {index} of the ELF kernel, linked at p_paddr {:#x}: relink it for the VM's RAM or add RAM there)",
            header.paddr
        ));
    }
    Ok((header.paddr, file_bytes, header.memsz))
}

/// The physical entry: `e_entry` when a segment's physical range holds it, else its
/// translation when a segment's virtual range does (a kernel linked at virtual addresses).
fn physical_entry(entry: u64, headers: &[ProgramHeader]) -> Option<u64> {
    let inside = |base: u64, size: u64| entry >= base && entry - base < size;
    headers
        .iter()
        .find(|h| inside(h.paddr, h.memsz))
        .map(|_| entry)
        .or_else(|| {
            headers
                .iter()
                .find(|h| inside(h.vaddr, h.memsz))
                .map(|h| h.paddr + (entry - h.vaddr))
        })
}

/// The segments and entry of an ELF64 AArch64 kernel.
pub(super) fn plan(config: &AxVMConfig, file: &[u8]) -> Result<KernelPlan, String> {
    check_header(file)?;
    let headers = load_headers(file)?;
    if headers.is_empty() {
        return Err(bad("the ELF file has no loadable (PT_LOAD) segment".into()));
    }
    let mut segments = Vec::with_capacity(headers.len());
    for (index, header) in headers.iter().enumerate() {
        let planned = segment(config, file, index, header)?;
        let range = planned.0..planned.0 + planned.2;
        if let Some(other) = segments
            .iter()
            .position(|(gpa, _, size): &Segment| range.start < gpa + size && *gpa < range.end)
        {
            return Err(bad(format!(
                "PT_LOAD segments {other} and {index} overlap in guest memory at {:#x}",
                range.start.max(segments[other].0)
            )));
        }
        segments.push(planned);
    }
    let e_entry = u64_at(file, 24).unwrap_or(0);
    let Some(entry) = physical_entry(e_entry, &headers) else {
        return Err(bad(format!(
            "the ELF entry point {e_entry:#x} lies in none of its loadable segments"
        )));
    };
    Ok((segments, entry))
}
