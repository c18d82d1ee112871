//! Page walks over synthetic guest memory, one per paging mode.

use super::*;
use alloc::{collections::BTreeMap, string::ToString, vec::Vec};
use axvm_pc::guest_paging::{CR0_PG, CR4_PAE, CR4_PSE};

/// Guest RAM as sparse pages.
#[derive(Default)]
struct GuestRam {
    pages: BTreeMap<u64, Vec<u8>>,
}

impl GuestRam {
    fn write(&mut self, gpa: u64, data: &[u8]) {
        for (i, byte) in data.iter().enumerate() {
            let at = gpa + i as u64;
            let page = self
                .pages
                .entry(at & !0xfff)
                .or_insert_with(|| alloc::vec![0; 4096]);
            page[(at & 0xfff) as usize] = *byte;
        }
    }
    fn write_u64(&mut self, gpa: u64, value: u64) {
        self.write(gpa, &value.to_le_bytes());
    }
    fn write_u32(&mut self, gpa: u64, value: u32) {
        self.write(gpa, &value.to_le_bytes());
    }
}

impl GuestPhysReader for GuestRam {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        let page = self.pages.get(&(gpa & !0xfff))?;
        let offset = (gpa & 0xfff) as usize;
        buf.copy_from_slice(page.get(offset..offset + buf.len())?);
        Some(())
    }
}

const P: u64 = 1;
const RW: u64 = 2;
const PS: u64 = 1 << 7;

fn long_mode(cr3: u64) -> PagingRegs {
    PagingRegs {
        cr0: CR0_PG | 1,
        cr3,
        cr4: CR4_PAE,
        efer: EFER_LMA | (1 << 8),
    }
}

/// PML4 at 0x1000 → PDPT 0x2000 → PD 0x3000 → PT 0x4000, mapping linear
/// 0xffff_8000_0020_1000 (PML4 index 256, PDPT 0, PD 1, PT 1) to 0x7000.
fn four_level_ram() -> (GuestRam, u64) {
    let linear = 0xffff_8000_0020_1000;
    let mut ram = GuestRam::default();
    ram.write_u64(0x1000 + 8 * 256, 0x2000 | P | RW);
    ram.write_u64(0x2000, 0x3000 | P | RW);
    ram.write_u64(0x3000 + 8, 0x4000 | P | RW);
    ram.write_u64(0x4000 + 8, 0x7000 | P | RW | (1 << 63));
    (ram, linear)
}

#[test]
fn paging_off_is_identity_within_4_gib() {
    let ram = GuestRam::default();
    let real = PagingRegs {
        cr0: 0x6000_0010,
        cr3: 0xdead_b000,
        cr4: 0,
        efer: 0,
    };
    assert_eq!(linear_to_phys(&ram, &real, 0xf_fff0), Ok(0xf_fff0));
    assert_eq!(linear_to_phys(&ram, &real, 0x1_0000_1234), Ok(0x1234));
}

#[test]
fn four_level_long_mode_walks_every_level_and_ignores_nx() {
    let (ram, linear) = four_level_ram();
    let regs = long_mode(0x1000);
    assert_eq!(linear_to_phys(&ram, &regs, linear + 0xabc), Ok(0x7abc));
}

#[test]
fn long_mode_large_pages_end_the_walk_early() {
    let mut ram = GuestRam::default();
    ram.write_u64(0x1000, 0x2000 | P);
    ram.write_u64(0x2000, 0x4000_0000 | P | PS); // 1 GiB page at linear 0
    ram.write_u64(0x2000 + 8, 0x3000 | P); // PD for linear 1 GiB
    ram.write_u64(0x3000 + 8 * 2, 0x80_0000 | P | PS); // 2 MiB page at linear 1 GiB + 4 MiB
    let regs = long_mode(0x1000);
    assert_eq!(linear_to_phys(&ram, &regs, 0x1234_5678), Ok(0x5234_5678));
    assert_eq!(linear_to_phys(&ram, &regs, 0x4040_1234), Ok(0x80_1234));
}

#[test]
fn a_missing_entry_names_its_level_and_address() {
    let (mut ram, linear) = four_level_ram();
    ram.write_u64(0x3000 + 8, 0x4000); // PD entry without P
    let err = linear_to_phys(&ram, &long_mode(0x1000), linear).unwrap_err();
    assert_eq!(
        err,
        GuestWalkError::NotPresent {
            linear,
            level: PagingLevel::PageDirectory,
            entry_gpa: 0x3008,
            entry: 0x4000
        }
    );
    assert!(err
        .to_string()
        .contains("page-directory entry at guest-physical 0x3008"));
    let err = linear_to_phys(&ram, &long_mode(0x1000), 0x1000).unwrap_err();
    assert!(
        matches!(
            err,
            GuestWalkError::NotPresent {
                level: PagingLevel::Pml4,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_table_outside_ram_is_named() {
    let ram = GuestRam::default();
    let err = linear_to_phys(&ram, &long_mode(0x9000), 0x1000).unwrap_err();
    assert_eq!(
        err,
        GuestWalkError::NotRam {
            linear: 0x1000,
            gpa: 0x9000,
            what: "a page-table page"
        }
    );
}

#[test]
fn five_level_paging_is_refused() {
    let (ram, linear) = four_level_ram();
    let mut regs = long_mode(0x1000);
    regs.cr4 |= CR4_LA57;
    assert_eq!(
        linear_to_phys(&ram, &regs, linear),
        Err(GuestWalkError::FiveLevelPaging { linear })
    );
}

#[test]
fn pae_uses_four_pdptes_and_2_mib_pages() {
    let mut ram = GuestRam::default();
    // CR3 is 32-byte aligned in PAE mode.
    ram.write_u64(0x1020 + 8 * 3, 0x2000 | P); // PDPTE 3: linear 0xc000_0000..
    ram.write_u64(0x2000, 0x3000 | P); // PDE 0 → page table
    ram.write_u64(0x3000 + 8 * 5, 0x9000 | P); // PTE 5
    ram.write_u64(0x2000 + 8, 0x60_0000 | P | PS); // PDE 1: 2 MiB page
    let regs = PagingRegs {
        cr0: CR0_PG | 1,
        cr3: 0x1020,
        cr4: CR4_PAE,
        efer: 0,
    };
    assert_eq!(linear_to_phys(&ram, &regs, 0xc000_5123), Ok(0x9123));
    assert_eq!(linear_to_phys(&ram, &regs, 0xc02a_bcde), Ok(0x6a_bcde));
    let err = linear_to_phys(&ram, &regs, 0x4000_0000).unwrap_err();
    assert!(
        matches!(
            err,
            GuestWalkError::NotPresent {
                level: PagingLevel::Pdpt,
                entry_gpa: 0x1028,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn thirty_two_bit_paging_with_and_without_pse() {
    let mut ram = GuestRam::default();
    ram.write_u32(0x1000 + 4 * 0x300, 0x2000 | P as u32); // linear 0xc000_0000 → PT 0x2000
    ram.write_u32(0x2000 + 4 * 7, 0x5000 | P as u32);
    // linear 0x0040_0000: a 4 MiB page at 0x0080_0000, PSE-36 bits giving 4 GiB more.
    ram.write_u32(0x1000 + 4, 0x0080_0000 | (1 << 13) | (P | PS) as u32);
    let mut regs = PagingRegs {
        cr0: CR0_PG | 1,
        cr3: 0x1000,
        cr4: CR4_PSE,
        efer: 0,
    };
    assert_eq!(linear_to_phys(&ram, &regs, 0xc000_7abc), Ok(0x5abc));
    assert_eq!(linear_to_phys(&ram, &regs, 0x0041_2345), Ok(0x1_0081_2345));
    regs.cr4 = 0; // without PSE, PS is ignored and the entry names a page table
    let err = linear_to_phys(&ram, &regs, 0x0041_2345).unwrap_err();
    assert_eq!(
        err,
        GuestWalkError::NotRam {
            linear: 0x0041_2345,
            gpa: 0x80_2000 + 4 * 0x12,
            what: "a page-table page"
        }
    );
}

#[test]
fn instruction_fetch_crosses_into_a_mapped_page_and_stops_at_an_unmapped_one() {
    let (mut ram, linear) = four_level_ram();
    // Map the next linear page (PT index 2) to 0x8000.
    ram.write_u64(0x4000 + 16, 0x8000 | P);
    let at = linear + 0xffa; // 6 bytes left in the page
    ram.write(0x7ffa, &[0x48, 0x8b, 0x04, 0x25, 0x00, 0x10]);
    ram.write(0x8000, &[0xe0, 0xfe, 0x90]);
    let regs = long_mode(0x1000);
    let bytes = fetch_instruction(&ram, &regs, at).unwrap();
    assert_eq!(bytes.as_slice().len(), 15);
    assert_eq!(
        &bytes.as_slice()[..9],
        &[0x48, 0x8b, 0x04, 0x25, 0x00, 0x10, 0xe0, 0xfe, 0x90]
    );
    ram.write_u64(0x4000 + 16, 0); // unmap the second page: only the first 6 bytes
    let bytes = fetch_instruction(&ram, &regs, at).unwrap();
    assert_eq!(bytes.as_slice(), &[0x48, 0x8b, 0x04, 0x25, 0x00, 0x10]);
}
