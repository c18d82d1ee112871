//! The boot structures a 64-bit guest starts with: a GDT and page tables identity-mapping
//! the low 4 GiB with 2 MiB pages (RAM and the device window below 4 GiB alike).
//!
//! Where they go is the PC layout's (`platform::pc::layout`), or for the boot protocols
//! wherever `low_memory.rs` moved them, in the same order.

use axvm::{AxVM, AxVMHal, GuestMemoryError, GuestPhysAddr};

use crate::platform::pc::layout::{
    GDT_ENTRIES, GDT_START, IDENTITY_MAPPED_GIB, PDPT_START, PD_START, PML4_START,
};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const HUGE_PAGE: u64 = 1 << 7;
const PAGE_2M: u64 = 1 << 21;

/// Null descriptor, 64-bit code (selector 0x8), flat data (selector 0x10), 32-bit code
/// (selector 0x18): one GDT serves the 32-bit and the 64-bit entries.
const GDT: [u64; GDT_ENTRIES as usize] = [
    0,
    0x00af_9b00_0000_ffff,
    0x00cf_9300_0000_ffff,
    0x00cf_9b00_0000_ffff,
];

/// Where the loaded structures are, for the vCPU's initial CR3 and GDTR.
pub(crate) struct BootTables {
    pub(crate) page_table_root: GuestPhysAddr,
    pub(crate) gdt_base: GuestPhysAddr,
}

/// Writes the GDT at `base` in guest RAM and returns its address.
pub(crate) fn write_gdt<H: AxVMHal>(
    vm: &AxVM<H>,
    base: u64,
) -> Result<GuestPhysAddr, GuestMemoryError> {
    vm.memory()
        .write(GuestPhysAddr::new(base), &to_bytes(&GDT))?;
    Ok(GuestPhysAddr::new(base))
}

/// Writes the GDT and the identity page tables into guest RAM at the PC layout's place.
pub(crate) fn write_boot_tables<H: AxVMHal>(vm: &AxVM<H>) -> Result<BootTables, GuestMemoryError> {
    write_boot_tables_at(vm, GDT_START)
}

/// Writes the GDT at `base` (page-aligned) and the identity page tables in the pages after
/// it, in the PC layout's order (PML4, PDPT, page directories), which the tables' own
/// pointers follow.
pub(crate) fn write_boot_tables_at<H: AxVMHal>(
    vm: &AxVM<H>,
    base: u64,
) -> Result<BootTables, GuestMemoryError> {
    let memory = vm.memory();
    let at = |fixed: u64| fixed - GDT_START + base;
    let gdt_base = write_gdt(vm, base)?;
    memory.write_to_guest_of(
        GuestPhysAddr::new(at(PML4_START)),
        &(at(PDPT_START) | PRESENT | WRITABLE),
    )?;
    let pdpt: Vec<u64> = (0..IDENTITY_MAPPED_GIB)
        .map(|gib| (at(PD_START) + gib * 0x1000) | PRESENT | WRITABLE)
        .collect();
    memory.write(GuestPhysAddr::new(at(PDPT_START)), &to_bytes(&pdpt))?;
    let directory: Vec<u64> = (0..IDENTITY_MAPPED_GIB * 512)
        .map(|page| (page * PAGE_2M) | PRESENT | WRITABLE | HUGE_PAGE)
        .collect();
    memory.write(GuestPhysAddr::new(at(PD_START)), &to_bytes(&directory))?;
    Ok(BootTables {
        page_table_root: GuestPhysAddr::new(at(PML4_START)),
        gdt_base,
    })
}

fn to_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|word| word.to_le_bytes()).collect()
}
