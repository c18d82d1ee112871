//! A driver that breaks the rules: each test checks that the device refuses (DEVICE_NEEDS_RESET
//! with a configuration interrupt, or an error status in the request) without a panic, a hang
//! (the driver's notifications fail after [`HANG`](super::driver::HANG)) or an access outside
//! guest RAM, and that a reset gives the driver a working device again.

use axvm::AccessWidth;
use virtio_bindings::virtio_blk::*;
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FAILED,
};
use virtio_bindings::virtio_mmio::*;
use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{Bytes, GuestAddress};

use super::driver::*;
use crate::devices::virtio::VIRTIO_F_VERSION_1;

const NEXT: u16 = VRING_DESC_F_NEXT as u16;
const WRITE: u16 = VRING_DESC_F_WRITE as u16;
const INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;

/// Resets the device, sets it up again with the default rings and checks that a read
/// is served correctly: whatever the driver did before, the device is usable.
fn assert_recovers(driver: &mut Driver) {
    driver.write(VIRTIO_MMIO_STATUS, 0);
    assert_eq!(driver.status(), 0, "reset");
    assert_eq!(driver.interrupt_status(), 0, "reset");
    driver.desc = DESC;
    driver.avail = AVAIL;
    driver.used = USED;
    driver.setup(0);
    let request = driver.blk_request(VIRTIO_BLK_T_IN, 5, &[512], true, 0);
    assert_eq!(driver.complete(&request), VIRTIO_BLK_S_OK as u8);
    assert_eq!(
        driver.memory(request.data[0].0, 512),
        vec![sector_byte(5); 512]
    );
}

/// Notifies queue 0 and checks the device refused the chain `request`: NEEDS_RESET, or a
/// used entry whose status byte is not OK. The disk must be unchanged either way.
fn assert_refused(driver: &mut Driver, status_at: Option<u64>, what: &str) {
    let before = driver.disk.contents();
    let used = driver.used_idx();
    assert!(driver.notify(0), "{what}: no notification");
    if !driver.needs_reset() {
        assert_ne!(driver.used_idx(), used, "{what}: neither refused nor used");
        let status = status_at.map(|at| driver.byte(at));
        assert!(
            status.is_some_and(|s| s != VIRTIO_BLK_S_OK as u8),
            "{what}: served with status {status:?}"
        );
    }
    assert_eq!(driver.disk.contents(), before, "{what}: the disk changed");
}

/// Notifies queue 0 and checks the device now needs a reset, having used nothing.
fn assert_needs_reset(driver: &mut Driver, what: &str) {
    let used = driver.used_idx();
    driver.notify(0);
    assert!(driver.needs_reset(), "{what}: no NEEDS_RESET");
    assert_eq!(driver.used_idx(), used, "{what}: a used entry");
    // Further notifications are ignored until the reset.
    driver.notify(0);
    assert_eq!(driver.used_idx(), used, "{what}: served after NEEDS_RESET");
}

/// A fresh device set up by a well-behaved driver.
fn ready() -> Driver {
    let mut driver = Driver::new();
    driver.setup(0);
    driver
}

#[test]
fn buffers_outside_ram_are_refused() {
    for (place, bad) in [
        ("past RAM", 0x4000_0000),
        ("in the gap", LOW_END + 0x1000),
        ("at the top of the address space", u64::MAX - 15),
    ] {
        for part in ["header", "data", "status"] {
            let mut driver = ready();
            let (mut descs, request) = driver.blk_descs(VIRTIO_BLK_T_IN, 0, &[512], true, 0);
            let index = match part {
                "header" => 0,
                "data" => 1,
                _ => 2,
            };
            descs[index].addr = bad;
            driver.push_chain(&descs);
            let status = (part != "status").then_some(request.status);
            assert_refused(&mut driver, status, &format!("{part} {place}"));
            assert_recovers(&mut driver);
        }
    }
}

#[test]
fn buffers_across_the_gap_or_past_the_end_are_refused() {
    for (what, addr) in [
        ("across the gap", LOW_END - 256),
        ("past the end of RAM", HIGH_END - 256),
    ] {
        for device_writes in [true, false] {
            let mut driver = ready();
            let kind = if device_writes {
                VIRTIO_BLK_T_IN
            } else {
                VIRTIO_BLK_T_OUT
            };
            let (mut descs, request) = driver.blk_descs(kind, 0, &[512], device_writes, 0);
            descs[1].addr = addr;
            driver.push_chain(&descs);
            assert_refused(&mut driver, Some(request.status), what);
            // Not a byte written where the buffer overlapped RAM.
            let edge = driver.memory(addr, 256);
            assert!(edge.iter().all(|&b| b == 0), "{what}: RAM written");
            assert_recovers(&mut driver);
        }
    }
}

#[test]
fn a_buffer_spanning_two_adjacent_regions_is_fine() {
    // The contrast to the gap: regions that touch form one guest-physical range.
    let disk = TempDisk::new(DISK_SECTORS);
    let opened = crate::devices::virtio::Disk::open(&disk.path, false, SERIAL).expect("disk");
    let ram = vm_memory::GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), 0x10_0000),
        (GuestAddress(0x10_0000), 0x10_0000),
    ])
    .expect("ram");
    let mut driver = Driver::around(disk.into(), opened, ram);
    driver.setup(0);
    let (mut descs, request) = driver.blk_descs(VIRTIO_BLK_T_IN, 3, &[], true, 0);
    descs.insert(1, Desc::writable(0x10_0000 - 256, 512));
    let head = driver.push_chain(&descs);
    assert_eq!(
        driver.complete(&Request { head, ..request }),
        VIRTIO_BLK_S_OK as u8
    );
    assert_eq!(
        driver.memory(0x10_0000 - 256, 512),
        vec![sector_byte(3); 512]
    );
}

#[test]
fn looping_chains_end() {
    for (what, table) in [
        (
            "two descriptors pointing at each other",
            vec![(0, 16, NEXT, 1), (1, 512, NEXT | WRITE, 0)],
        ),
        ("a descriptor pointing at itself", vec![(0, 16, NEXT, 0)]),
        (
            "a loop after the status byte",
            vec![
                (0, 16, NEXT, 1),
                (1, 1, NEXT | WRITE, 2),
                (2, 512, NEXT | WRITE, 1),
            ],
        ),
    ] {
        let mut driver = ready();
        let header = driver.buffer(16, 0);
        let buffer = driver.buffer(512, 0);
        for (index, len, flags, next) in table {
            let addr = if index == 0 { header } else { buffer };
            driver.write_desc(
                index,
                Desc {
                    addr,
                    len,
                    flags,
                    next,
                },
            );
        }
        driver.make_available(0);
        // Whatever the device makes of the repeated buffers, it answers or refuses.
        let used = driver.used_idx();
        assert!(driver.notify(0));
        assert!(
            driver.needs_reset() || driver.used_idx() == used.wrapping_add(1),
            "{what}"
        );
        assert_recovers(&mut driver);
    }
}

#[test]
fn huge_and_overflowing_lengths_are_refused() {
    for (what, lens) in [
        ("a u32::MAX data buffer", vec![u32::MAX]),
        (
            "lengths summing past 2^32",
            vec![0x8000_0000, 0x8000_0000, 0x200],
        ),
        ("thirteen u32::MAX buffers", vec![u32::MAX; 13]),
    ] {
        for device_writes in [true, false] {
            let mut driver = ready();
            let kind = if device_writes {
                VIRTIO_BLK_T_IN
            } else {
                VIRTIO_BLK_T_OUT
            };
            let (mut descs, request) = driver.blk_descs(kind, 0, &[], device_writes, 0);
            let data = driver.buffer(512, 0);
            for (offset, &len) in lens.iter().enumerate() {
                let flags = if device_writes { WRITE } else { 0 };
                let desc = Desc {
                    addr: data + offset as u64,
                    len,
                    flags,
                    next: 0,
                };
                descs.insert(1 + offset, desc);
            }
            driver.push_chain(&descs);
            assert_refused(&mut driver, Some(request.status), what);
            assert_recovers(&mut driver);
        }
    }
}

#[test]
fn a_header_that_is_short_or_writable_is_refused() {
    for (what, header_len, header_flags) in [
        ("an 8-byte header", 8, 0),
        ("a device-writable header", 16, WRITE),
        ("no header", 0, 0),
    ] {
        let mut driver = ready();
        let (mut descs, _) = driver.blk_descs(VIRTIO_BLK_T_IN, 0, &[512], true, 0);
        descs[0].len = header_len;
        descs[0].flags = header_flags;
        driver.push_chain(&descs);
        assert_needs_reset(&mut driver, what);
        assert_recovers(&mut driver);
    }
}

#[test]
fn a_request_without_a_status_byte_is_refused() {
    let mut driver = ready();
    // Everything readable: nowhere to put the status.
    let (mut descs, _) = driver.blk_descs(VIRTIO_BLK_T_OUT, 0, &[512], false, 0);
    descs.last_mut().expect("status").flags = 0;
    driver.push_chain(&descs);
    assert_needs_reset(&mut driver, "no writable descriptor");
    assert_recovers(&mut driver);
    // A zero-length status descriptor.
    let (mut descs, _) = driver.blk_descs(VIRTIO_BLK_T_FLUSH, 0, &[], false, 0);
    descs.last_mut().expect("status").len = 0;
    driver.push_chain(&descs);
    assert_needs_reset(&mut driver, "a zero-length status");
    assert_recovers(&mut driver);
}

#[test]
fn bad_indirect_tables_are_refused() {
    for what in ["outside RAM", "not a multiple of 16", "nested", "empty"] {
        let mut driver = Driver::new();
        driver.setup(1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC);
        let (descs, request) = driver.blk_descs(VIRTIO_BLK_T_IN, 0, &[512], true, 0);
        let table = driver.buffer(16 * 4, 0);
        let mut entries: Vec<Desc> = descs.clone();
        for (index, desc) in entries.iter_mut().enumerate().take(descs.len() - 1) {
            desc.flags |= NEXT;
            desc.next = index as u16 + 1;
        }
        let mut pointer = Desc::indirect(table, entries.len() as u32);
        match what {
            "outside RAM" => pointer.addr = 0x4000_0000,
            "not a multiple of 16" => pointer.len = 40,
            "nested" => {
                entries[1] = Desc {
                    flags: INDIRECT,
                    ..Desc::indirect(table, 3)
                }
            }
            _ => pointer.len = 0,
        }
        for (index, desc) in entries.iter().enumerate() {
            let at = GuestAddress(table + 16 * index as u64);
            driver.ram.write_slice(&desc.bytes(), at).expect("table");
        }
        driver.push_chain(&[pointer]);
        assert_refused(&mut driver, Some(request.status), what);
        assert_recovers(&mut driver);
    }
}

#[test]
fn a_looping_indirect_table_ends() {
    let mut driver = Driver::new();
    driver.setup(1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_INDIRECT_DESC);
    let header = driver.buffer(16, 0);
    let buffer = driver.buffer(512, 0);
    let table = driver.buffer(16 * 2, 0);
    let entries = [
        Desc {
            addr: header,
            len: 16,
            flags: NEXT,
            next: 1,
        },
        Desc {
            addr: buffer,
            len: 512,
            flags: NEXT | WRITE,
            next: 0,
        },
    ];
    for (index, desc) in entries.iter().enumerate() {
        let at = GuestAddress(table + 16 * index as u64);
        driver.ram.write_slice(&desc.bytes(), at).expect("table");
    }
    driver.push_chain(&[Desc::indirect(table, 2)]);
    // The walk stops after the table's length: served (the loop cut short) or refused.
    let used = driver.used_idx();
    assert!(driver.notify(0));
    assert!(driver.needs_reset() || driver.used_idx() == used.wrapping_add(1));
    assert_recovers(&mut driver);
}

#[test]
fn an_available_index_running_ahead_is_refused() {
    for jump in [17u16, 100, 0x8000, u16::MAX] {
        let mut driver = ready();
        driver.blk_request(VIRTIO_BLK_T_IN, 0, &[512], true, 0);
        driver.set_avail_idx(jump);
        assert_needs_reset(
            &mut driver,
            &format!("available index {jump} on 16 entries"),
        );
        assert_recovers(&mut driver);
    }
    // A whole queue's worth at once is legal.
    let mut driver = ready();
    for s in 0..16 {
        driver.blk_request(VIRTIO_BLK_T_IN, s, &[], true, 0);
    }
    assert!(driver.notify(0));
    assert!(!driver.needs_reset());
    assert_eq!(driver.used_idx(), 16);
}

#[test]
fn a_head_index_past_the_queue_is_refused() {
    for head in [16u16, 255, u16::MAX] {
        let mut driver = ready();
        driver.make_available(head);
        assert_needs_reset(&mut driver, &format!("head {head}"));
        assert_recovers(&mut driver);
    }
}

#[test]
fn rings_over_each_other_do_no_harm() {
    for (what, desc, avail, used) in [
        ("used ring over the descriptor table", DESC, AVAIL, DESC),
        ("used ring over the available ring", DESC, AVAIL, AVAIL),
        ("all three together", DESC, DESC, DESC),
    ] {
        let mut driver = Driver::new();
        driver.desc = desc;
        driver.avail = avail;
        driver.used = used;
        assert!(driver.negotiate(VIRTIO_F_VERSION_1));
        driver.place_queue(16);
        driver.write(VIRTIO_MMIO_STATUS, Driver::DRIVER_OK);
        for _ in 0..4 {
            driver.blk_request(VIRTIO_BLK_T_IN, 0, &[512], true, 0);
            driver.notify(0);
        }
        // Served or refused, the device survives (`needs_reset` checks Status and the
        // interrupt agree); the rings are the driver's problem.
        let refused = driver.needs_reset();
        log::debug!("{what}: refused {refused}");
        assert_recovers(&mut driver);
    }
}

#[test]
fn rings_outside_ram_or_misaligned_are_refused_at_driver_ok() {
    for (what, desc, avail, used) in [
        ("descriptors past RAM", 0x4000_0000, AVAIL, USED),
        ("available ring in the gap", DESC, LOW_END, USED),
        ("used ring across the end of RAM", DESC, AVAIL, HIGH_END - 8),
        ("descriptors across the gap", LOW_END - 16, AVAIL, USED),
        ("misaligned descriptors", DESC + 8, AVAIL, USED),
        ("misaligned available ring", DESC, AVAIL + 1, USED),
        ("misaligned used ring", DESC, AVAIL, USED + 2),
        (
            "descriptors at the top of the address space",
            u64::MAX - 15,
            AVAIL,
            USED,
        ),
    ] {
        let mut driver = Driver::new();
        (driver.desc, driver.avail, driver.used) = (desc, avail, used);
        assert!(driver.negotiate(VIRTIO_F_VERSION_1));
        driver.place_queue(16);
        driver.write(VIRTIO_MMIO_STATUS, Driver::DRIVER_OK);
        assert!(driver.needs_reset(), "{what}");
        driver.notify(0);
        assert_recovers(&mut driver);
    }
}

#[test]
fn a_queue_made_ready_after_driver_ok_is_checked() {
    let mut driver = ready();
    driver.write(VIRTIO_MMIO_QUEUE_READY, 0);
    assert_eq!(driver.read(VIRTIO_MMIO_QUEUE_READY), 0);
    driver.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x4000_0000);
    driver.write(VIRTIO_MMIO_QUEUE_READY, 1);
    assert!(driver.needs_reset());
    assert_recovers(&mut driver);
}

#[test]
fn bad_queue_sizes_are_refused_at_driver_ok() {
    for size in [0, 3, 24, 255, 512, 0x1_0010, u32::MAX] {
        let mut driver = Driver::new();
        assert!(driver.negotiate(VIRTIO_F_VERSION_1));
        driver.place_queue(size);
        driver.write(VIRTIO_MMIO_STATUS, Driver::DRIVER_OK);
        assert!(driver.needs_reset(), "size {size}");
        driver.size = 16;
        assert_recovers(&mut driver);
    }
}

#[test]
fn notifications_before_driver_ok_are_refused() {
    let mut driver = Driver::new();
    assert!(driver.negotiate(VIRTIO_F_VERSION_1));
    driver.place_queue(16);
    driver.blk_request(VIRTIO_BLK_T_IN, 0, &[512], true, 0);
    assert_needs_reset(&mut driver, "notify before DRIVER_OK");
    assert_eq!(driver.status() & VIRTIO_CONFIG_S_DRIVER_OK, 0);
    assert_recovers(&mut driver);
}

#[test]
fn notifications_of_queues_that_do_not_exist_are_refused() {
    for queue in [1, 2, 0xffff, u32::MAX] {
        let mut driver = ready();
        assert!(!driver.notify(queue), "queue {queue} has an eventfd");
        assert!(driver.needs_reset(), "queue {queue}");
        // The thread never sees such an index, but the transport copes if asked.
        driver.serve(queue as usize);
        assert_recovers(&mut driver);
    }
}

#[test]
fn features_without_version_1_or_unoffered_are_refused() {
    let flush = 1 << VIRTIO_BLK_F_FLUSH;
    for (what, features) in [
        ("no features", 0),
        ("legacy driver", flush),
        ("an unoffered feature", VIRTIO_F_VERSION_1 | 1 << 50),
        (
            "RO on a writable disk",
            VIRTIO_F_VERSION_1 | 1 << VIRTIO_BLK_F_RO,
        ),
    ] {
        let mut driver = Driver::new();
        assert!(!driver.negotiate(features), "{what}: FEATURES_OK stuck");
        assert_eq!(
            driver.status(),
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
            "{what}"
        );
        // Going on regardless: DRIVER_OK without FEATURES_OK.
        driver.place_queue(16);
        driver.write(
            VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_DRIVER_OK,
        );
        assert!(driver.needs_reset(), "{what}: DRIVER_OK accepted");
        assert_recovers(&mut driver);
    }
}

#[test]
fn features_are_fixed_once_features_ok_is_set() {
    let mut driver = Driver::new();
    assert!(driver.negotiate(VIRTIO_F_VERSION_1));
    // Turning on EVENT_IDX now must not take effect: without it, every used entry
    // interrupts even with used_event far away.
    driver.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    driver.write(
        VIRTIO_MMIO_DRIVER_FEATURES,
        1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX,
    );
    driver.place_queue(16);
    driver.write(VIRTIO_MMIO_STATUS, Driver::DRIVER_OK);
    let used_event = GuestAddress(driver.avail + 4 + 2 * 16);
    driver
        .ram
        .write_obj(100u16, used_event)
        .expect("used_event");
    let request = driver.blk_request(VIRTIO_BLK_T_FLUSH, 0, &[], false, 0);
    assert_eq!(driver.complete(&request), VIRTIO_BLK_S_OK as u8);
    assert_eq!(driver.interrupt_status(), INT_VRING);
}

#[test]
fn status_writes_cannot_clear_bits() {
    let mut driver = ready();
    for value in [
        VIRTIO_CONFIG_S_ACKNOWLEDGE,
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
        Driver::FEATURES_OK,
        VIRTIO_CONFIG_S_DRIVER_OK,
        VIRTIO_CONFIG_S_FAILED,
    ] {
        driver.write(VIRTIO_MMIO_STATUS, value);
        assert_eq!(
            driver.status(),
            Driver::DRIVER_OK,
            "after writing {value:#x}"
        );
    }
    let request = driver.blk_request(VIRTIO_BLK_T_IN, 1, &[512], true, 0);
    assert_eq!(
        driver.complete(&request),
        VIRTIO_BLK_S_OK as u8,
        "still serving"
    );
    // Skipping ahead: DRIVER_OK with FEATURES_OK in one write before any negotiation
    // (no features, so no VERSION_1): neither sticks.
    let mut driver = Driver::new();
    driver.write(VIRTIO_MMIO_STATUS, Driver::DRIVER_OK);
    assert_eq!(
        driver.status(),
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
        "DRIVER_OK without negotiated features"
    );
    driver.notify(0);
    assert!(driver.needs_reset(), "served without DRIVER_OK");
    assert_recovers(&mut driver);
}

#[test]
fn failed_with_driver_ok_does_not_activate() {
    let mut driver = Driver::new();
    assert!(driver.negotiate(VIRTIO_F_VERSION_1));
    driver.place_queue(16);
    driver.write(
        VIRTIO_MMIO_STATUS,
        Driver::DRIVER_OK | VIRTIO_CONFIG_S_FAILED,
    );
    driver.blk_request(VIRTIO_BLK_T_IN, 0, &[512], true, 0);
    assert_needs_reset(&mut driver, "FAILED");
    assert_recovers(&mut driver);
}

#[test]
fn registers_of_a_ready_queue_or_a_missing_one_are_ignored() {
    let mut driver = ready();
    driver.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x4000_0000);
    driver.write(VIRTIO_MMIO_QUEUE_NUM, 3);
    assert_eq!(driver.read(VIRTIO_MMIO_QUEUE_DESC_LOW), DESC as u32);
    driver.write(VIRTIO_MMIO_QUEUE_SEL, 7);
    assert_eq!(
        driver.read(VIRTIO_MMIO_QUEUE_NUM_MAX),
        0,
        "queue 7 does not exist"
    );
    driver.write(VIRTIO_MMIO_QUEUE_NUM, 16);
    driver.write(VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1234);
    driver.write(VIRTIO_MMIO_QUEUE_READY, 1);
    assert_eq!(driver.read(VIRTIO_MMIO_QUEUE_READY), 0);
    assert_eq!(driver.read(VIRTIO_MMIO_QUEUE_DESC_LOW), 0);
    driver.write(VIRTIO_MMIO_QUEUE_SEL, 0);
    let request = driver.blk_request(VIRTIO_BLK_T_IN, 4, &[512], true, 0);
    assert_eq!(driver.complete(&request), VIRTIO_BLK_S_OK as u8);
}

#[test]
fn registers_answer_only_32_bit_accesses() {
    let mut driver = ready();
    for width in [AccessWidth::Byte, AccessWidth::Word, AccessWidth::Qword] {
        for offset in [
            VIRTIO_MMIO_MAGIC_VALUE,
            VIRTIO_MMIO_STATUS,
            VIRTIO_MMIO_DEVICE_ID,
        ] {
            assert_eq!(driver.read_width(u64::from(offset), width), 0, "{width:?}");
        }
        // A narrow status write of 0 does not reset; a narrow notify does not notify.
        driver.write_width(u64::from(VIRTIO_MMIO_STATUS), width, 0);
        assert_eq!(driver.status(), Driver::DRIVER_OK, "{width:?} status write");
        driver.write_width(u64::from(VIRTIO_MMIO_QUEUE_NOTIFY), width, 0);
        assert!(
            driver.mmio.queue_notifiers()[0].read().is_err(),
            "{width:?} notify"
        );
        driver.write_width(u64::from(VIRTIO_MMIO_INTERRUPT_ACK), width, 0xff);
    }
    // Unaligned offsets of every register, every width: no panic.
    for offset in 0..0x100u64 {
        for width in [AccessWidth::Byte, AccessWidth::Word, AccessWidth::Dword] {
            let _ = driver.read_width(offset, width);
        }
    }
    assert_eq!(driver.status(), Driver::DRIVER_OK);
    let request = driver.blk_request(VIRTIO_BLK_T_IN, 4, &[512], true, 0);
    assert_eq!(driver.complete(&request), VIRTIO_BLK_S_OK as u8);
}

#[test]
fn config_space_reads_anywhere_and_writes_nowhere() {
    let driver = Driver::new();
    let mut space = [0u8; 16];
    space[..8].copy_from_slice(&DISK_SECTORS.to_le_bytes());
    space[12..].copy_from_slice(&254u32.to_le_bytes());
    let config = u64::from(VIRTIO_MMIO_CONFIG);
    let widths = [
        (AccessWidth::Byte, 1),
        (AccessWidth::Word, 2),
        (AccessWidth::Dword, 4),
        (AccessWidth::Qword, 8),
    ];
    for offset in 0..0x1000 - config {
        for (width, size) in widths {
            let mut want = [0u8; 8];
            for (i, byte) in want.iter_mut().take(size).enumerate() {
                *byte = space.get(offset as usize + i).copied().unwrap_or(0);
            }
            let got = driver.read_width(config + offset, width);
            assert_eq!(got, u64::from_le_bytes(want), "{width:?} at {offset:#x}");
        }
    }
    for offset in [0x1000, 0xffff_ffff, u64::MAX - 8, u64::MAX] {
        for (width, _) in widths {
            assert_eq!(
                driver.read_width(offset, width),
                0,
                "{width:?} at {offset:#x}"
            );
            driver.write_width(offset, width, u64::MAX);
        }
    }
    for offset in 0..32 {
        driver.write_width(config + offset, AccessWidth::Qword, u64::MAX);
    }
    assert_eq!(driver.read_width(config, AccessWidth::Qword), DISK_SECTORS);
}

#[test]
fn interrupt_ack_of_any_bits_is_harmless() {
    let mut driver = ready();
    driver.write(VIRTIO_MMIO_INTERRUPT_ACK, u32::MAX);
    assert_eq!(driver.interrupt_status(), 0);
    let request = driver.blk_request(VIRTIO_BLK_T_IN, 4, &[512], true, 0);
    assert_eq!(driver.complete(&request), VIRTIO_BLK_S_OK as u8);
    assert_eq!(driver.interrupt_status(), INT_VRING);
}
