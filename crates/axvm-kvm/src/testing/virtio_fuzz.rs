//! The virtio-blk fuzz harness, shared by the seeded tests (`cargo test`) and the
//! `virtio_blk` cargo-fuzz target: random guest memories, ring placements, descriptor tables
//! (direct and indirect, looping, overlapping, half outside RAM), available rings and block
//! requests, each through the device ([`queue_case`]); and random register traffic followed
//! by a proper setup ([`register_case`]). Every case must end without a panic or a hang,
//! keep Status and InterruptStatus in agreement, and write guest memory only in the used
//! ring and in buffers some descriptor marks device-writable; after register traffic, a
//! reset and a proper setup must give a working device. A broken invariant panics, naming
//! the case.
//!
//! The choices come from an [`Entropy`]: a [`SeededRng`](super::entropy::SeededRng) in the
//! tests (case `i` uses seed `AXVM_FUZZ_SEED ^ i`, see [`seeds`]), a fuzzer's input
//! through [`fuzz_virtio_blk`].

use std::rc::Rc;

use axvm::AccessWidth;
use virtio_bindings::virtio_mmio::*;
use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

pub use super::entropy::seeds;
use super::entropy::{Entropy, FuzzBytes, SeededRng};
use super::virtio_driver::*;
use crate::devices::{Disk, VIRTIO_F_VERSION_1};

/// The fuzz RAM: two 32 KiB regions with a 32 KiB gap, small so random addresses hit it.
const REGIONS: [(u64, u64); 2] = [(0, 0x8000), (0x1_0000, 0x1_8000)];
/// The end of the fuzz RAM.
const RAM_END: u64 = 0x1_8000;
/// The disk's size in sectors (sectors past it are asked for too).
pub const FUZZ_SECTORS: u64 = 64;

fn fuzz_ram() -> GuestMemoryMmap {
    let ranges: Vec<_> = REGIONS
        .iter()
        .map(|&(start, end)| (GuestAddress(start), (end - start) as usize))
        .collect();
    GuestMemoryMmap::from_ranges(&ranges).expect("fuzz RAM")
}

/// The fuzz RAM as one flat image of [0, RAM_END) (the gap reads as zeros), and which of
/// its bytes are RAM.
fn image(ram: &GuestMemoryMmap) -> Vec<u8> {
    let mut bytes = vec![0u8; RAM_END as usize];
    for &(start, end) in &REGIONS {
        ram.read_slice(
            &mut bytes[start as usize..end as usize],
            GuestAddress(start),
        )
        .expect("region");
    }
    bytes
}

fn in_ram(addr: u64, len: u64) -> bool {
    let Some(end) = addr.checked_add(len) else {
        return false;
    };
    REGIONS
        .iter()
        .any(|&(start, stop)| addr >= start && end <= stop)
}

/// A random guest address: mostly in or near RAM, sometimes anywhere.
fn address(rng: &mut impl Entropy) -> u64 {
    match rng.below(8) {
        0 => rng.next(),
        1 => {
            let (_, end) = rng.pick(&REGIONS);
            end.wrapping_sub(rng.below(64))
        }
        _ => rng.below(RAM_END + 0x100),
    }
}

/// A random ring address aligned to `alignment`, or (1 in 16) anything.
fn ring_address(rng: &mut impl Entropy, alignment: u64) -> u64 {
    if rng.chance(1, 16) {
        return address(rng);
    }
    let (start, end) = rng.pick(&REGIONS);
    (start + rng.below(end - start)) & !(alignment - 1)
}

/// A random descriptor for a table of `table_len` entries.
fn descriptor(rng: &mut impl Entropy, table_len: u16) -> Desc {
    let len = match rng.below(6) {
        0 => 16,
        1 => 1,
        2 => 512 * (1 + rng.below(3) as u32),
        3 => rng.below(0x2000) as u32,
        4 => rng.next() as u32,
        _ => 16 * (1 + rng.below(8) as u32),
    };
    let mut flags = 0;
    if rng.chance(1, 2) {
        flags |= VRING_DESC_F_NEXT as u16;
    }
    if rng.chance(1, 2) {
        flags |= VRING_DESC_F_WRITE as u16;
    }
    if rng.chance(1, 10) {
        flags |= VRING_DESC_F_INDIRECT as u16;
    }
    if rng.chance(1, 32) {
        flags = rng.next() as u16;
    }
    Desc {
        addr: address(rng),
        len,
        flags,
        next: rng.below(u64::from(table_len) + 2) as u16,
    }
}

/// Writes `bytes` at `at` when they fit in RAM. Ring addresses may be anything, up to the
/// top of the address space, so the harness computes guest addresses with wrapping (and
/// ranges with saturating) arithmetic: a driver's absurd address is a case, not a crash.
fn put(ram: &GuestMemoryMmap, at: u64, bytes: &[u8]) {
    if in_ram(at, bytes.len() as u64) {
        ram.write_slice(bytes, GuestAddress(at)).expect("in RAM");
    }
}

/// A block request header: a known type mostly, a sector near or past the disk's end.
fn header(rng: &mut impl Entropy) -> [u8; 16] {
    let kind = match rng.below(6) {
        0 | 1 => 0, // IN
        2 => 1,     // OUT
        3 => 4,     // FLUSH
        4 => 8,     // GET_ID
        _ => rng.next() as u32,
    };
    let sector = if rng.chance(1, 8) {
        rng.next()
    } else {
        rng.below(FUZZ_SECTORS + 8)
    };
    let mut bytes = [0u8; 16];
    bytes[..4].copy_from_slice(&kind.to_le_bytes());
    bytes[8..].copy_from_slice(&sector.to_le_bytes());
    bytes
}

/// Fills guest memory for one case: random bytes, then a random descriptor table (with
/// indirect tables and request headers where its descriptors point), then the available
/// ring.
///
/// The background bytes come from a generator seeded by one choice, so that a fuzzer's
/// input spends its bytes on the structure rather than on 64 KiB of filler.
fn populate(rng: &mut impl Entropy, driver: &Driver) {
    let mut filler = SeededRng::new(rng.next());
    for &(start, end) in &REGIONS {
        let bytes: Vec<u8> = (start..end)
            .step_by(8)
            .flat_map(|_| filler.next().to_le_bytes())
            .collect();
        driver
            .ram
            .write_slice(&bytes, GuestAddress(start))
            .expect("region");
    }
    let size = driver.size;
    let mut descs: Vec<Desc> = (0..size).map(|_| descriptor(rng, size)).collect();
    for desc in descs.iter_mut() {
        if desc.flags & VRING_DESC_F_INDIRECT as u16 != 0 && rng.chance(3, 4) {
            let entries = desc.len / 16;
            if desc.len % 16 == 0 && entries <= 8 {
                for entry in 0..entries {
                    let inner = descriptor(rng, entries as u16);
                    put(
                        &driver.ram,
                        desc.addr.wrapping_add(16 * u64::from(entry)),
                        &inner.bytes(),
                    );
                }
            }
        } else if desc.flags & VRING_DESC_F_WRITE as u16 == 0 && rng.chance(2, 3) {
            put(&driver.ram, desc.addr, &header(rng));
        }
    }
    for (index, desc) in descs.iter().enumerate() {
        put(
            &driver.ram,
            driver.desc.wrapping_add(16 * index as u64),
            &desc.bytes(),
        );
    }
    let chains = rng.below(u64::from(size) + 1) as u16;
    for slot in 0..chains {
        let head = if rng.chance(1, 16) {
            rng.next() as u16
        } else {
            rng.below(u64::from(size)) as u16
        };
        put(
            &driver.ram,
            driver.avail.wrapping_add(4 + 2 * u64::from(slot)),
            &head.to_le_bytes(),
        );
    }
    let idx = if rng.chance(1, 16) {
        rng.next() as u16
    } else {
        chains
    };
    put(&driver.ram, driver.avail, &[0, 0]);
    put(
        &driver.ram,
        driver.avail.wrapping_add(2),
        &idx.to_le_bytes(),
    );
    put(&driver.ram, driver.used, &[0; 4]);
}

/// The [start, end) ranges guest memory `image` lets the device write: the used ring and
/// every buffer a descriptor (of the table, or of an indirect table one names) marks
/// device-writable.
fn writable_ranges(image: &[u8], desc_table: u64, size: u16, used: u64) -> Vec<(u64, u64)> {
    let read_desc = |at: u64| -> Option<Desc> {
        if !in_ram(at, 16) {
            return None;
        }
        let b = &image[at as usize..at as usize + 16];
        Some(Desc {
            addr: u64::from_le_bytes(b[..8].try_into().ok()?),
            len: u32::from_le_bytes(b[8..12].try_into().ok()?),
            flags: u16::from_le_bytes(b[12..14].try_into().ok()?),
            next: u16::from_le_bytes(b[14..].try_into().ok()?),
        })
    };
    let span = |desc: Desc| (desc.addr, desc.addr.saturating_add(u64::from(desc.len)));
    let mut ranges = vec![(used, used.saturating_add(4 + 8 * u64::from(size) + 2))];
    for index in 0..u64::from(size) {
        let Some(desc) = read_desc(desc_table.wrapping_add(16 * index)) else {
            continue;
        };
        if desc.flags & VRING_DESC_F_INDIRECT as u16 != 0 {
            // What virtio-queue follows: whole descriptors, at most u16::MAX of them.
            let entries = if desc.len % 16 == 0 { desc.len / 16 } else { 0 };
            for entry in 0..u64::from(entries.min(u32::from(u16::MAX))) {
                if let Some(inner) = desc.addr.checked_add(16 * entry).and_then(read_desc) {
                    if inner.flags & VRING_DESC_F_WRITE as u16 != 0 {
                        ranges.push(span(inner));
                    }
                }
            }
        } else if desc.flags & VRING_DESC_F_WRITE as u16 != 0 {
            ranges.push(span(desc));
        }
    }
    ranges
}

/// One case of the queue fuzz on `disk` (of [`FUZZ_SECTORS`] sectors): a device set up
/// with random features and rings, random guest memory, one to three notifications; panics
/// naming `case` when an invariant breaks (see the module documentation).
pub fn queue_case(rng: &mut impl Entropy, disk: &Rc<TempDisk>, case: &str) {
    let read_only = rng.chance(1, 8);
    let opened = Disk::open(&disk.path, read_only, "fuzz").expect("disk");
    let mut driver = Driver::around(disk.clone(), opened, fuzz_ram());
    let features = VIRTIO_F_VERSION_1 | (driver.device_features() & rng.next());
    assert!(
        driver.negotiate(features),
        "{case}: offered features refused"
    );
    driver.desc = ring_address(rng, 16);
    driver.avail = ring_address(rng, 2);
    driver.used = ring_address(rng, 4);
    driver.place_queue(1 << rng.below(6));
    driver.write(VIRTIO_MMIO_STATUS, Driver::DRIVER_OK);
    populate(rng, &driver);
    let used_event = driver.avail.wrapping_add(4 + 2 * u64::from(driver.size));
    put(&driver.ram, used_event, &(rng.next() as u16).to_le_bytes());

    let before = image(&driver.ram);
    for _ in 0..1 + rng.below(3) {
        driver.notify(0);
    }
    let after = image(&driver.ram);
    let mut allowed = writable_ranges(&before, driver.desc, driver.size, driver.used);
    allowed.extend(writable_ranges(
        &after,
        driver.desc,
        driver.size,
        driver.used,
    ));
    for (addr, (old, new)) in before.iter().zip(&after).enumerate() {
        let addr = addr as u64;
        let allowed_here = || {
            allowed
                .iter()
                .any(|&(start, end)| (start..end).contains(&addr))
        };
        if old != new && !allowed_here() {
            let in_ram: Vec<_> = allowed.iter().filter(|r| r.0 < RAM_END).collect();
            panic!(
                "{case}: the device wrote {new:#04x} over {old:#04x} at {addr:#x}, \
                 outside the used ring and every writable buffer in RAM ({in_ram:x?})"
            );
        }
    }
    // Status and interrupt agree (needs_reset asserts it); a reset clears everything.
    let _ = driver.needs_reset();
    driver.write(VIRTIO_MMIO_STATUS, 0);
    assert_eq!(driver.status(), 0, "{case}");
    assert_eq!(driver.interrupt_status(), 0, "{case}");
}

/// A register offset and value a confused or hostile driver might write.
fn register_write(rng: &mut impl Entropy) -> (u64, AccessWidth, u64) {
    let offset = match rng.below(4) {
        0 => rng.below(0x200),
        1 => rng.below(0x1000),
        _ => rng.below(0x100 / 4) * 4,
    };
    let width = if rng.chance(7, 8) {
        AccessWidth::Dword
    } else {
        rng.pick(&[AccessWidth::Byte, AccessWidth::Word, AccessWidth::Qword])
    };
    let value = match rng.below(5) {
        0 => rng.next(),
        1 => rng.below(16),
        2 => 1 << rng.below(64),
        3 => rng.below(RAM_END),
        _ => rng.pick(&[0, 1, 0xf, 0x4f, 0x80, 0x8000, u64::from(u32::MAX)]),
    };
    (offset, width, value)
}

/// One case of register fuzzing on `disk`: maybe a device set up with misplaced rings and
/// random memory, then up to 63 random register writes, each followed by a random read;
/// whatever happened, a reset and a proper setup must then give a device that reads sector 3
/// correctly. Panics naming `case` when that fails.
pub fn register_case(rng: &mut impl Entropy, disk: &Rc<TempDisk>, case: &str) {
    let opened = Disk::open(&disk.path, false, "fuzz").expect("disk");
    let mut driver = Driver::around(disk.clone(), opened, fuzz_ram());
    if rng.chance(1, 2) {
        driver.desc = ring_address(rng, 16);
        driver.avail = ring_address(rng, 2);
        driver.used = ring_address(rng, 4);
        // Not `setup`: the rings may be misplaced on purpose.
        driver.negotiate(VIRTIO_F_VERSION_1);
        driver.place_queue(16);
        driver.write(VIRTIO_MMIO_STATUS, Driver::DRIVER_OK);
        populate(rng, &driver);
    }
    for _ in 0..rng.below(64) {
        let (offset, width, value) = register_write(rng);
        if offset == u64::from(VIRTIO_MMIO_QUEUE_NOTIFY) && width == AccessWidth::Dword {
            driver.notify(value as u32);
        } else {
            driver.write_width(offset, width, value);
        }
        let (offset, width, _) = register_write(rng);
        // The driver may have acknowledged the configuration interrupt or written
        // NEEDS_RESET itself: Status and InterruptStatus need not agree here.
        let _ = driver.read_width(offset, width);
    }
    // Whatever happened, a reset and a proper setup give a working device.
    driver.desc = 0x1000;
    driver.avail = 0x2000;
    driver.used = 0x3000;
    driver.setup(0);
    let request = driver.blk_request(0, 3, &[512], true, 0);
    assert_eq!(driver.complete(&request), 0, "{case}");
    assert_eq!(
        driver.memory(request.data[0].0, 512),
        driver.disk.contents()[3 * 512..4 * 512],
        "{case}"
    );
}

/// The cargo-fuzz entry: `data` decides everything (its first byte picks a queue case or a
/// register case), on a fresh disk so that every input replays alike. Panics only when the
/// device breaks an invariant.
///
/// ```
/// axvm_kvm::testing::virtio_fuzz::fuzz_virtio_blk(b"\x00 any bytes at all");
/// axvm_kvm::testing::virtio_fuzz::fuzz_virtio_blk(b"\x01 any bytes at all");
/// ```
pub fn fuzz_virtio_blk(data: &[u8]) {
    let disk = Rc::new(TempDisk::new(FUZZ_SECTORS));
    let mut input = FuzzBytes::new(data);
    if input.bytes(1) & 1 == 0 {
        queue_case(&mut input, &disk, "this input");
    } else {
        register_case(&mut input, &disk, "this input");
    }
}
