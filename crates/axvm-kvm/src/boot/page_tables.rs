//! The boot structures a 64-bit guest starts with: a GDT and page tables identity-mapping
//! the low 4 GiB with 2 MiB pages (RAM and the device window below 4 GiB alike).

use axvm::{AxVM, AxVMHal, GuestMemoryError, GuestPhysAddr};

/// Where the boot structures go: low memory that images rarely use.
pub(crate) const BOOT_AREA_START: u64 = 0x1000;
/// One past the boot structures.
pub(crate) const BOOT_AREA_END: u64 = 0x8000;

const GDT_ADDR: u64 = 0x1000;
const PML4_ADDR: u64 = 0x2000;
const PDPT_ADDR: u64 = 0x3000;
/// Four page directories, one per GiB.
const PD_ADDR: u64 = 0x4000;
const GIB_MAPPED: u64 = 4;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const HUGE_PAGE: u64 = 1 << 7;
const PAGE_2M: u64 = 1 << 21;

/// Null descriptor, 64-bit code (selector 0x8), flat data (selector 0x10), 32-bit code
/// (selector 0x18): one GDT serves the 32-bit and the 64-bit entries.
const GDT: [u64; 4] = [
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
        .write(GuestPhysAddr::new(GDT_ADDR), &to_bytes(&GDT))?;
    Ok(GuestPhysAddr::new(GDT_ADDR))
}

/// Writes the GDT and the identity page tables into guest RAM.
pub(crate) fn write_boot_tables<H: AxVMHal>(vm: &AxVM<H>) -> Result<BootTables, GuestMemoryError> {
    let memory = vm.memory();
    let gdt_base = write_gdt(vm)?;
    memory.write_to_guest_of(
        GuestPhysAddr::new(PML4_ADDR),
        &(PDPT_ADDR | PRESENT | WRITABLE),
    )?;
    let pdpt: Vec<u64> = (0..GIB_MAPPED)
        .map(|gib| (PD_ADDR + gib * 0x1000) | PRESENT | WRITABLE)
        .collect();
    memory.write(GuestPhysAddr::new(PDPT_ADDR), &to_bytes(&pdpt))?;
    let directory: Vec<u64> = (0..GIB_MAPPED * 512)
        .map(|page| (page * PAGE_2M) | PRESENT | WRITABLE | HUGE_PAGE)
        .collect();
    memory.write(GuestPhysAddr::new(PD_ADDR), &to_bytes(&directory))?;
    Ok(BootTables {
        page_table_root: GuestPhysAddr::new(PML4_ADDR),
        gdt_base,
    })
}

fn to_bytes(words: &[u64]) -> Vec<u8> {
    words.iter().flat_map(|word| word.to_le_bytes()).collect()
}
