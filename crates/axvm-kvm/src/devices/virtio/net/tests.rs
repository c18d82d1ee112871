//! The device's framing, on queues laid out by hand in a small guest RAM.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Address, Bytes, GuestAddress, GuestMemoryMmap};

use super::*;
use crate::devices::virtio::{GuestRam, VirtioInterrupt};

const SIZE: u16 = 16;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// A port whose frames the test supplies and inspects.
#[derive(Clone, Default)]
struct FakePort {
    inbox: Arc<Mutex<VecDeque<Vec<u8>>>>,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl FramePort for FakePort {
    fn receive(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        Ok(self.inbox.lock().unwrap().pop_front())
    }

    fn send(&mut self, frame: &[u8]) -> std::io::Result<bool> {
        self.sent.lock().unwrap().push(frame.to_vec());
        Ok(true)
    }

    fn event(&self) -> Option<BackendEvent> {
        None
    }
}

/// A split queue at `base`: descriptors, then the available ring at +0x100, the used
/// ring at +0x200.
struct DriverQueue {
    base: u64,
    next_descriptor: u16,
    available: u16,
}

impl DriverQueue {
    fn new(base: u64) -> Self {
        Self {
            base,
            next_descriptor: 0,
            available: 0,
        }
    }

    fn queue(&self) -> Queue {
        let mut queue = Queue::new(SIZE).unwrap();
        let split = |address: u64| (Some(address as u32), Some((address >> 32) as u32));
        let (low, high) = split(self.base);
        queue.set_desc_table_address(low, high);
        let (low, high) = split(self.base + 0x100);
        queue.set_avail_ring_address(low, high);
        let (low, high) = split(self.base + 0x200);
        queue.set_used_ring_address(low, high);
        queue.set_ready(true);
        queue
    }

    /// Makes a chain of `(address, length, device-writable)` buffers available.
    fn offer(&mut self, ram: &GuestRam, buffers: &[(u64, u32, bool)]) -> u16 {
        let head = self.next_descriptor;
        for (position, &(address, len, writable)) in buffers.iter().enumerate() {
            let index = self.next_descriptor;
            self.next_descriptor += 1;
            let last = position + 1 == buffers.len();
            let flags = if last { 0 } else { F_NEXT } | if writable { F_WRITE } else { 0 };
            let at = GuestAddress(self.base + u64::from(index) * 16);
            ram.write_obj(address, at).unwrap();
            ram.write_obj(len, at.unchecked_add(8)).unwrap();
            ram.write_obj(flags, at.unchecked_add(12)).unwrap();
            ram.write_obj(index + 1, at.unchecked_add(14)).unwrap();
        }
        let slot = self.base + 0x104 + u64::from(self.available % SIZE) * 2;
        ram.write_obj(head, GuestAddress(slot)).unwrap();
        self.available += 1;
        ram.write_obj(self.available, GuestAddress(self.base + 0x102))
            .unwrap();
        head
    }

    /// The used entries so far: (head, length written).
    fn used(&self, ram: &GuestRam) -> Vec<(u32, u32)> {
        let count: u16 = ram.read_obj(GuestAddress(self.base + 0x202)).unwrap();
        (0..u64::from(count))
            .map(|n| {
                let at = GuestAddress(self.base + 0x204 + n * 8);
                (
                    ram.read_obj(at).unwrap(),
                    ram.read_obj(at.unchecked_add(4)).unwrap(),
                )
            })
            .collect()
    }
}

/// Guest RAM, the two queues, the device on a fake port.
struct Bench {
    ram: GuestRam,
    rx: DriverQueue,
    tx: DriverQueue,
    queues: Vec<Queue>,
    interrupt: VirtioInterrupt,
    port: FakePort,
    device: VirtioNet,
}

impl Bench {
    fn new() -> Self {
        let ram = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x4_0000)]).unwrap();
        let (rx, tx) = (DriverQueue::new(0x1000), DriverQueue::new(0x2000));
        let queues = vec![rx.queue(), tx.queue()];
        let port = FakePort::default();
        let device = VirtioNet::new(VirtioNet::default_mac(0, 0), Box::new(port.clone()));
        Self {
            ram,
            rx,
            tx,
            queues,
            interrupt: VirtioInterrupt::new(None),
            port,
            device,
        }
    }

    fn notify(&mut self, queue: usize) -> Result<(), DeviceFault> {
        let ctx = QueueContext {
            queues: &mut self.queues,
            ram: &self.ram,
            interrupt: &self.interrupt,
        };
        self.device.process_queue(queue, ctx)
    }

    fn backend_ready(&mut self) -> Result<(), DeviceFault> {
        let ctx = QueueContext {
            queues: &mut self.queues,
            ram: &self.ram,
            interrupt: &self.interrupt,
        };
        self.device.process_backend(-1, ctx)
    }

    fn arrive(&self, frame: Vec<u8>) {
        self.port.inbox.lock().unwrap().push_back(frame);
    }

    fn read(&self, address: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; len];
        self.ram
            .read_slice(&mut bytes, GuestAddress(address))
            .unwrap();
        bytes
    }
}

fn frame(len: usize, fill: u8) -> Vec<u8> {
    let mut frame = vec![fill; len];
    frame[..6].copy_from_slice(&[0xff; 6]);
    frame
}

/// The header a received frame gets: zeros, `num_buffers` 1.
const RX_HEADER: [u8; NET_HDR_LEN] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

#[test]
fn transmit_strips_the_header_across_descriptors() {
    let mut bench = Bench::new();
    let sent = frame(60, 0xab);
    bench
        .ram
        .write_slice(&[0x77; NET_HDR_LEN], GuestAddress(0x8000))
        .unwrap();
    bench
        .ram
        .write_slice(&sent[..20], GuestAddress(0x800c))
        .unwrap();
    bench
        .ram
        .write_slice(&sent[20..], GuestAddress(0x9000))
        .unwrap();
    let head = bench
        .tx
        .offer(&bench.ram, &[(0x8000, 32, false), (0x9000, 40, false)]);
    bench.notify(TX).unwrap();
    assert_eq!(*bench.port.sent.lock().unwrap(), vec![sent]);
    assert_eq!(bench.tx.used(&bench.ram), vec![(u32::from(head), 0)]);
    assert_eq!(bench.device.counters().tx_frames, 1);
    assert_eq!(bench.interrupt.status(), 1, "the driver was not told");
}

#[test]
fn receive_prepends_a_header_with_one_buffer() {
    let mut bench = Bench::new();
    let head = bench.rx.offer(&bench.ram, &[(0x8000, 2048, true)]);
    let arrived = frame(60, 0x5a);
    bench.arrive(arrived.clone());
    bench.backend_ready().unwrap();
    let used = bench.rx.used(&bench.ram);
    assert_eq!(used, vec![(u32::from(head), (NET_HDR_LEN + 60) as u32)]);
    assert_eq!(bench.read(0x8000, NET_HDR_LEN), RX_HEADER);
    assert_eq!(bench.read(0x8000 + NET_HDR_LEN as u64, 60), arrived);
}

#[test]
fn a_frame_too_big_for_the_chain_is_dropped_and_the_chain_kept() {
    let mut bench = Bench::new();
    bench
        .ram
        .write_slice(&[0xee; 128], GuestAddress(0x8000))
        .unwrap();
    let head = bench.rx.offer(&bench.ram, &[(0x8000, 72, true)]);
    bench.arrive(frame(61, 1)); // 12 + 61 > 72
    bench.arrive(frame(60, 2)); // fits exactly
    bench.backend_ready().unwrap();
    assert_eq!(bench.device.counters().rx_too_big, 1);
    assert_eq!(bench.device.counters().rx_frames, 1);
    assert_eq!(bench.rx.used(&bench.ram), vec![(u32::from(head), 72)]);
    assert_eq!(bench.read(0x8000 + NET_HDR_LEN as u64, 60), frame(60, 2));
    assert_eq!(
        bench.read(0x8000 + 72, 8),
        [0xee; 8],
        "written past the chain"
    );
}

#[test]
fn a_frame_without_buffers_waits_for_the_drivers_notification() {
    let mut bench = Bench::new();
    bench.arrive(frame(60, 3));
    bench.backend_ready().unwrap();
    assert!(bench.rx.used(&bench.ram).is_empty());
    let head = bench
        .rx
        .offer(&bench.ram, &[(0x8000, 6, true), (0x9000, 2048, true)]);
    bench.notify(RX).unwrap();
    assert_eq!(
        bench.rx.used(&bench.ram),
        vec![(u32::from(head), (NET_HDR_LEN + 60) as u32)]
    );
    // The header spans both buffers.
    assert_eq!(bench.read(0x8000, 6), RX_HEADER[..6]);
    assert_eq!(bench.read(0x9000, 6), RX_HEADER[6..]);
    assert_eq!(bench.read(0x9006, 60), frame(60, 3));
}

#[test]
fn malformed_transmit_chains_are_returned_unsent() {
    let mut bench = Bench::new();
    let short = bench.tx.offer(&bench.ram, &[(0x8000, 8, false)]);
    let long_len = (NET_HDR_LEN + MAX_FRAME_LEN + 1) as u32;
    let long = bench.tx.offer(&bench.ram, &[(0x1_0000, long_len, false)]);
    bench.notify(TX).unwrap();
    assert!(bench.port.sent.lock().unwrap().is_empty());
    assert_eq!(bench.device.counters().tx_malformed, 2);
    assert_eq!(
        bench.tx.used(&bench.ram),
        vec![(u32::from(short), 0), (u32::from(long), 0)]
    );
}

#[test]
fn buffers_outside_guest_ram_are_a_driver_fault() {
    let mut bench = Bench::new();
    bench.rx.offer(&bench.ram, &[(0x10_0000, 2048, true)]);
    bench.arrive(frame(60, 4));
    assert!(matches!(bench.backend_ready(), Err(DeviceFault::Driver(_))));
    bench.tx.offer(&bench.ram, &[(0x10_0000, 72, false)]);
    assert!(matches!(bench.notify(TX), Err(DeviceFault::Driver(_))));
}

#[test]
fn the_config_space_holds_the_mac_and_link_up() {
    let mac = MacAddress::parse("52:54:00:12:34:56").unwrap();
    let device = VirtioNet::new(mac, Box::new(FakePort::default()));
    let mut bytes = [0xffu8; 12];
    device.read_config(0, &mut bytes);
    assert_eq!(bytes, [0x52, 0x54, 0, 0x12, 0x34, 0x56, 1, 0, 0, 0, 0, 0]);
    let features = device.features();
    assert_ne!(features & 1 << VIRTIO_NET_F_MAC, 0);
    assert_eq!(device.queue_max_sizes().len(), 2);
    assert_eq!(device.mac(), mac);
}

#[test]
fn default_macs_are_local_unicast_and_differ_by_vm_and_device() {
    let a = VirtioNet::default_mac(1, 1).octets();
    assert_eq!(a[0] & 0b11, 0b10, "not locally administered unicast");
    assert_ne!(VirtioNet::default_mac(1, 1), VirtioNet::default_mac(2, 1));
    assert_ne!(VirtioNet::default_mac(1, 1), VirtioNet::default_mac(1, 2));
    assert_eq!(VirtioNet::default_mac(7, 1), VirtioNet::default_mac(7, 1));
}
