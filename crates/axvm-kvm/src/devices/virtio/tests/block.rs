//! virtio-blk as a well-behaved driver sees it: discovery, feature negotiation, every
//! request type, indirect descriptors, event-index interrupt suppression and reset.

use axvm::AccessWidth;
use virtio_bindings::virtio_blk::*;
use virtio_bindings::virtio_mmio::*;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};

use super::driver::*;
use crate::devices::virtio::VIRTIO_F_VERSION_1;

const S_OK: u8 = VIRTIO_BLK_S_OK as u8;
const S_IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
const S_UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

#[test]
fn discovery_registers_and_config_space() {
    let driver = Driver::new();
    assert_eq!(driver.read(VIRTIO_MMIO_MAGIC_VALUE), 0x7472_6976);
    assert_eq!(driver.read(VIRTIO_MMIO_VERSION), 2);
    assert_eq!(
        driver.read(VIRTIO_MMIO_DEVICE_ID),
        2,
        "virtio-blk is device 2"
    );
    assert_eq!(driver.read(VIRTIO_MMIO_QUEUE_NUM_MAX), 256);
    let features = driver.device_features();
    assert_ne!(features & VIRTIO_F_VERSION_1, 0, "{features:#x}");
    assert_ne!(features & 1 << VIRTIO_BLK_F_FLUSH, 0, "{features:#x}");
    assert_eq!(features & 1 << VIRTIO_BLK_F_RO, 0, "{features:#x}");
    // capacity (le64) at config offset 0, read whole and in halves.
    let config = u64::from(VIRTIO_MMIO_CONFIG);
    assert_eq!(driver.read_width(config, AccessWidth::Qword), DISK_SECTORS);
    assert_eq!(driver.read(VIRTIO_MMIO_CONFIG), DISK_SECTORS as u32);
    assert_eq!(driver.read(VIRTIO_MMIO_CONFIG + 4), 0);
    assert_eq!(driver.read(VIRTIO_MMIO_CONFIG + 12), 254, "seg_max");
}

#[test]
fn reads_sectors_into_several_buffers() {
    let mut driver = Driver::new();
    driver.setup(0);
    let request = driver.blk_request(VIRTIO_BLK_T_IN, 3, &[512, 1024], true, 0);
    assert_eq!(driver.complete(&request), S_OK);
    assert_eq!(driver.last_used_len(), 1536 + 1, "data and status byte");
    let (first, second) = (request.data[0], request.data[1]);
    assert_eq!(driver.memory(first.0, 512), vec![sector_byte(3); 512]);
    let mut want = vec![sector_byte(4); 512];
    want.extend(vec![sector_byte(5); 512]);
    assert_eq!(driver.memory(second.0, 1024), want);
    assert_eq!(driver.interrupt_status(), INT_VRING);
}

#[test]
fn reads_more_than_one_host_chunk() {
    // 160 KiB: more than the 64 KiB the device moves at a time, across the second region.
    let mut driver = Driver::new();
    driver.setup(0);
    let high = HIGH_START + 0x1000;
    let (mut descs, request) = driver.blk_descs(VIRTIO_BLK_T_IN, 100, &[], true, 0);
    descs.insert(1, Desc::writable(high, 160 * 1024));
    let head = driver.push_chain(&descs);
    assert_eq!(driver.complete(&Request { head, ..request }), S_OK);
    let read = driver.memory(high, 160 * 1024);
    for (index, sector) in read.chunks(512).enumerate() {
        assert!(
            sector.iter().all(|&b| b == sector_byte(100 + index as u64)),
            "sector {}",
            100 + index
        );
    }
}

#[test]
fn writes_reach_the_file() {
    let mut driver = Driver::new();
    driver.setup(0);
    let request = driver.blk_request(VIRTIO_BLK_T_OUT, 7, &[512, 512], false, 0x5a);
    assert_eq!(driver.complete(&request), S_OK);
    assert_eq!(driver.last_used_len(), 1, "only the status byte is written");
    let file = driver.disk.contents();
    assert_eq!(&file[7 * 512..9 * 512], &[0x5a; 1024][..]);
    assert_eq!(&file[6 * 512..7 * 512], &[sector_byte(6); 512][..]);
    assert_eq!(&file[9 * 512..10 * 512], &[sector_byte(9); 512][..]);
}

#[test]
fn flush_completes() {
    let mut driver = Driver::new();
    driver.setup(1 << VIRTIO_BLK_F_FLUSH);
    let request = driver.blk_request(VIRTIO_BLK_T_FLUSH, 0, &[], false, 0);
    assert_eq!(driver.complete(&request), S_OK);
    assert_eq!(driver.last_used_len(), 1);
}

#[test]
fn get_id_answers_the_serial_in_20_bytes() {
    let mut driver = Driver::new();
    driver.setup(0);
    let request = driver.blk_request(VIRTIO_BLK_T_GET_ID, 0, &[20], true, 0);
    assert_eq!(driver.complete(&request), S_OK);
    assert_eq!(driver.last_used_len(), 21);
    let mut want = SERIAL.as_bytes().to_vec();
    want.resize(20, 0);
    assert_eq!(driver.memory(request.data[0].0, 20), want);
}

#[test]
fn get_id_truncates_a_long_serial_and_a_short_buffer() {
    let disk = TempDisk::new(8);
    let long = "0123456789abcdefghijKLMNOP";
    let opened = crate::devices::virtio::Disk::open(&disk.path, false, long).expect("disk");
    let mut driver = Driver::around(disk.into(), opened, two_region_ram());
    driver.setup(0);
    let request = driver.blk_request(VIRTIO_BLK_T_GET_ID, 0, &[32], true, 0);
    assert_eq!(driver.complete(&request), S_OK);
    let got = driver.memory(request.data[0].0, 32);
    assert_eq!(&got[..20], &long.as_bytes()[..20]);
    assert_eq!(&got[20..], &[0xee; 12][..], "nothing past 20 bytes");
    let request = driver.blk_request(VIRTIO_BLK_T_GET_ID, 0, &[8], true, 0);
    assert_eq!(driver.complete(&request), S_OK);
    assert_eq!(driver.memory(request.data[0].0, 8), &long.as_bytes()[..8]);
}

#[test]
fn read_only_disk_offers_ro_and_refuses_writes() {
    let mut driver = Driver::with_disk(true);
    let features = driver.device_features();
    assert_ne!(features & 1 << VIRTIO_BLK_F_RO, 0, "{features:#x}");
    driver.setup(1 << VIRTIO_BLK_F_RO);
    let before = driver.disk.contents();
    let request = driver.blk_request(VIRTIO_BLK_T_OUT, 1, &[512], false, 0x77);
    assert_eq!(driver.complete(&request), S_IOERR);
    assert_eq!(driver.disk.contents(), before, "the file changed");
    let request = driver.blk_request(VIRTIO_BLK_T_IN, 1, &[512], true, 0);
    assert_eq!(driver.complete(&request), S_OK, "reads still work");
    assert_eq!(
        driver.memory(request.data[0].0, 512),
        vec![sector_byte(1); 512]
    );
    let request = driver.blk_request(VIRTIO_BLK_T_FLUSH, 0, &[], false, 0);
    assert_eq!(driver.complete(&request), S_OK);
}

#[test]
fn out_of_range_sectors_are_io_errors() {
    let mut driver = Driver::new();
    driver.setup(0);
    let before = driver.disk.contents();
    for (kind, sector, len) in [
        (VIRTIO_BLK_T_IN, DISK_SECTORS, 512),
        (VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 1024),
        (VIRTIO_BLK_T_OUT, DISK_SECTORS - 1, 1024),
        (VIRTIO_BLK_T_IN, u64::MAX, 512),
        (VIRTIO_BLK_T_OUT, u64::MAX / 512, 512),
        (VIRTIO_BLK_T_IN, (u64::MAX - 511) / 512, 1024),
    ] {
        let request = driver.blk_request(kind, sector, &[len], kind == VIRTIO_BLK_T_IN, 0x33);
        assert_eq!(driver.complete(&request), S_IOERR, "{kind} at {sector}");
        if kind == VIRTIO_BLK_T_IN {
            assert_eq!(driver.last_used_len(), 1, "nothing read: {sector}");
        }
    }
    assert_eq!(driver.disk.contents(), before);
    // The last sector itself is fine.
    let request = driver.blk_request(VIRTIO_BLK_T_IN, DISK_SECTORS - 1, &[512], true, 0);
    assert_eq!(driver.complete(&request), S_OK);
}

#[test]
fn partial_sectors_are_io_errors() {
    let mut driver = Driver::new();
    driver.setup(0);
    let before = driver.disk.contents();
    for (kind, lens) in [
        (VIRTIO_BLK_T_IN, vec![100]),
        (VIRTIO_BLK_T_IN, vec![512, 1]),
        (VIRTIO_BLK_T_OUT, vec![511]),
        (VIRTIO_BLK_T_OUT, vec![256, 512]),
    ] {
        let request = driver.blk_request(kind, 2, &lens, kind == VIRTIO_BLK_T_IN, 0x44);
        assert_eq!(driver.complete(&request), S_IOERR, "{kind} {lens:?}");
    }
    assert_eq!(driver.disk.contents(), before);
}

#[test]
fn unsupported_types_answer_unsupp() {
    let mut driver = Driver::new();
    driver.setup(0);
    for kind in [
        2,
        3,
        5,
        VIRTIO_BLK_T_DISCARD,
        VIRTIO_BLK_T_WRITE_ZEROES,
        u32::MAX,
    ] {
        let request = driver.blk_request(kind, 0, &[512], true, 0);
        assert_eq!(driver.complete(&request), S_UNSUPP, "type {kind}");
    }
    assert_eq!(
        driver.disk.contents(),
        TempDisk::new(DISK_SECTORS).contents()
    );
}

#[test]
fn indirect_descriptors_carry_a_whole_request() {
    let mut driver = Driver::new();
    let features = driver.device_features();
    assert_ne!(features & 1 << VIRTIO_RING_F_INDIRECT_DESC, 0);
    driver.setup(1 << VIRTIO_RING_F_INDIRECT_DESC);
    let (descs, request) = driver.blk_descs(VIRTIO_BLK_T_IN, 9, &[512, 512], true, 0);
    let table = driver.buffer(16 * descs.len() as u64, 0);
    for (index, desc) in descs.iter().enumerate() {
        let mut desc = *desc;
        if index + 1 < descs.len() {
            desc.flags |= virtio_bindings::virtio_ring::VRING_DESC_F_NEXT as u16;
            desc.next = index as u16 + 1;
        }
        let at = vm_memory::GuestAddress(table + 16 * index as u64);
        vm_memory::Bytes::write_slice(&driver.ram, &desc.bytes(), at).expect("table");
    }
    let head = driver.push_chain(&[Desc::indirect(table, descs.len() as u32)]);
    let request = Request { head, ..request };
    assert_eq!(driver.complete(&request), S_OK);
    assert_eq!(driver.last_used_len(), 1025);
    assert_eq!(
        driver.memory(request.data[0].0, 512),
        vec![sector_byte(9); 512]
    );
    assert_eq!(
        driver.memory(request.data[1].0, 512),
        vec![sector_byte(10); 512]
    );
}

#[test]
fn event_idx_suppresses_interrupts_until_used_event() {
    let mut driver = Driver::new();
    driver.setup(1 << VIRTIO_RING_F_EVENT_IDX);
    let used_event = driver.avail + 4 + 2 * u64::from(driver.size);
    let avail_event = driver.used + 4 + 8 * u64::from(driver.size);
    let set_used_event = |driver: &Driver, value: u16| {
        vm_memory::Bytes::write_obj(&driver.ram, value, vm_memory::GuestAddress(used_event))
            .expect("used_event");
    };
    // used_event 0: the first used entry (index 0 -> 1) interrupts.
    set_used_event(&driver, 0);
    let request = driver.blk_request(VIRTIO_BLK_T_FLUSH, 0, &[], false, 0);
    assert_eq!(driver.complete(&request), S_OK);
    assert_eq!(driver.interrupt_status(), INT_VRING);
    driver.write(VIRTIO_MMIO_INTERRUPT_ACK, INT_VRING);
    // The device asks to be notified at the next available entry.
    let avail_event_now: u16 =
        vm_memory::Bytes::read_obj(&driver.ram, vm_memory::GuestAddress(avail_event))
            .expect("avail_event");
    assert_eq!(avail_event_now, 1);
    // used_event still 0: entries 2 and 3 do not interrupt.
    for _ in 0..2 {
        let request = driver.blk_request(VIRTIO_BLK_T_FLUSH, 0, &[], false, 0);
        assert_eq!(driver.complete(&request), S_OK);
        assert_eq!(
            driver.interrupt_status(),
            0,
            "interrupt despite used_event 0"
        );
    }
    // used_event 3: the fourth entry (index 3 -> 4) interrupts again.
    set_used_event(&driver, 3);
    let request = driver.blk_request(VIRTIO_BLK_T_FLUSH, 0, &[], false, 0);
    assert_eq!(driver.complete(&request), S_OK);
    assert_eq!(driver.interrupt_status(), INT_VRING);
}

#[test]
fn without_event_idx_every_used_entry_interrupts() {
    let mut driver = Driver::new();
    driver.setup(0);
    for _ in 0..3 {
        let request = driver.blk_request(VIRTIO_BLK_T_FLUSH, 0, &[], false, 0);
        assert_eq!(driver.complete(&request), S_OK);
        assert_eq!(driver.interrupt_status(), INT_VRING);
        driver.write(VIRTIO_MMIO_INTERRUPT_ACK, INT_VRING);
        assert_eq!(driver.interrupt_status(), 0);
    }
}

#[test]
fn several_chains_in_one_notification() {
    let mut driver = Driver::new();
    driver.setup(0);
    let requests: Vec<_> = (0..4)
        .map(|s| driver.blk_request(VIRTIO_BLK_T_IN, s, &[512], true, 0))
        .collect();
    assert!(driver.notify(0));
    assert_eq!(driver.used_idx(), 4);
    for (slot, request) in requests.iter().enumerate() {
        assert_eq!(driver.used_entry(slot as u16).0, u32::from(request.head));
        assert_eq!(driver.byte(request.status), S_OK);
        assert_eq!(
            driver.memory(request.data[0].0, 512),
            vec![sector_byte(slot as u64); 512]
        );
    }
}

#[test]
fn the_ring_wraps() {
    // 40 requests on a 16-entry queue: the indices wrap twice.
    let mut driver = Driver::new();
    driver.setup(0);
    for round in 0..40u64 {
        let sector = round % DISK_SECTORS;
        let request = driver.blk_request(VIRTIO_BLK_T_IN, sector, &[512], true, 0);
        assert_eq!(driver.complete(&request), S_OK, "request {round}");
        assert_eq!(
            driver.memory(request.data[0].0, 512),
            vec![sector_byte(sector); 512]
        );
    }
}

#[test]
fn reset_clears_everything_and_the_device_works_again() {
    let mut driver = Driver::new();
    driver.setup(1 << VIRTIO_RING_F_EVENT_IDX);
    let request = driver.blk_request(VIRTIO_BLK_T_IN, 1, &[512], true, 0);
    assert_eq!(driver.complete(&request), S_OK);
    assert_ne!(driver.interrupt_status(), 0);
    driver.write(VIRTIO_MMIO_STATUS, 0);
    assert_eq!(driver.status(), 0);
    assert_eq!(driver.interrupt_status(), 0);
    driver.write(VIRTIO_MMIO_QUEUE_SEL, 0);
    for register in [
        VIRTIO_MMIO_QUEUE_READY,
        VIRTIO_MMIO_QUEUE_DESC_LOW,
        VIRTIO_MMIO_QUEUE_AVAIL_LOW,
        VIRTIO_MMIO_QUEUE_USED_LOW,
    ] {
        assert_eq!(
            driver.read(register),
            0,
            "register {register:#x} after reset"
        );
    }
    // A notification now is a driver error (no DRIVER_OK), not served.
    let used = driver.used_idx();
    driver.notify(0);
    assert_eq!(driver.used_idx(), used);
    // Set up again, elsewhere and smaller: served from index 0.
    driver.desc = 0x5000;
    driver.avail = 0x6000;
    driver.used = HIGH_START;
    assert!(driver.negotiate(VIRTIO_F_VERSION_1));
    driver.place_queue(8);
    driver.write(VIRTIO_MMIO_STATUS, Driver::DRIVER_OK);
    assert_eq!(driver.status(), Driver::DRIVER_OK);
    let request = driver.blk_request(VIRTIO_BLK_T_IN, 2, &[512], true, 0);
    assert_eq!(driver.complete(&request), S_OK);
    assert_eq!(driver.used_idx(), 1);
    assert_eq!(
        driver.memory(request.data[0].0, 512),
        vec![sector_byte(2); 512]
    );
}
