//! The kernel's final page tables: the boot tables of [`crate::boot::entry`] (the low 4 GiB in
//! 2 MiB pages, the top GiB uncached) refined from the memory map, so that every 2 MiB page
//! with RAM or ACPI data in it is write-back and every other page of the low 4 GiB (MMIO: the
//! APICs, PCI holes, firmware flash) is uncached; and RAM above 4 GiB (up to
//! [`frames::MAX_PHYS`]) identity-mapped the same way. All CPUs share these tables.

use super::{frames, LARGE_PAGE_SIZE};
use crate::boot::entry::{hv_pd_low, hv_pdpt};
use crate::boot::multiboot::MemoryRegion;
use crate::cpu;

/// PDE bits: present, writable, 2 MiB page; PWT|PCD for uncached.
const PDE_LARGE_RW: u64 = 0x83;
const PDE_UNCACHED: u64 = 0x18;
/// PDPT entry bits for a page directory: present, writable.
const PDPTE_TABLE: u64 = 0x03;
const GIB: u64 = 1 << 30;
/// Page directories for RAM between 4 GiB and MAX_PHYS.
const HIGH_PDS: usize = (frames::MAX_PHYS / GIB) as usize - 4;

#[repr(C, align(4096))]
struct PageDirectories([[u64; 512]; HIGH_PDS]);

static mut HIGH: PageDirectories = PageDirectories([[0; 512]; HIGH_PDS]);

/// Memory-map types whose pages are cached: RAM, ACPI reclaimable, ACPI NVS.
fn is_cacheable(region: &MemoryRegion) -> bool {
    matches!(region.kind, 1 | 3 | 4)
}

fn overlaps(region: &MemoryRegion, start: u64, end: u64) -> bool {
    region.start < end && start < region.end()
}

fn pde(pa: u64, cached: bool) -> u64 {
    pa | PDE_LARGE_RW | if cached { 0 } else { PDE_UNCACHED }
}

/// Rewrites the boot tables as the module doc says and flushes this CPU's TLB. Runs on the BSP
/// before any AP starts (the APs load the same CR3 afterwards).
pub fn init(regions: &[MemoryRegion]) {
    let cached = |start: u64| {
        regions
            .iter()
            .any(|r| is_cacheable(r) && overlaps(r, start, start + LARGE_PAGE_SIZE))
    };
    // SAFETY: only the BSP runs yet; the entries rewritten keep the identity mapping the
    // running code relies on and change only cache attributes or add mappings.
    unsafe {
        let low = &mut *core::ptr::addr_of_mut!(hv_pd_low);
        for (index, entry) in low.iter_mut().flatten().enumerate() {
            let pa = index as u64 * LARGE_PAGE_SIZE;
            *entry = pde(pa, cached(pa));
        }
        let high = &mut *core::ptr::addr_of_mut!(HIGH);
        let pdpt = &mut *core::ptr::addr_of_mut!(hv_pdpt);
        for (gib, directory) in high.0.iter_mut().enumerate() {
            let base = (gib as u64 + 4) * GIB;
            let ram = |r: &MemoryRegion| r.kind == 1 && overlaps(r, base, base + GIB);
            if !regions.iter().any(ram) {
                continue;
            }
            for (index, entry) in directory.iter_mut().enumerate() {
                let pa = base + index as u64 * LARGE_PAGE_SIZE;
                if cached(pa) {
                    *entry = pde(pa, true);
                }
            }
            pdpt[gib + 4] = super::virt_to_phys(directory.as_ptr().cast()) | PDPTE_TABLE;
        }
    }
    cpu::flush_tlb();
}
