//! Nested page tables (NPT): the guest-physical → host-physical translation the processor
//! applies to every guest access when `nested_ctl` enables nested paging.
//!
//! The tables use the long-mode 4-level format. Each VM memory region is mapped with 2 MiB
//! pages wherever guest and host addresses are both 2 MiB-aligned and the region covers the
//! whole page (fewer TLB misses), 4 KiB pages elsewhere. Read-only regions get no W bit,
//! non-executable ones the NX bit; MMIO ranges are simply left unmapped, so guest accesses
//! there exit with a nested page fault that [`crate::exit`] decodes. All nested-paging
//! accesses count as user accesses (APM vol. 2, "Nested Paging"), so every entry sets U/S.
//!
//! The host kernel owns the memory: it supplies zeroed frames and access to them through
//! [`PageTableMemory`], which keeps this module free of raw pointers.

use axvm::MappingFlags;

/// Memory for the tables, supplied by the host kernel.
pub trait PageTableMemory {
    /// Allocates a zeroed 4 KiB frame and returns its host-physical address (4 KiB-aligned),
    /// or `None` when memory ran out.
    fn alloc_zeroed_page(&mut self) -> Option<u64>;

    /// The 512 entries of a frame that [`alloc_zeroed_page`](Self::alloc_zeroed_page)
    /// returned, or `None` for any other address.
    fn table(&self, host_phys: u64) -> Option<&[u64; 512]>;

    /// The same, writable.
    fn table_mut(&mut self, host_phys: u64) -> Option<&mut [u64; 512]>;
}

/// One guest-physical range backed by host memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NptRegion {
    /// First guest-physical address (4 KiB-aligned).
    pub gpa: u64,
    /// First host-physical address (4 KiB-aligned).
    pub hpa: u64,
    /// Size in bytes (a multiple of 4 KiB).
    pub size: u64,
    /// READ is required; WRITE and EXECUTE are honoured; other flags are ignored.
    pub flags: MappingFlags,
}

/// Why a mapping could not be built; each names the guest-physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NptError {
    /// The region's addresses or size are not 4 KiB multiples, or it is empty.
    #[error("NPT region at GPA {gpa:#x} (HPA {hpa:#x}, size {size:#x}): addresses and size must be nonzero 4 KiB multiples")]
    Misaligned {
        /// The region's GPA.
        gpa: u64,
        /// The region's HPA.
        hpa: u64,
        /// The region's size.
        size: u64,
    },
    /// The region ends beyond the 48-bit guest-physical space or the 52-bit host-physical
    /// space that 4-level tables can express.
    #[error("NPT region at GPA {gpa:#x} (HPA {hpa:#x}, size {size:#x}) ends beyond 2^48 (guest) or 2^52 (host)")]
    OutOfRange {
        /// The region's GPA.
        gpa: u64,
        /// The region's HPA.
        hpa: u64,
        /// The region's size.
        size: u64,
    },
    /// x86 pages are always readable, so a region without READ cannot be expressed.
    #[error("NPT region at GPA {gpa:#x}: flags {flags:?} lack READ, which x86 pages cannot deny")]
    NotReadable {
        /// The region's GPA.
        gpa: u64,
        /// Its flags.
        flags: MappingFlags,
    },
    /// The page is already mapped (regions overlap).
    #[error("NPT: GPA {gpa:#x} is already mapped (overlapping regions)")]
    Overlap {
        /// The first page mapped twice.
        gpa: u64,
    },
    /// The host's allocator ran out of frames.
    #[error("NPT: out of page-table frames while mapping GPA {gpa:#x}")]
    OutOfMemory {
        /// The page being mapped.
        gpa: u64,
    },
    /// The host's memory did not give access to a frame it allocated.
    #[error("NPT: page-table frame at HPA {hpa:#x} is not accessible through PageTableMemory")]
    BadFrame {
        /// The frame.
        hpa: u64,
    },
}

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const USER: u64 = 1 << 2;
const LARGE: u64 = 1 << 7;
const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
const PAGE_4K: u64 = 0x1000;
const PAGE_2M: u64 = 0x20_0000;
const GPA_LIMIT: u64 = 1 << 48;
const HPA_LIMIT: u64 = 1 << 52;
/// Intermediate entries allow everything; the leaf decides.
const TABLE_ENTRY: u64 = PRESENT | WRITABLE | USER;

/// A guest-physical address translated by a software walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The host-physical address.
    pub hpa: u64,
    /// The size of the page that maps it (4 KiB or 2 MiB).
    pub page_size: u64,
    /// Whether the guest may write.
    pub writable: bool,
    /// Whether the guest may execute.
    pub executable: bool,
}

/// A set of nested page tables; its [`root`](Self::root) goes into the VMCB's `nested_cr3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NestedPageTables {
    root: u64,
}

impl NestedPageTables {
    /// Empty tables (every access faults).
    pub fn new(memory: &mut impl PageTableMemory) -> Result<Self, NptError> {
        let root = alloc_table(memory, 0)?;
        Ok(Self { root })
    }

    /// Tables mapping exactly `regions` (MMIO ranges are left out by the caller).
    pub fn build(
        memory: &mut impl PageTableMemory,
        regions: &[NptRegion],
    ) -> Result<Self, NptError> {
        let mut tables = Self::new(memory)?;
        for region in regions {
            tables.map(memory, region)?;
        }
        Ok(tables)
    }

    /// The host-physical address of the top-level table (PML4).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Maps one region, 2 MiB pages where possible.
    pub fn map(
        &mut self,
        memory: &mut impl PageTableMemory,
        region: &NptRegion,
    ) -> Result<(), NptError> {
        let leaf_bits = check_region(region)?;
        let mut offset = 0;
        while offset < region.size {
            let (gpa, hpa) = (region.gpa + offset, region.hpa + offset);
            let huge = gpa % PAGE_2M == 0 && hpa % PAGE_2M == 0 && region.size - offset >= PAGE_2M;
            let mapped = if huge {
                self.map_2m(memory, gpa, hpa | leaf_bits)?
            } else {
                false
            };
            if !mapped {
                self.map_4k(memory, gpa, hpa | leaf_bits)?;
            }
            offset += if mapped { PAGE_2M } else { PAGE_4K };
        }
        Ok(())
    }

    /// The translation of `gpa`, walking the tables as the processor would; `None` when
    /// the address is unmapped (an access would fault).
    pub fn translate(&self, memory: &impl PageTableMemory, gpa: u64) -> Option<Translation> {
        let mut table = self.root;
        for level in (0..4).rev() {
            let entry = memory.table(table)?[index(gpa, level)];
            if entry & PRESENT == 0 {
                return None;
            }
            let page_size = 1u64 << (12 + 9 * level);
            if level == 0 || (level == 1 && entry & LARGE != 0) {
                return Some(Translation {
                    hpa: (entry & ADDR_MASK & !(page_size - 1)) | (gpa & (page_size - 1)),
                    page_size,
                    writable: entry & WRITABLE != 0,
                    executable: entry & NO_EXECUTE == 0,
                });
            }
            table = entry & ADDR_MASK;
        }
        None
    }

    /// Puts a 2 MiB leaf for `gpa` into its page directory; `false` when that slot already
    /// holds a page table (part of the range is mapped with 4 KiB pages), so the caller
    /// maps 4 KiB pages instead.
    fn map_2m(
        &self,
        memory: &mut impl PageTableMemory,
        gpa: u64,
        leaf: u64,
    ) -> Result<bool, NptError> {
        let directory = self.walk_to(memory, gpa, 1)?;
        let entry = &mut table_mut(memory, directory)?[index(gpa, 1)];
        if *entry & PRESENT != 0 {
            if *entry & LARGE != 0 {
                return Err(NptError::Overlap { gpa });
            }
            return Ok(false);
        }
        *entry = leaf | LARGE;
        Ok(true)
    }

    /// Puts a 4 KiB leaf for `gpa` into its page table.
    fn map_4k(
        &self,
        memory: &mut impl PageTableMemory,
        gpa: u64,
        leaf: u64,
    ) -> Result<(), NptError> {
        let page_table = self.walk_to(memory, gpa, 0)?;
        let entry = &mut table_mut(memory, page_table)?[index(gpa, 0)];
        if *entry & PRESENT != 0 {
            return Err(NptError::Overlap { gpa });
        }
        *entry = leaf;
        Ok(())
    }

    /// The table at `target_level` (1 = page directory, 0 = page table) that covers `gpa`,
    /// creating missing intermediate tables.
    fn walk_to(
        &self,
        memory: &mut impl PageTableMemory,
        gpa: u64,
        target_level: u32,
    ) -> Result<u64, NptError> {
        let mut table = self.root;
        for level in ((target_level + 1)..4).rev() {
            let entry = table_mut(memory, table)?[index(gpa, level)];
            table = if entry & PRESENT == 0 {
                let next = alloc_table(memory, gpa)?;
                table_mut(memory, table)?[index(gpa, level)] = next | TABLE_ENTRY;
                next
            } else if entry & LARGE != 0 {
                return Err(NptError::Overlap { gpa });
            } else {
                entry & ADDR_MASK
            };
        }
        Ok(table)
    }
}

/// Validates a region and returns its leaf permission bits.
fn check_region(region: &NptRegion) -> Result<u64, NptError> {
    let NptRegion {
        gpa,
        hpa,
        size,
        flags,
    } = *region;
    if size == 0 || (gpa | hpa | size) % PAGE_4K != 0 {
        return Err(NptError::Misaligned { gpa, hpa, size });
    }
    let in_range = |start: u64, limit: u64| start.checked_add(size).is_some_and(|end| end <= limit);
    if !in_range(gpa, GPA_LIMIT) || !in_range(hpa, HPA_LIMIT) {
        return Err(NptError::OutOfRange { gpa, hpa, size });
    }
    if !flags.contains(MappingFlags::READ) {
        return Err(NptError::NotReadable { gpa, flags });
    }
    let mut bits = PRESENT | USER;
    if flags.contains(MappingFlags::WRITE) {
        bits |= WRITABLE;
    }
    if !flags.contains(MappingFlags::EXECUTE) {
        bits |= NO_EXECUTE;
    }
    Ok(bits)
}

/// The entry index of `gpa` in a table of `level` (3 = PML4 ... 0 = page table).
fn index(gpa: u64, level: u32) -> usize {
    ((gpa >> (12 + 9 * level)) & 0x1ff) as usize
}

fn alloc_table(memory: &mut impl PageTableMemory, gpa: u64) -> Result<u64, NptError> {
    let hpa = memory
        .alloc_zeroed_page()
        .ok_or(NptError::OutOfMemory { gpa })?;
    if hpa % PAGE_4K != 0 || hpa >= HPA_LIMIT {
        return Err(NptError::BadFrame { hpa });
    }
    Ok(hpa)
}

fn table_mut(memory: &mut impl PageTableMemory, hpa: u64) -> Result<&mut [u64; 512], NptError> {
    memory.table_mut(hpa).ok_or(NptError::BadFrame { hpa })
}

#[cfg(test)]
mod tests;
