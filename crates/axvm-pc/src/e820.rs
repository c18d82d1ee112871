//! The guest's physical memory map in the PC (e820) form that every boot protocol passes
//! on: Multiboot's mmap, PVH's memmap and Linux's e820 table, with the firmware's reserved
//! ranges; and the RAM alone ([`ram_map`]), which fw_cfg's `etc/e820` lists as QEMU's does.

use alloc::vec::Vec;

use axvm::{AxVMConfig, MappingFlags};

use crate::layout::{HIGH_MEMORY_START, LEGACY_HOLE_START};

/// What a range of guest-physical memory is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum E820Kind {
    /// Usable RAM.
    Ram = 1,
    /// Not for the OS: firmware areas, ROM, tables.
    Reserved = 2,
}

/// One range of the memory map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// Start.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// What it is.
    pub kind: E820Kind,
}

impl E820Entry {
    fn end(&self) -> u64 {
        self.addr + self.size
    }
}

/// The memory map of `config`: writable regions are RAM, read-only ones reserved, and the
/// legacy area from the EBDA (`LEGACY_HOLE_START`) to 1 MiB is reserved, as a PC firmware reports it.
/// Sorted, with adjacent ranges of one kind merged.
pub fn e820_map(config: &AxVMConfig) -> Vec<E820Entry> {
    let mut regions: Vec<_> = config.memory_regions.iter().collect();
    regions.sort_by_key(|region| region.gpa);
    let mut map: Vec<E820Entry> = Vec::new();
    for region in regions {
        let kind = if region.flags.contains(MappingFlags::WRITE) {
            E820Kind::Ram
        } else {
            E820Kind::Reserved
        };
        let (start, end) = (region.gpa.as_u64(), region.end().as_u64());
        let pieces = [
            (start, end.min(LEGACY_HOLE_START), kind),
            (
                start.max(LEGACY_HOLE_START),
                end.min(HIGH_MEMORY_START),
                E820Kind::Reserved,
            ),
            (start.max(HIGH_MEMORY_START), end, kind),
        ];
        for (addr, piece_end, kind) in pieces {
            if piece_end > addr {
                push_merged(
                    &mut map,
                    E820Entry {
                        addr,
                        size: piece_end - addr,
                        kind,
                    },
                );
            }
        }
    }
    map
}

/// The RAM of `config` alone: its writable regions, sorted, adjacent ones merged, with
/// nothing reserved. This is what QEMU's fw_cfg `etc/e820` lists (RAM from 0, the legacy
/// area included); firmware reading it adds the reserved ranges of its own making.
pub fn ram_map(config: &AxVMConfig) -> Vec<E820Entry> {
    let mut regions: Vec<_> = config
        .memory_regions
        .iter()
        .filter(|region| region.flags.contains(MappingFlags::WRITE))
        .collect();
    regions.sort_by_key(|region| region.gpa);
    let mut map = Vec::new();
    for region in regions {
        push_merged(
            &mut map,
            E820Entry {
                addr: region.gpa.as_u64(),
                size: region.size,
                kind: E820Kind::Ram,
            },
        );
    }
    map
}

fn push_merged(map: &mut Vec<E820Entry>, entry: E820Entry) {
    match map.last_mut() {
        Some(last) if last.kind == entry.kind && last.end() == entry.addr => {
            last.size += entry.size
        }
        _ => map.push(entry),
    }
}

/// KiB of RAM from 0 up to the first non-RAM address below 640 KiB, and from 1 MiB up to
/// the first non-RAM address above: the `mem_lower`/`mem_upper` pair of Multiboot and the
/// CMOS memory-size registers.
pub fn lower_and_upper_memory_kib(map: &[E820Entry]) -> (u64, u64) {
    let contiguous_from = |start: u64| {
        map.iter()
            .find(|e| e.kind == E820Kind::Ram && e.addr <= start && start < e.end())
            .map_or(0, |e| (e.end() - start) / 1024)
    };
    (contiguous_from(0), contiguous_from(HIGH_MEMORY_START))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axvm::{GuestPhysAddr, VmMemConfig, VmMemMappingType};

    fn config(regions: &[(u64, u64, u64)]) -> AxVMConfig {
        let mut config = AxVMConfig::new("e820", 1);
        for &(gpa, size, flags) in regions {
            config.memory_regions.push(VmMemConfig {
                gpa: GuestPhysAddr::new(gpa),
                size,
                flags: MappingFlags::from_bits(flags).expect("valid flags"),
                map_type: VmMemMappingType::MapAlloc,
            });
        }
        config
    }

    #[test]
    fn low_ram_is_split_around_the_legacy_hole() {
        let map = e820_map(&config(&[(0, 0x800_0000, 0x7)]));
        let expected = [
            E820Entry {
                addr: 0,
                size: 0x9_fc00,
                kind: E820Kind::Ram,
            },
            E820Entry {
                addr: 0x9_fc00,
                size: 0x6_0400,
                kind: E820Kind::Reserved,
            },
            E820Entry {
                addr: 0x10_0000,
                size: 0x7f0_0000,
                kind: E820Kind::Ram,
            },
        ];
        assert_eq!(map, expected);
        assert_eq!(lower_and_upper_memory_kib(&map), (639, 0x7f0_0000 / 1024));
    }

    #[test]
    fn read_only_regions_are_reserved_and_neighbours_merge() {
        let map = e820_map(&config(&[
            (0x10_0000, 0x10_0000, 0x7),
            (0x20_0000, 0x1000, 0x5),
            (0x20_1000, 0x1000, 0x7),
        ]));
        assert_eq!(map.len(), 3);
        assert_eq!(
            map[1],
            E820Entry {
                addr: 0x20_0000,
                size: 0x1000,
                kind: E820Kind::Reserved
            }
        );
        assert_eq!(lower_and_upper_memory_kib(&map), (0, 1024));
    }

    #[test]
    fn the_ram_map_lists_writable_regions_only_and_merges_them() {
        let map = ram_map(&config(&[
            (0x20_0000, 0x1000, 0x5),
            (0x10_0000, 0x10_0000, 0x7),
            (0, 0x10_0000, 0x3),
            (0x1_0000_0000, 0x1000, 0x7),
        ]));
        let ram = |addr, size| E820Entry {
            addr,
            size,
            kind: E820Kind::Ram,
        };
        assert_eq!(map, [ram(0, 0x20_0000), ram(0x1_0000_0000, 0x1000)]);
    }
}
