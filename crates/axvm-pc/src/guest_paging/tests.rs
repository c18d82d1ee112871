//! Walks over a small synthetic guest RAM, one per paging form.

use super::*;
use alloc::{string::ToString, vec, vec::Vec};

/// 2 MiB of guest RAM with entries written into it.
struct Ram(Vec<u8>);

impl Ram {
    fn new() -> Self {
        Self(vec![0; 0x20_0000])
    }

    fn put(&mut self, gpa: u64, entry: u64, size: usize) {
        let at = gpa as usize;
        self.0[at..at + size].copy_from_slice(&entry.to_le_bytes()[..size]);
    }
}

impl GuestPhysReader for Ram {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        let at = usize::try_from(gpa).ok()?;
        buf.copy_from_slice(self.0.get(at..at.checked_add(buf.len())?)?);
        Some(())
    }
}

fn gpa_of(ram: &Ram, regs: PagingRegs, linear: u64) -> Option<u64> {
    linear_to_phys(ram, &regs, linear).ok()
}

const LONG: PagingRegs = PagingRegs {
    cr0: CR0_PG | 1,
    cr3: 0x1000,
    cr4: CR4_PAE,
    efer: EFER_LMA | (1 << 8),
};

#[test]
fn paging_off_is_identity_with_32_bit_addresses_outside_long_mode() {
    let ram = Ram::new();
    let real = PagingRegs::default();
    assert_eq!(gpa_of(&ram, real, 0x1_0000_8000), Some(0x8000));
}

#[test]
fn long_mode_walks_four_levels_and_stops_at_large_pages() {
    let mut ram = Ram::new();
    // The top half: PML4[511] -> PDPT at 0x2000; PDPT[510] -> PD at 0x3000;
    // PD[0] -> PT at 0x4000; PT[5] -> page 0x7000. PD[1] is a 2 MiB page at 0x40_0000.
    ram.put(0x1000 + 511 * 8, 0x2003, 8);
    ram.put(0x2000 + 510 * 8, 0x3003, 8);
    ram.put(0x3000, 0x4003, 8);
    ram.put(0x4000 + 5 * 8, 0x7003, 8);
    ram.put(0x3000 + 8, 0x40_0083, 8);
    let base = 0xffff_ffff_8000_0000;
    assert_eq!(gpa_of(&ram, LONG, base + 0x5123), Some(0x7123));
    assert_eq!(gpa_of(&ram, LONG, base + 0x20_0042), Some(0x40_0042));
    // PT[6] is not present; PML4[0] neither.
    assert_eq!(gpa_of(&ram, LONG, base + 0x6000), None);
    assert_eq!(gpa_of(&ram, LONG, 0x1000), None);
}

#[test]
fn five_level_paging_walks_the_pml5_first() {
    let mut ram = Ram::new();
    // PML5[1] -> PML4 0x2000; PML4[0] -> PDPT 0x3000; PDPT[0] -> PD 0x4000, whose entry 0
    // is a 2 MiB page at 0x60_0000. PML5 index 1 is linear bit 48.
    ram.put(0x1000 + 8, 0x2003, 8);
    ram.put(0x2000, 0x3003, 8);
    ram.put(0x3000, 0x4003, 8);
    ram.put(0x4000, 0x60_0083, 8);
    let la57 = PagingRegs {
        cr4: CR4_PAE | CR4_LA57,
        ..LONG
    };
    let linear = (1 << 48) | 0x1234;
    assert_eq!(gpa_of(&ram, la57, linear), Some(0x60_1234));
    assert_eq!(
        linear_to_phys(&ram, &la57, 0x1234),
        Err(GuestWalkError::NotPresent {
            linear: 0x1234,
            level: PagingLevel::Pml5,
            entry_gpa: 0x1000,
            entry: 0,
        })
    );
}

#[test]
fn the_page_size_is_the_level_the_walk_stopped_at() {
    let mut ram = Ram::new();
    // PML4[0] -> PDPT at 0x2000, whose entry 1 is a 1 GiB page at 3 GiB and entry 0 a PD
    // at 0x3000 with a 2 MiB page and a page table at 0x4000 with a 4 KiB page.
    ram.put(0x1000, 0x2003, 8);
    ram.put(0x2000 + 8, 0xc000_0083, 8);
    ram.put(0x2000, 0x3003, 8);
    ram.put(0x3000 + 8, 0x60_0083, 8);
    ram.put(0x3000, 0x4003, 8);
    ram.put(0x4000, 0x9003, 8);
    let page = |linear| translate(&ram, &LONG, linear).ok();
    let expect = |gpa, page_size| Some(Translation { gpa, page_size });
    assert_eq!(page(0x4000_1234), expect(0xc000_1234, GIB_PAGE));
    assert_eq!(page(0x20_0042), expect(0x60_0042, 1 << 21));
    assert_eq!(page(0x42), expect(0x9042, 0x1000));
    let unpaged = PagingRegs { cr0: 1, ..LONG };
    assert_eq!(translate(&ram, &unpaged, 0x1234).ok(), expect(0x1234, 0));
}

#[test]
fn a_table_outside_guest_ram_ends_the_walk_and_is_named() {
    let mut ram = Ram::new();
    ram.put(0x1000, 0xdead_0000_0003, 8);
    let err = linear_to_phys(&ram, &LONG, 0x1000).unwrap_err();
    assert_eq!(
        err,
        GuestWalkError::NotRam {
            linear: 0x1000,
            gpa: 0xdead_0000_0000,
            what: "a page-table page",
        }
    );
    assert!(err.to_string().contains("0xdead00000000"), "{err}");
}

#[test]
fn a_missing_entry_names_its_level_and_address() {
    let mut ram = Ram::new();
    ram.put(0x1000, 0x2003, 8);
    ram.put(0x2000, 0x3003, 8);
    let err = linear_to_phys(&ram, &LONG, 0x1000).unwrap_err();
    assert_eq!(
        err,
        GuestWalkError::NotPresent {
            linear: 0x1000,
            level: PagingLevel::PageDirectory,
            entry_gpa: 0x3000,
            entry: 0,
        }
    );
    assert!(err
        .to_string()
        .contains("page-directory entry at guest-physical 0x3000"));
}

#[test]
fn pae_and_32_bit_paging() {
    let mut ram = Ram::new();
    // PAE: PDPTE[3] -> PD 0x2000; PD[0] -> 2 MiB page at 0x60_0000.
    ram.put(0x1000 + 3 * 8, 0x2001, 8);
    ram.put(0x2000, 0x60_0083, 8);
    let pae = PagingRegs {
        cr0: CR0_PG | 1,
        cr3: 0x1000,
        cr4: CR4_PAE,
        efer: 0,
    };
    assert_eq!(gpa_of(&ram, pae, 0xc000_1234), Some(0x60_1234));
    let err = linear_to_phys(&ram, &pae, 0x1234).unwrap_err();
    assert!(
        matches!(
            err,
            GuestWalkError::NotPresent {
                level: PagingLevel::Pdpt,
                entry_gpa: 0x1000,
                ..
            }
        ),
        "{err}"
    );
    // 32-bit: PDE[1] -> PT 0x5000, PT[2] -> 0x9000; PDE[2] a 4 MiB page at 0x80_0000;
    // PDE[3] a 4 MiB page with PSE-36 bits (entry bit 13 = address bit 32).
    ram.put(0x4000 + 4, 0x5003, 4);
    ram.put(0x5000 + 2 * 4, 0x9003, 4);
    ram.put(0x4000 + 2 * 4, 0x80_0083, 4);
    ram.put(0x4000 + 3 * 4, 0xc0_2083, 4);
    let legacy = PagingRegs {
        cr0: CR0_PG | 1,
        cr3: 0x4000,
        cr4: CR4_PSE,
        efer: 0,
    };
    assert_eq!(gpa_of(&ram, legacy, 0x40_2abc), Some(0x9abc));
    assert_eq!(gpa_of(&ram, legacy, 0x80_0010), Some(0x80_0010));
    assert_eq!(gpa_of(&ram, legacy, 0xc0_0010), Some(0x1_00c0_0010));
    // Without CR4.PSE the PS bit is ignored: PDE[2] names a page table at 0x80_0000.
    let no_pse = PagingRegs { cr4: 0, ..legacy };
    assert_eq!(
        linear_to_phys(&ram, &no_pse, 0x80_0010),
        Err(GuestWalkError::NotRam {
            linear: 0x80_0010,
            gpa: 0x80_0000,
            what: "a page-table page",
        })
    );
}
