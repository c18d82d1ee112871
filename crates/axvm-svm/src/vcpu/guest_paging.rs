//! Walking the guest's own page tables in software: linear → guest-physical, for reading
//! the instruction behind an MMIO exit when the processor has no decode assists (QEMU's
//! `-cpu EPYC`), and for naming where a vCPU executes.
//!
//! Covers what the guests of this project use: paging off (real mode and flat protected
//! mode), 32-bit paging (with 4 MiB pages under CR4.PSE), PAE paging, and 4-level long
//! mode (with 2 MiB and 1 GiB pages). 5-level paging is refused with an error. Access
//! rights are not checked: the processor already fetched the instruction.

use crate::exit::InsnBytes;

/// The control registers that select and root the guest's paging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PagingRegs {
    /// CR0 (PG).
    pub cr0: u64,
    /// CR3 (the root).
    pub cr3: u64,
    /// CR4 (PAE, PSE, LA57).
    pub cr4: u64,
    /// EFER (LMA).
    pub efer: u64,
}

const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;
const PRESENT: u64 = 1 << 0;
const PAGE_SIZE_BIT: u64 = 1 << 7;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Reads guest-physical memory (the vCPU does it through the nested page tables).
pub trait GuestPhysReader {
    /// Fills `buf` from `gpa` (never across a 4 KiB page); `None` when it is not RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()>;
}

/// A level of the guest's page tables, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingLevel {
    /// Long mode's top level.
    Pml4,
    /// Long mode's or PAE's page-directory-pointer table.
    Pdpt,
    /// A page directory.
    PageDirectory,
    /// A page table.
    PageTable,
}

impl core::fmt::Display for PagingLevel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Pml4 => "PML4 entry",
            Self::Pdpt => "PDPT entry",
            Self::PageDirectory => "page-directory entry",
            Self::PageTable => "page-table entry",
        })
    }
}

/// Why a guest linear address could not be translated or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuestWalkError {
    /// An entry on the way is not present: the guest itself would page-fault.
    #[error("guest linear address {linear:#x}: the {level} at guest-physical {entry_gpa:#x} is not present ({entry:#x})")]
    NotPresent {
        /// The address translated.
        linear: u64,
        /// Which level.
        level: PagingLevel,
        /// Where the entry is.
        entry_gpa: u64,
        /// Its value.
        entry: u64,
    },
    /// A page table or the final address is not guest RAM.
    #[error("guest linear address {linear:#x}: guest-physical {gpa:#x} ({what}) is not guest RAM")]
    NotRam {
        /// The address translated.
        linear: u64,
        /// The guest-physical address that is not RAM.
        gpa: u64,
        /// What was there to read.
        what: &'static str,
    },
    /// CR4.LA57: not supported.
    #[error("guest linear address {linear:#x}: 5-level paging (CR4.LA57) is not supported by the SVM backend's page walk")]
    FiveLevelPaging {
        /// The address translated.
        linear: u64,
    },
}

/// The guest-physical address behind `linear`.
pub fn linear_to_phys(
    reader: &impl GuestPhysReader,
    regs: &PagingRegs,
    linear: u64,
) -> Result<u64, GuestWalkError> {
    if regs.cr0 & CR0_PG == 0 {
        return Ok(linear & 0xffff_ffff);
    }
    if regs.efer & EFER_LMA != 0 {
        if regs.cr4 & CR4_LA57 != 0 {
            return Err(GuestWalkError::FiveLevelPaging { linear });
        }
        return walk_long(reader, regs.cr3, linear);
    }
    let linear = linear & 0xffff_ffff;
    if regs.cr4 & CR4_PAE != 0 {
        walk_pae(reader, regs.cr3, linear)
    } else {
        walk_32(reader, regs.cr3, regs.cr4 & CR4_PSE != 0, linear)
    }
}

/// Up to 15 bytes of the instruction at `linear` (fewer when the next page is not
/// mapped; at least one, else the error).
pub fn fetch_instruction(
    reader: &impl GuestPhysReader,
    regs: &PagingRegs,
    linear: u64,
) -> Result<InsnBytes, GuestWalkError> {
    let mut bytes = [0u8; 15];
    let first_len = ((0x1000 - (linear & 0xfff)) as usize).min(15);
    let gpa = linear_to_phys(reader, regs, linear)?;
    reader
        .read(gpa, &mut bytes[..first_len])
        .ok_or(GuestWalkError::NotRam {
            linear,
            gpa,
            what: "instruction bytes",
        })?;
    let mut len = first_len;
    if first_len < 15 {
        let next = linear.wrapping_add(first_len as u64);
        let rest = linear_to_phys(reader, regs, next)
            .ok()
            .and_then(|gpa| reader.read(gpa, &mut bytes[first_len..]));
        if rest.is_some() {
            len = 15;
        }
    }
    Ok(InsnBytes::new(&bytes[..len]))
}

/// One entry: read it, check P.
fn entry(
    reader: &impl GuestPhysReader,
    linear: u64,
    level: PagingLevel,
    entry_gpa: u64,
    wide: bool,
) -> Result<u64, GuestWalkError> {
    let not_ram = GuestWalkError::NotRam {
        linear,
        gpa: entry_gpa,
        what: "a page-table page",
    };
    let value = if wide {
        let mut raw = [0u8; 8];
        reader.read(entry_gpa, &mut raw).ok_or(not_ram)?;
        u64::from_le_bytes(raw)
    } else {
        let mut raw = [0u8; 4];
        reader.read(entry_gpa, &mut raw).ok_or(not_ram)?;
        u64::from(u32::from_le_bytes(raw))
    };
    if value & PRESENT == 0 {
        return Err(GuestWalkError::NotPresent {
            linear,
            level,
            entry_gpa,
            entry: value,
        });
    }
    Ok(value)
}

fn index(linear: u64, shift: u32) -> u64 {
    (linear >> shift) & 0x1ff
}

fn walk_long(reader: &impl GuestPhysReader, cr3: u64, linear: u64) -> Result<u64, GuestWalkError> {
    let levels = [
        (PagingLevel::Pml4, 39),
        (PagingLevel::Pdpt, 30),
        (PagingLevel::PageDirectory, 21),
        (PagingLevel::PageTable, 12),
    ];
    let mut table = cr3 & ADDR_MASK;
    for (level, shift) in levels {
        let e = entry(
            reader,
            linear,
            level,
            table + 8 * index(linear, shift),
            true,
        )?;
        let large = matches!(level, PagingLevel::Pdpt | PagingLevel::PageDirectory)
            && e & PAGE_SIZE_BIT != 0;
        if large || level == PagingLevel::PageTable {
            let page_mask = (1u64 << shift) - 1;
            return Ok((e & ADDR_MASK & !page_mask) | (linear & page_mask));
        }
        table = e & ADDR_MASK;
    }
    unreachable!("the page-table level always returns")
}

fn walk_pae(reader: &impl GuestPhysReader, cr3: u64, linear: u64) -> Result<u64, GuestWalkError> {
    let pdpt = cr3 & 0xffff_ffe0;
    let pdpte = entry(
        reader,
        linear,
        PagingLevel::Pdpt,
        pdpt + 8 * (linear >> 30),
        true,
    )?;
    let directory = pdpte & ADDR_MASK;
    let pde = entry(
        reader,
        linear,
        PagingLevel::PageDirectory,
        directory + 8 * index(linear, 21),
        true,
    )?;
    if pde & PAGE_SIZE_BIT != 0 {
        return Ok((pde & ADDR_MASK & !0x1f_ffff) | (linear & 0x1f_ffff));
    }
    let table = pde & ADDR_MASK;
    let pte = entry(
        reader,
        linear,
        PagingLevel::PageTable,
        table + 8 * index(linear, 12),
        true,
    )?;
    Ok((pte & ADDR_MASK) | (linear & 0xfff))
}

fn walk_32(
    reader: &impl GuestPhysReader,
    cr3: u64,
    pse: bool,
    linear: u64,
) -> Result<u64, GuestWalkError> {
    let directory = cr3 & 0xffff_f000;
    let pde = entry(
        reader,
        linear,
        PagingLevel::PageDirectory,
        directory + 4 * (linear >> 22),
        false,
    )?;
    if pse && pde & PAGE_SIZE_BIT != 0 {
        // PSE-36: bits 13-20 of the entry are physical-address bits 32-39.
        let high = ((pde >> 13) & 0xff) << 32;
        return Ok(high | (pde & 0xffc0_0000) | (linear & 0x3f_ffff));
    }
    let table = pde & 0xffff_f000;
    let pte = entry(
        reader,
        linear,
        PagingLevel::PageTable,
        table + 4 * ((linear >> 12) & 0x3ff),
        false,
    )?;
    Ok((pte & 0xffff_f000) | (linear & 0xfff))
}

#[cfg(test)]
mod tests;
