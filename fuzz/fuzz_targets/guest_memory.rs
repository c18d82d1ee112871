//! The core's guest-memory accessors (`GuestMemory` and `GuestSlice`) with arbitrary
//! addresses and lengths over three regions (one may end at the top of the address space),
//! against a model: an access succeeds exactly when its whole range lies inside one region,
//! moves exactly the bytes the model says, and never touches the guard bytes around each
//! region's host memory.
#![no_main]

use axvm::memory::{GuestMemory, GuestRegion, RegionOutcome};
use axvm::{GuestPhysAddr, HostVirtAddr, MappingFlags, VmMemConfig, VmMemMappingType};
use libfuzzer_sys::fuzz_target;

const PAGE: u64 = 0x1000;
/// Bytes of guard pattern before and after each region's host memory.
const GUARD: usize = 64;
const GUARD_BYTE: u8 = 0xa5;
/// The highest region a valid config can have ends here (a region ending at 2^64 wraps).
const TOP: u64 = 0xffff_ffff_ffff_f000;

/// The input, read front to back; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes(&mut self, len: usize) -> u64 {
        let (head, rest) = self.0.split_at(len.min(self.0.len()));
        self.0 = rest;
        let mut buf = [0u8; 8];
        buf[..head.len()].copy_from_slice(head);
        u64::from_le_bytes(buf)
    }
}

/// One region: where it is, its host memory (with guards) and what it should hold.
struct Region {
    gpa: u64,
    host: Vec<u8>,
    model: Vec<u8>,
}

impl Region {
    fn end(&self) -> u64 {
        self.gpa + self.model.len() as u64
    }

    fn guest_region(&mut self) -> GuestRegion {
        GuestRegion {
            config: VmMemConfig {
                gpa: GuestPhysAddr::new(self.gpa),
                size: self.model.len() as u64,
                flags: MappingFlags::READ | MappingFlags::WRITE,
                map_type: VmMemMappingType::MapAlloc,
            },
            hva: HostVirtAddr::new(self.host[GUARD..].as_mut_ptr() as u64),
            outcome: RegionOutcome::Allocated,
        }
    }
}

/// Three regions from the input: sizes of one to four pages, gaps of zero to three pages
/// (adjacent regions are separate allocations), the last one at [`TOP`] or not.
fn regions(input: &mut Input) -> Vec<Region> {
    let mut next = input.bytes(1) * PAGE;
    let mut regions = Vec::new();
    for index in 0..3 {
        let shape = input.bytes(1);
        let size = (1 + (shape & 3)) * PAGE;
        let mut gpa = next + ((shape >> 2) & 3) * PAGE;
        if index == 2 && shape & 0x10 != 0 {
            gpa = TOP - size;
        }
        let fill = input.bytes(1) as u8;
        let model = vec![fill; size as usize];
        let mut host = vec![GUARD_BYTE; size as usize + 2 * GUARD];
        host[GUARD..GUARD + size as usize].copy_from_slice(&model);
        regions.push(Region { gpa, host, model });
        next = gpa + size;
    }
    regions
}

/// Where the model puts `len` bytes at `gpa`: the region and offset, when they fit in one.
fn locate(regions: &[Region], gpa: u64, len: u64) -> Option<(usize, usize)> {
    let index = regions.iter().position(|r| r.gpa <= gpa && gpa < r.end())?;
    let region = &regions[index];
    (len <= region.end() - gpa).then_some((index, (gpa - region.gpa) as usize))
}

/// An address near a region's edges, or anywhere.
fn address(input: &mut Input, regions: &[Region]) -> u64 {
    let choice = input.bytes(1);
    let delta = input.bytes(2) as i16 as i64;
    match choice % 4 {
        0 => input.bytes(8),
        1 => regions[(choice / 4) as usize % 3]
            .gpa
            .wrapping_add_signed(delta),
        _ => regions[(choice / 4) as usize % 3]
            .end()
            .wrapping_add_signed(delta),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut regions = regions(&mut input);
    let guest_regions = regions.iter_mut().map(Region::guest_region).collect();
    // SAFETY: each region's host memory is a live Vec of its size, not moved or resized
    // while `memory` lives (only its bytes change, through `memory`).
    let memory = unsafe { GuestMemory::from_host_regions(guest_regions) };
    while !input.0.is_empty() {
        let op = input.bytes(1);
        let gpa = address(&mut input, &regions);
        let len = match op >> 4 {
            0 => 0,
            1..=3 => 1 << input.bytes(1) % 4,
            4..=12 => input.bytes(2) % 0x5000,
            _ => input.bytes(8),
        };
        let fits = locate(&regions, gpa, len);
        let at = GuestPhysAddr::new(gpa);
        match op % 4 {
            0 if len <= 0x5000 => {
                let mut buf = vec![0x5a; len as usize];
                let result = memory.read(at, &mut buf);
                assert_eq!(result.is_ok(), fits.is_some(), "read {gpa:#x}+{len:#x}");
                if let Some((index, offset)) = fits {
                    assert_eq!(buf, regions[index].model[offset..offset + buf.len()]);
                }
            }
            1 if len <= 0x5000 => {
                let fill = input.bytes(1) as u8;
                let buf = vec![fill; len as usize];
                let result = memory.write(at, &buf);
                assert_eq!(result.is_ok(), fits.is_some(), "write {gpa:#x}+{len:#x}");
                if let Some((index, offset)) = fits {
                    regions[index].model[offset..offset + buf.len()].fill(fill);
                }
            }
            2 => {
                let value = input.bytes(8);
                let result = memory.write_to_guest_of(at, &value);
                assert_eq!(result.is_ok(), locate(&regions, gpa, 8).is_some());
                if let Some((index, offset)) = locate(&regions, gpa, 8) {
                    regions[index].model[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
                }
                let read: Result<u32, _> = memory.read_from_guest_of(at);
                assert_eq!(read.is_ok(), locate(&regions, gpa, 4).is_some());
            }
            _ => {
                let slice = memory.translated_byte_buffer(at, len as usize);
                assert_eq!(slice.is_ok(), fits.is_some(), "slice {gpa:#x}+{len:#x}");
                let (Ok(slice), Some((index, base))) = (slice, fits) else {
                    continue;
                };
                assert_eq!((slice.gpa(), slice.len()), (at, len as usize));
                let offset = input.bytes(2) as usize;
                let count = input.bytes(2) as usize;
                let expect = count.min((len as usize).saturating_sub(offset));
                if op & 4 == 0 {
                    let mut buf = vec![0u8; count];
                    assert_eq!(slice.read(offset, &mut buf), expect);
                    let from = base + offset.min(len as usize);
                    assert_eq!(buf[..expect], regions[index].model[from..from + expect]);
                } else {
                    let buf = vec![op as u8; count];
                    assert_eq!(slice.write(offset, &buf), expect);
                    let from = base + offset.min(len as usize);
                    regions[index].model[from..from + expect].fill(op as u8);
                }
            }
        }
    }
    drop(memory);
    for region in &regions {
        let size = region.model.len();
        assert!(
            region.host[..GUARD].iter().all(|&b| b == GUARD_BYTE),
            "guard before {:#x}",
            region.gpa
        );
        assert!(
            region.host[GUARD + size..].iter().all(|&b| b == GUARD_BYTE),
            "guard after {:#x}",
            region.end()
        );
        assert!(
            region.host[GUARD..GUARD + size] == region.model[..],
            "contents of {:#x}",
            region.gpa
        );
    }
});
