//! Nested page tables built on an in-memory allocator and checked by the software walk.

use super::*;
use alloc::{boxed::Box, vec::Vec};

/// Frames in a vector, at made-up host-physical addresses from 0x1000_0000 up.
struct TestMemory {
    frames: Vec<Box<[u64; 512]>>,
    limit: usize,
}

const FRAME_BASE: u64 = 0x1000_0000;

impl TestMemory {
    fn new() -> Self {
        Self {
            frames: Vec::new(),
            limit: usize::MAX,
        }
    }
}

impl PageTableMemory for TestMemory {
    fn alloc_zeroed_page(&mut self) -> Option<u64> {
        if self.frames.len() >= self.limit {
            return None;
        }
        self.frames.push(Box::new([0; 512]));
        Some(FRAME_BASE + (self.frames.len() as u64 - 1) * 0x1000)
    }

    fn table(&self, host_phys: u64) -> Option<&[u64; 512]> {
        let index = host_phys.checked_sub(FRAME_BASE)? / 0x1000;
        self.frames.get(index as usize).map(|frame| &**frame)
    }

    fn table_mut(&mut self, host_phys: u64) -> Option<&mut [u64; 512]> {
        let index = host_phys.checked_sub(FRAME_BASE)? / 0x1000;
        self.frames
            .get_mut(index as usize)
            .map(|frame| &mut **frame)
    }
}

const RWX: MappingFlags = MappingFlags::from_bits(0x7).unwrap();
const RO: MappingFlags = MappingFlags::READ;

fn region(gpa: u64, hpa: u64, size: u64, flags: MappingFlags) -> NptRegion {
    NptRegion {
        gpa,
        hpa,
        size,
        flags,
    }
}

#[test]
fn ram_translates_with_2m_pages_where_aligned_and_4k_elsewhere() {
    let mut memory = TestMemory::new();
    // 4 MiB + 8 KiB of RAM at GPA 0, host memory 2 MiB-aligned: two 2 MiB pages, two 4 KiB.
    let ram = region(0, 0x8000_0000, 0x40_2000, RWX);
    let npt = NestedPageTables::build(&mut memory, &[ram]).unwrap();
    let at = |gpa| npt.translate(&memory, gpa);
    let t = at(0x1234).unwrap();
    assert_eq!(
        (t.hpa, t.page_size, t.writable, t.executable),
        (0x8000_1234, PAGE_2M, true, true)
    );
    assert_eq!(at(0x3f_ffff).unwrap().hpa, 0x803f_ffff);
    let t = at(0x40_1abc).unwrap();
    assert_eq!((t.hpa, t.page_size), (0x8040_1abc, PAGE_4K));
    assert_eq!(at(0x40_2000), None, "one past the end is unmapped");
    assert_eq!(memory.frames.len(), 4, "PML4, PDPT, PD and one page table");
}

#[test]
fn misaligned_host_memory_uses_4k_pages() {
    let mut memory = TestMemory::new();
    let npt = NestedPageTables::build(&mut memory, &[region(0x20_0000, 0x9000_1000, PAGE_2M, RWX)])
        .unwrap();
    let t = npt.translate(&memory, 0x3f_f008).unwrap();
    assert_eq!((t.hpa, t.page_size), (0x9020_0008, PAGE_4K));
}

#[test]
fn read_only_and_non_executable_regions_lose_w_and_x() {
    let mut memory = TestMemory::new();
    let rom = region(0xf_0000, 0x7000_0000, 0x1_0000, RO | MappingFlags::EXECUTE);
    let data = region(
        0x1000_0000,
        0x7100_0000,
        PAGE_2M,
        MappingFlags::READ | MappingFlags::WRITE,
    );
    let npt = NestedPageTables::build(&mut memory, &[rom, data]).unwrap();
    let t = npt.translate(&memory, 0xf_fff0).unwrap();
    assert_eq!(
        (t.hpa, t.writable, t.executable),
        (0x7000_fff0, false, true)
    );
    let t = npt.translate(&memory, 0x1000_0010).unwrap();
    assert_eq!(
        (t.hpa, t.writable, t.executable, t.page_size),
        (0x7100_0010, true, false, PAGE_2M)
    );
    let leaf = memory
        .frames
        .iter()
        .flat_map(|f| f.iter())
        .find(|&&e| e & ADDR_MASK == 0x7000_f000)
        .unwrap();
    assert_eq!(
        leaf & (PRESENT | USER | WRITABLE),
        PRESENT | USER,
        "U/S set, W clear"
    );
}

#[test]
fn mmio_holes_between_regions_stay_unmapped() {
    let mut memory = TestMemory::new();
    let low = region(0, 0x8000_0000, 0xa_0000, RWX);
    let high = region(0x10_0000, 0x8010_0000, 0x10_0000, RWX);
    let npt = NestedPageTables::build(&mut memory, &[low, high]).unwrap();
    for mmio in [0xa_0000, 0xb_8000, 0xf_ffff, 0xfee0_0000, 0xfec0_0000] {
        assert_eq!(npt.translate(&memory, mmio), None, "{mmio:#x} must fault");
    }
    assert_eq!(npt.translate(&memory, 0x9_ffff).unwrap().hpa, 0x8009_ffff);
    assert_eq!(npt.translate(&memory, 0x10_0000).unwrap().hpa, 0x8010_0000);
}

#[test]
fn a_2m_slot_already_split_by_4k_pages_is_filled_with_4k_pages() {
    let mut memory = TestMemory::new();
    let mut npt = NestedPageTables::new(&mut memory).unwrap();
    npt.map(&mut memory, &region(0x1000, 0x5000_1000, 0x1000, RWX))
        .unwrap();
    npt.map(
        &mut memory,
        &region(0x2000, 0x6000_0000, 0x40_0000 - 0x2000, RWX),
    )
    .unwrap();
    assert_eq!(npt.translate(&memory, 0x1000).unwrap().hpa, 0x5000_1000);
    let t = npt.translate(&memory, 0x2000).unwrap();
    assert_eq!((t.hpa, t.page_size), (0x6000_0000, PAGE_4K));
    assert_eq!(npt.translate(&memory, 0x0), None);
}

#[test]
fn bad_regions_are_refused_naming_the_address() {
    let mut memory = TestMemory::new();
    let mut npt = NestedPageTables::new(&mut memory).unwrap();
    let cases = [
        (
            region(0x1800, 0, 0x1000, RWX),
            NptError::Misaligned {
                gpa: 0x1800,
                hpa: 0,
                size: 0x1000,
            },
        ),
        (
            region(0, 0, 0, RWX),
            NptError::Misaligned {
                gpa: 0,
                hpa: 0,
                size: 0,
            },
        ),
        (
            region(GPA_LIMIT - 0x1000, 0, 0x2000, RWX),
            NptError::OutOfRange {
                gpa: GPA_LIMIT - 0x1000,
                hpa: 0,
                size: 0x2000,
            },
        ),
        (
            region(0, !0xfff, 0x2000, RWX),
            NptError::OutOfRange {
                gpa: 0,
                hpa: !0xfff,
                size: 0x2000,
            },
        ),
        (
            region(0x4000, 0, 0x1000, MappingFlags::WRITE),
            NptError::NotReadable {
                gpa: 0x4000,
                flags: MappingFlags::WRITE,
            },
        ),
    ];
    for (bad, expected) in cases {
        assert_eq!(npt.map(&mut memory, &bad), Err(expected));
    }
    npt.map(&mut memory, &region(0, 0x8000_0000, PAGE_2M, RWX))
        .unwrap();
    let overlap = npt.map(&mut memory, &region(0x10_0000, 0x9000_0000, 0x1000, RWX));
    assert_eq!(overlap, Err(NptError::Overlap { gpa: 0x10_0000 }));
    let err = NptError::NotReadable {
        gpa: 0x4000,
        flags: MappingFlags::WRITE,
    };
    assert!(alloc::format!("{err}").contains("0x4000"));
}

#[test]
fn running_out_of_frames_is_an_error_not_a_panic() {
    let mut memory = TestMemory::new();
    memory.limit = 2;
    let err =
        NestedPageTables::build(&mut memory, &[region(0x4000_0000, 0, 0x1000, RWX)]).unwrap_err();
    assert_eq!(err, NptError::OutOfMemory { gpa: 0x4000_0000 });
}
