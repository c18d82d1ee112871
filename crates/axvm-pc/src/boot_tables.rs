//! The boot structures a 64-bit guest starts with: a GDT and page tables identity-mapping
//! the low 4 GiB with 2 MiB pages (RAM and the device window below 4 GiB alike).
//!
//! Where they go is fixed ([`GDT_START`] and the pages after it), or for the KVM host's boot
//! protocols wherever [`low_memory`](crate::low_memory) moved them, in the same order. Every axvm host
//! writes them with these functions, so a guest starts with the same tables on each.

use alloc::vec::Vec;

use axvm::{AxVM, AxVMHal, GuestMemoryError, GuestPhysAddr};

/// The GDT: low memory no image uses (kernels load at 1 MiB), below the page tables. One
/// GDT serves the 32-bit and the 64-bit starts.
pub const GDT_START: u64 = 0x1000;
/// Descriptors in the GDT: null, 64-bit code, flat data, 32-bit code.
pub const GDT_ENTRIES: u64 = 4;
/// One past the GDT.
pub const GDT_END: u64 = GDT_START + GDT_ENTRIES * 8;
/// The boot page tables' root (PML4), the page after the GDT's.
pub const PML4_START: u64 = 0x2000;
/// The page-directory-pointer table: one entry per GiB mapped.
pub const PDPT_START: u64 = 0x3000;
/// The first of the page directories, one 4 KiB page per GiB mapped.
pub const PD_START: u64 = 0x4000;
/// How many GiB the boot page tables identity-map with 2 MiB pages: the whole 32-bit space,
/// RAM and the device window below 4 GiB alike, so a 64-bit kernel reaches both at entry.
pub const IDENTITY_MAPPED_GIB: u64 = 4;
/// The GDT and boot page tables together start here: what the 64-bit starts need as RAM.
pub const BOOT_TABLES_START: u64 = GDT_START;
/// One past the last page directory.
pub const BOOT_TABLES_END: u64 = PD_START + IDENTITY_MAPPED_GIB * 0x1000;

/// The GDT's 64-bit code selector.
pub const CODE64_SELECTOR: u16 = 0x8;
/// The GDT's flat data selector.
pub const DATA_SELECTOR: u16 = 0x10;
/// The GDT's 32-bit code selector.
pub const CODE32_SELECTOR: u16 = 0x18;

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const HUGE_PAGE: u64 = 1 << 7;
const PAGE_2M: u64 = 1 << 21;

/// Null descriptor, 64-bit code (selector 0x8), flat data (selector 0x10), 32-bit code
/// (selector 0x18): one GDT serves the 32-bit and the 64-bit entries.
pub const GDT: [u64; GDT_ENTRIES as usize] = [
    0,
    0x00af_9b00_0000_ffff,
    0x00cf_9300_0000_ffff,
    0x00cf_9b00_0000_ffff,
];

/// Where the loaded structures are, for the vCPU's initial CR3 and GDTR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootTables {
    /// The PML4's guest-physical address (CR3).
    pub page_table_root: GuestPhysAddr,
    /// The GDT's guest-physical address (GDTR base).
    pub gdt_base: GuestPhysAddr,
}

/// Writes the GDT at `base` in guest RAM and returns its address.
pub fn write_gdt<H: AxVMHal>(vm: &AxVM<H>, base: u64) -> Result<GuestPhysAddr, GuestMemoryError> {
    vm.memory()
        .write(GuestPhysAddr::new(base), &to_bytes(&GDT))?;
    Ok(GuestPhysAddr::new(base))
}

/// Writes the GDT and the identity page tables into guest RAM at [`GDT_START`].
pub fn write_boot_tables<H: AxVMHal>(vm: &AxVM<H>) -> Result<BootTables, GuestMemoryError> {
    write_boot_tables_at(vm, GDT_START)
}

/// Writes the GDT at `base` (page-aligned) and the identity page tables in the pages after
/// it, in the PC layout's order (PML4, PDPT, page directories), which the tables' own
/// pointers follow.
pub fn write_boot_tables_at<H: AxVMHal>(
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
