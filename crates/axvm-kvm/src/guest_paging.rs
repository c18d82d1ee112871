//! Guest virtual (linear) addresses to guest-physical ones, by walking the guest's own page
//! tables from CR3 in guest RAM: GDB names memory by the addresses the guest's code uses,
//! and a stop report tells which page maps the code a vCPU faulted in.
//!
//! Every paging form a PC guest can be in is walked: none (CR0.PG clear: linear is
//! physical), 32-bit (4 KiB pages, 4 MiB with CR4.PSE), PAE, and long mode with 4 or 5
//! levels (CR4.LA57), with large pages at every level that has them. Only present entries
//! are followed; a table entry that points outside guest RAM ends the walk (`read` says so),
//! so a guest's bad tables never make the host read anything but guest RAM.

/// The control registers that decide how the guest translates addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PagingRegs {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    pub efer: u64,
}

const CR0_PG: u64 = 1 << 31;
const CR4_PSE: u64 = 1 << 4;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;
const PRESENT: u64 = 1;
const PAGE_SIZE_BIT: u64 = 1 << 7;
/// Bits 12-51 of a PAE or long-mode entry: the next table or the page.
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// One level of a walk: where its index sits in the linear address, and whether an entry
/// may map a large page there.
struct Level {
    shift: u32,
    index_bits: u32,
    large_pages: bool,
}

const fn level(shift: u32, index_bits: u32, large_pages: bool) -> Level {
    Level {
        shift,
        index_bits,
        large_pages,
    }
}

/// Translates `linear` as the guest would with `regs`: `None` when it is not mapped.
/// `read(gpa, size)` reads a little-endian table entry of `size` bytes (4 or 8) from guest
/// RAM, `None` outside it.
pub(crate) fn translate(
    regs: PagingRegs,
    linear: u64,
    read: &dyn Fn(u64, usize) -> Option<u64>,
) -> Option<u64> {
    translate_page(regs, linear, read).map(|page| page.gpa)
}

/// Where a linear address went: its guest-physical address and the size of the page that
/// maps it (0 without paging).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Translation {
    pub gpa: u64,
    pub page_size: u64,
}

/// 1 GiB: the page a long-mode PDPTE with its PS bit maps, which only CPUs with `pdpe1gb`
/// walk (elsewhere the bit is reserved and the walk faults).
pub(crate) const GIB_PAGE: u64 = 1 << 30;

/// [`translate`], with the size of the page that maps `linear`.
pub(crate) fn translate_page(
    regs: PagingRegs,
    linear: u64,
    read: &dyn Fn(u64, usize) -> Option<u64>,
) -> Option<Translation> {
    if regs.cr0 & CR0_PG == 0 {
        // Without paging, outside long mode, addresses are 32 bits wide.
        let gpa = match regs.efer & EFER_LMA {
            0 => linear & 0xffff_ffff,
            _ => linear,
        };
        return Some(Translation { gpa, page_size: 0 });
    }
    if regs.efer & EFER_LMA != 0 {
        let levels: &[Level] = if regs.cr4 & CR4_LA57 != 0 {
            &[
                level(48, 9, false),
                level(39, 9, false),
                level(30, 9, true),
                level(21, 9, true),
                level(12, 9, false),
            ]
        } else {
            &[
                level(39, 9, false),
                level(30, 9, true),
                level(21, 9, true),
                level(12, 9, false),
            ]
        };
        return walk(regs.cr3 & ADDRESS_MASK, levels, 8, linear, read);
    }
    if regs.cr4 & CR4_PAE != 0 {
        let linear = linear & 0xffff_ffff;
        // The four PDPTEs sit at CR3 (32-byte aligned) and have no large-page bit.
        let pdpte = read((regs.cr3 & 0xffff_ffe0) + ((linear >> 30) & 3) * 8, 8)?;
        if pdpte & PRESENT == 0 {
            return None;
        }
        let levels = [level(21, 9, true), level(12, 9, false)];
        return walk(pdpte & ADDRESS_MASK, &levels, 8, linear, read);
    }
    let linear = linear & 0xffff_ffff;
    let levels = [level(22, 10, regs.cr4 & CR4_PSE != 0), level(12, 10, false)];
    walk(regs.cr3 & 0xffff_f000, &levels, 4, linear, read)
}

/// Walks `levels` from the table at `table`, entries of `entry_size` bytes.
fn walk(
    mut table: u64,
    levels: &[Level],
    entry_size: usize,
    linear: u64,
    read: &dyn Fn(u64, usize) -> Option<u64>,
) -> Option<Translation> {
    let address_mask = match entry_size {
        4 => 0xffff_f000,
        _ => ADDRESS_MASK,
    };
    for (depth, level) in levels.iter().enumerate() {
        let index = (linear >> level.shift) & ((1 << level.index_bits) - 1);
        let entry = read(table + index * entry_size as u64, entry_size)?;
        if entry & PRESENT == 0 {
            return None;
        }
        let last = depth + 1 == levels.len();
        if last || (level.large_pages && entry & PAGE_SIZE_BIT != 0) {
            let offset_mask = (1u64 << level.shift) - 1;
            return Some(Translation {
                gpa: (entry & address_mask & !offset_mask) | (linear & offset_mask),
                page_size: 1 << level.shift,
            });
        }
        table = entry & address_mask;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small guest RAM of `size` bytes with entries written into it.
    struct Ram(Vec<u8>);

    impl Ram {
        fn new() -> Self {
            Self(vec![0; 0x20_0000])
        }

        fn put(&mut self, gpa: u64, entry: u64, size: usize) {
            let at = gpa as usize;
            self.0[at..at + size].copy_from_slice(&entry.to_le_bytes()[..size]);
        }

        fn read(&self, gpa: u64, size: usize) -> Option<u64> {
            let at = usize::try_from(gpa).ok()?;
            let bytes = self.0.get(at..at.checked_add(size)?)?;
            let mut value = [0u8; 8];
            value[..size].copy_from_slice(bytes);
            Some(u64::from_le_bytes(value))
        }
    }

    fn translate_in(ram: &Ram, regs: PagingRegs, linear: u64) -> Option<u64> {
        translate(regs, linear, &|gpa, size| ram.read(gpa, size))
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
        assert_eq!(translate_in(&ram, real, 0x1_0000_8000), Some(0x8000));
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
        assert_eq!(translate_in(&ram, LONG, base + 0x5123), Some(0x7123));
        assert_eq!(translate_in(&ram, LONG, base + 0x20_0042), Some(0x40_0042));
        // PT[6] is not present; PML4[0] neither.
        assert_eq!(translate_in(&ram, LONG, base + 0x6000), None);
        assert_eq!(translate_in(&ram, LONG, 0x1000), None);
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
        let read = |gpa, size| ram.read(gpa, size);
        let page = |linear| translate_page(LONG, linear, &read);
        let expect = |gpa, page_size| Some(Translation { gpa, page_size });
        assert_eq!(page(0x4000_1234), expect(0xc000_1234, GIB_PAGE));
        assert_eq!(page(0x20_0042), expect(0x60_0042, 1 << 21));
        assert_eq!(page(0x42), expect(0x9042, 0x1000));
        let unpaged = PagingRegs { cr0: 1, ..LONG };
        assert_eq!(translate_page(unpaged, 0x1234, &read), expect(0x1234, 0));
    }

    #[test]
    fn a_table_outside_guest_ram_ends_the_walk() {
        let mut ram = Ram::new();
        ram.put(0x1000, 0xdead_0000_0003, 8);
        assert_eq!(translate_in(&ram, LONG, 0x1000), None);
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
        assert_eq!(translate_in(&ram, pae, 0xc000_1234), Some(0x60_1234));
        // 32-bit: PDE[1] -> PT 0x5000, PT[2] -> 0x9000; PDE[2] a 4 MiB page at 0x80_0000.
        ram.put(0x4000 + 4, 0x5003, 4);
        ram.put(0x5000 + 2 * 4, 0x9003, 4);
        ram.put(0x4000 + 2 * 4, 0x80_0083, 4);
        let legacy = PagingRegs {
            cr0: CR0_PG | 1,
            cr3: 0x4000,
            cr4: CR4_PSE,
            efer: 0,
        };
        assert_eq!(translate_in(&ram, legacy, 0x40_2abc), Some(0x9abc));
        assert_eq!(translate_in(&ram, legacy, 0x80_0010), Some(0x80_0010));
    }
}
