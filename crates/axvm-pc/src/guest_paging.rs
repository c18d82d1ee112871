//! Guest linear addresses to guest-physical ones, by walking the guest's own page tables
//! from CR3, as the processor would: the one walk every axvm host uses. The KVM host walks
//! for GDB and its stop reports; the SVM backend walks to fetch the instruction behind an
//! MMIO exit when the processor has no decode assists.
//!
//! Every paging form a PC guest can be in is walked: none (CR0.PG clear: linear is
//! physical, 32 bits wide outside long mode), 32-bit (4 KiB pages, 4 MiB with CR4.PSE,
//! PSE-36 high address bits included), PAE, and long mode with 4 or 5 levels (CR4.LA57),
//! with large pages at every level that has them (2 MiB, and 1 GiB in a PDPTE). Only
//! present entries are followed; access rights are not checked (the caller asks where an
//! address goes, not whether the guest may use it). Tables are read only through the
//! host's [`GuestPhysReader`], so a guest's bad tables never make a host read anything but
//! guest RAM. What a host does not walk (the SVM backend refuses 5-level paging) it checks
//! before calling, and says so with [`GuestWalkError::FiveLevelPaging`].

/// The control registers that select and root the guest's paging.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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

/// CR0.PG: paging on.
pub const CR0_PG: u64 = 1 << 31;
/// CR4.PSE: 4 MiB pages under 32-bit paging.
pub const CR4_PSE: u64 = 1 << 4;
/// CR4.PAE: 64-bit entries (PAE paging, and long mode's).
pub const CR4_PAE: u64 = 1 << 5;
/// CR4.LA57: 5-level paging in long mode.
pub const CR4_LA57: u64 = 1 << 12;
/// EFER.LMA: long mode active.
pub const EFER_LMA: u64 = 1 << 10;
/// 1 GiB: the page a long-mode PDPTE with its PS bit maps, which only CPUs with `pdpe1gb`
/// walk (elsewhere the bit is reserved and the walk faults).
pub const GIB_PAGE: u64 = 1 << 30;

const PRESENT: u64 = 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Bits 12-51 of a PAE or long-mode entry: the next table or the page.
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Bits 12-31 of a 32-bit entry.
const ADDRESS_MASK_32: u64 = 0xffff_f000;

/// Reads guest-physical memory the way the host can (guest RAM through its own mapping, or
/// through the nested page tables).
pub trait GuestPhysReader {
    /// Fills `buf` from `gpa` (the walk never asks across a 4 KiB page); `None` when it is
    /// not guest RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()>;
}

/// A [`GuestPhysReader`] from a closure `(gpa, buf) -> Option<()>`, for a host whose read of
/// guest RAM is one call.
pub struct ReadFn<F>(pub F);

impl<F: Fn(u64, &mut [u8]) -> Option<()>> GuestPhysReader for ReadFn<F> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        (self.0)(gpa, buf)
    }
}

/// A level of the guest's page tables, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagingLevel {
    /// 5-level paging's top level.
    Pml5,
    /// Long mode's 4-level top level.
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
            Self::Pml5 => "PML5 entry",
            Self::Pml4 => "PML4 entry",
            Self::Pdpt => "PDPT entry",
            Self::PageDirectory => "page-directory entry",
            Self::PageTable => "page-table entry",
        })
    }
}

/// Why a guest linear address could not be translated or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuestWalkError {
    /// An entry on the way is not present: the guest itself would page-fault.
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
    NotRam {
        /// The address translated.
        linear: u64,
        /// The guest-physical address that is not RAM.
        gpa: u64,
        /// What was there to read.
        what: &'static str,
    },
    /// CR4.LA57 on a host that does not walk 5 levels (the SVM backend).
    FiveLevelPaging {
        /// The address translated.
        linear: u64,
    },
}

impl core::fmt::Display for GuestWalkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            Self::NotPresent {
                linear,
                level,
                entry_gpa,
                entry,
            } => write!(
                f,
                "guest linear address {linear:#x}: the {level} at guest-physical \
                 {entry_gpa:#x} is not present ({entry:#x})"
            ),
            Self::NotRam { linear, gpa, what } => write!(
                f,
                "guest linear address {linear:#x}: guest-physical {gpa:#x} ({what}) is not \
                 guest RAM"
            ),
            Self::FiveLevelPaging { linear } => write!(
                f,
                "guest linear address {linear:#x}: 5-level paging (CR4.LA57) is not supported \
                 by the SVM backend's page walk"
            ),
        }
    }
}

impl core::error::Error for GuestWalkError {}

/// Where a linear address went: its guest-physical address and the size of the page that
/// maps it (0 without paging).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The guest-physical address.
    pub gpa: u64,
    /// The size of the page the walk stopped at, in bytes; 0 with paging off.
    pub page_size: u64,
}

/// One level of a walk: its name, where its index sits in the linear address, and whether
/// an entry may map a large page there.
struct Level {
    name: PagingLevel,
    shift: u32,
    index_bits: u32,
    large_pages: bool,
}

const fn level(name: PagingLevel, shift: u32, index_bits: u32, large_pages: bool) -> Level {
    Level {
        name,
        shift,
        index_bits,
        large_pages,
    }
}

const LONG_MODE_4: [Level; 4] = [
    level(PagingLevel::Pml4, 39, 9, false),
    level(PagingLevel::Pdpt, 30, 9, true),
    level(PagingLevel::PageDirectory, 21, 9, true),
    level(PagingLevel::PageTable, 12, 9, false),
];
const LONG_MODE_5: [Level; 5] = [
    level(PagingLevel::Pml5, 48, 9, false),
    level(PagingLevel::Pml4, 39, 9, false),
    level(PagingLevel::Pdpt, 30, 9, true),
    level(PagingLevel::PageDirectory, 21, 9, true),
    level(PagingLevel::PageTable, 12, 9, false),
];
const PAE_BELOW_PDPT: [Level; 2] = [
    level(PagingLevel::PageDirectory, 21, 9, true),
    level(PagingLevel::PageTable, 12, 9, false),
];

/// The guest-physical address behind `linear` as the guest with `regs` translates it.
pub fn linear_to_phys(
    reader: &impl GuestPhysReader,
    regs: &PagingRegs,
    linear: u64,
) -> Result<u64, GuestWalkError> {
    translate(reader, regs, linear).map(|page| page.gpa)
}

/// [`linear_to_phys`], with the size of the page that maps `linear`.
pub fn translate(
    reader: &impl GuestPhysReader,
    regs: &PagingRegs,
    linear: u64,
) -> Result<Translation, GuestWalkError> {
    if regs.cr0 & CR0_PG == 0 {
        // Without paging, outside long mode, addresses are 32 bits wide.
        let gpa = match regs.efer & EFER_LMA {
            0 => linear & 0xffff_ffff,
            _ => linear,
        };
        return Ok(Translation { gpa, page_size: 0 });
    }
    if regs.efer & EFER_LMA != 0 {
        let levels: &[Level] = match regs.cr4 & CR4_LA57 {
            0 => &LONG_MODE_4,
            _ => &LONG_MODE_5,
        };
        return walk_wide(reader, regs.cr3 & ADDRESS_MASK, levels, linear);
    }
    let linear = linear & 0xffff_ffff;
    if regs.cr4 & CR4_PAE != 0 {
        // The four PDPTEs sit at CR3 (32-byte aligned) and have no large-page bit.
        let entry_gpa = (regs.cr3 & 0xffff_ffe0) + 8 * (linear >> 30);
        let pdpte = read_entry(reader, linear, PagingLevel::Pdpt, entry_gpa, 8)?;
        return walk_wide(reader, pdpte & ADDRESS_MASK, &PAE_BELOW_PDPT, linear);
    }
    walk_32(reader, regs, linear)
}

/// Walks `levels` of 8-byte entries from the table at `table`.
fn walk_wide(
    reader: &impl GuestPhysReader,
    mut table: u64,
    levels: &[Level],
    linear: u64,
) -> Result<Translation, GuestWalkError> {
    for (depth, level) in levels.iter().enumerate() {
        let index = (linear >> level.shift) & ((1 << level.index_bits) - 1);
        let entry = read_entry(reader, linear, level.name, table + 8 * index, 8)?;
        let last = depth + 1 == levels.len();
        if last || (level.large_pages && entry & PAGE_SIZE_BIT != 0) {
            let offset_mask = (1u64 << level.shift) - 1;
            return Ok(Translation {
                gpa: (entry & ADDRESS_MASK & !offset_mask) | (linear & offset_mask),
                page_size: 1 << level.shift,
            });
        }
        table = entry & ADDRESS_MASK;
    }
    // Only reached with no levels at all, which no caller passes.
    Err(GuestWalkError::NotRam {
        linear,
        gpa: table,
        what: "a page-table page",
    })
}

/// 32-bit paging: a page directory of 4-byte entries (4 MiB pages under CR4.PSE, with
/// PSE-36's physical-address bits 32-39 in entry bits 13-20), then a page table.
fn walk_32(
    reader: &impl GuestPhysReader,
    regs: &PagingRegs,
    linear: u64,
) -> Result<Translation, GuestWalkError> {
    let directory = regs.cr3 & ADDRESS_MASK_32;
    let pde_gpa = directory + 4 * (linear >> 22);
    let pde = read_entry(reader, linear, PagingLevel::PageDirectory, pde_gpa, 4)?;
    if regs.cr4 & CR4_PSE != 0 && pde & PAGE_SIZE_BIT != 0 {
        let high = ((pde >> 13) & 0xff) << 32;
        return Ok(Translation {
            gpa: high | (pde & 0xffc0_0000) | (linear & 0x3f_ffff),
            page_size: 1 << 22,
        });
    }
    let pte_gpa = (pde & ADDRESS_MASK_32) + 4 * ((linear >> 12) & 0x3ff);
    let pte = read_entry(reader, linear, PagingLevel::PageTable, pte_gpa, 4)?;
    Ok(Translation {
        gpa: (pte & ADDRESS_MASK_32) | (linear & 0xfff),
        page_size: 0x1000,
    })
}

/// Reads the little-endian entry of `size` bytes (4 or 8) at `entry_gpa` and checks that
/// it is present.
fn read_entry(
    reader: &impl GuestPhysReader,
    linear: u64,
    level: PagingLevel,
    entry_gpa: u64,
    size: usize,
) -> Result<u64, GuestWalkError> {
    let mut raw = [0u8; 8];
    let not_ram = GuestWalkError::NotRam {
        linear,
        gpa: entry_gpa,
        what: "a page-table page",
    };
    let bytes = raw.get_mut(..size).ok_or(not_ram)?;
    reader.read(entry_gpa, bytes).ok_or(not_ram)?;
    let entry = u64::from_le_bytes(raw);
    if entry & PRESENT == 0 {
        return Err(GuestWalkError::NotPresent {
            linear,
            level,
            entry_gpa,
            entry,
        });
    }
    Ok(entry)
}

#[cfg(test)]
mod tests;
