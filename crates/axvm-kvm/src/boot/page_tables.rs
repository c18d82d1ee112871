//! The boot structures a 64-bit guest starts with: a GDT and page tables identity-mapping
//! the low 4 GiB with 2 MiB pages (RAM and the device window below 4 GiB alike).

//! Where they go is the PC layout's (`platform::pc::layout`).

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

/// Writes the GDT into guest RAM and returns its address.
pub(crate) fn write_gdt<H: AxVMHal>(vm: &AxVM<H>) -> Result<GuestPhysAddr, GuestMemoryError> {
    vm.memory()
        .write(GuestPhysAddr::new(GDT_START), &to_bytes(&GDT))?;
    Ok(GuestPhysAddr::new(GDT_START))
}

/// Writes the GDT and the identity page tables into guest RAM.
pub(crate) fn write_boot_tables<H: AxVMHal>(vm: &AxVM<H>) -> Result<BootTables, GuestMemoryError> {
    let memory = vm.memory();
    let gdt_base = write_gdt(vm)?;
    memory.write_to_guest_of(
        GuestPhysAddr::new(PML4_START),
        &(PDPT_START | PRESENT | WRITABLE),
    )?;
    let pdpt: Vec<u64> = (0..IDENTITY_MAPPED_GIB)
        .map(|gib| (PD_START + gib * 0x1000) | PRESENT | WRITABLE)
        .collect();
    memory.write(GuestPhysAddr::new(PDPT_START), &to_bytes(&pdpt))?;
    let directory: Vec<u64> = (0..IDENTITY_MAPPED_GIB * 512)
        .map(|page| (page * PAGE_2M) | PRESENT | WRITABLE | HUGE_PAGE)
        .collect();
    memory.write(GuestPhysAddr::new(PD_START), &to_bytes(&directory))?;
    Ok(BootTables {
        page_table_root: GuestPhysAddr::new(PML4_START),
        gdt_base,
    })
}

fn to_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|word| word.to_le_bytes()).collect()
}
