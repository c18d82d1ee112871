//! Tests of the virtio console against queues laid out in a guest memory built here: the
//! descriptors, available and used rings are written and read as a driver would.

use std::io::Cursor;
use std::time::{Duration, Instant};

use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress};

use super::*;
use crate::devices::console::tests::{captured_console, stalled_console, Captured};
use crate::devices::{ConsoleInput, ConsoleThread, GuestRam, ReceiveFifo, VirtioInterrupt};

/// The guest memory of these tests: 1 MiB at 0.
const RAM: usize = 1 << 20;
/// Where buffers go: above the rings of both queues.
const BUFFERS: u64 = 0x1_0000;
/// Descriptor flags (virtio 1.x, 2.7.5).
const NEXT: u16 = 1;
const WRITE: u16 = 2;

/// One split virtqueue as a driver lays it out at `base`: descriptors, then the available
/// ring, then (at `base + 0x1000`) the used ring.
struct DriverRing {
    base: u64,
    size: u16,
    next_descriptor: u16,
    published: u16,
}

impl DriverRing {
    fn new(base: u64) -> Self {
        Self {
            base,
            size: QUEUE_SIZE,
            next_descriptor: 0,
            published: 0,
        }
    }

    fn avail(&self) -> u64 {
        self.base + 16 * u64::from(self.size)
    }

    fn used(&self) -> u64 {
        self.base + 0x1000
    }

    /// The device's view of this ring, ready.
    fn queue(&self) -> Queue {
        let mut queue = Queue::new(self.size).unwrap();
        let split = |addr: u64| (Some(addr as u32), Some((addr >> 32) as u32));
        let (low, high) = split(self.base);
        queue.set_desc_table_address(low, high);
        let (low, high) = split(self.avail());
        queue.set_avail_ring_address(low, high);
        let (low, high) = split(self.used());
        queue.set_used_ring_address(low, high);
        queue.set_ready(true);
        queue
    }

    /// Writes a chain of `(address, length, flags)` descriptors and makes it available.
    fn post(&mut self, ram: &GuestRam, buffers: &[(u64, u32, u16)]) -> u16 {
        let head = self.next_descriptor;
        for (i, &(addr, len, flags)) in buffers.iter().enumerate() {
            let index = self.next_descriptor;
            self.next_descriptor = (index + 1) % self.size;
            let last = i + 1 == buffers.len();
            let at = self.base + 16 * u64::from(index);
            ram.write_obj(addr, GuestAddress(at)).unwrap();
            ram.write_obj(len, GuestAddress(at + 8)).unwrap();
            let flags = if last { flags } else { flags | NEXT };
            ram.write_obj(flags, GuestAddress(at + 12)).unwrap();
            ram.write_obj(self.next_descriptor, GuestAddress(at + 14))
                .unwrap();
        }
        let slot = self.avail() + 4 + 2 * u64::from(self.published % self.size);
        ram.write_obj(head, GuestAddress(slot)).unwrap();
        self.published = self.published.wrapping_add(1);
        ram.write_obj(self.published, GuestAddress(self.avail() + 2))
            .unwrap();
        head
    }

    /// How many chains the device has used (the used ring's index).
    fn used_count(&self, ram: &GuestRam) -> u16 {
        ram.read_obj(GuestAddress(self.used() + 2)).unwrap()
    }

    /// Used entry number `n` (counting from the start, wrapping with the ring):
    /// (head, length written).
    fn used_entry(&self, ram: &GuestRam, n: u16) -> (u32, u32) {
        let at = self.used() + 4 + 8 * u64::from(n % self.size);
        (
            ram.read_obj(GuestAddress(at)).unwrap(),
            ram.read_obj(GuestAddress(at + 4)).unwrap(),
        )
    }

    /// The used ring's entries so far, for tests that use fewer chains than the ring holds.
    fn used_entries(&self, ram: &GuestRam) -> Vec<(u32, u32)> {
        (0..self.used_count(ram))
            .map(|n| self.used_entry(ram, n))
            .collect()
    }
}

/// A console device with its rings, guest memory and captured output.
struct Bench {
    device: VirtioConsole,
    ram: GuestRam,
    queues: Vec<Queue>,
    rx: DriverRing,
    tx: DriverRing,
    interrupt: VirtioInterrupt,
    thread: ConsoleThread,
    output: Captured,
}

impl Bench {
    fn new() -> Self {
        Self::with_inbox(ConsoleInbox::new(INBOX_BYTES).unwrap())
    }

    fn with_inbox(inbox: ConsoleInbox) -> Self {
        let (thread, output) = captured_console();
        Self::on_console(inbox, thread, output)
    }

    /// A bench printing to `thread`'s console, whose writer writes to `output`.
    fn on_console(inbox: ConsoleInbox, thread: ConsoleThread, output: Captured) -> Self {
        let device = VirtioConsole::with_inbox(thread.console(), Arc::new(inbox)).unwrap();
        let ram = GuestRam::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
        let rx = DriverRing::new(0x2000);
        let tx = DriverRing::new(0x4000);
        let queues = vec![rx.queue(), tx.queue()];
        Self {
            device,
            ram,
            queues,
            rx,
            tx,
            interrupt: VirtioInterrupt::new(None),
            thread,
            output,
        }
    }

    fn notify(&mut self, index: usize) -> Result<(), DeviceFault> {
        let ctx = QueueContext {
            queues: &mut self.queues,
            ram: &self.ram,
            interrupt: &self.interrupt,
        };
        self.device.process_queue(index, ctx)
    }

    /// What the virtio thread does when the inbox's eventfd fires.
    fn input_arrived(&mut self) -> Result<(), DeviceFault> {
        let fd = self.device.backend_events()[0].fd;
        let ctx = QueueContext {
            queues: &mut self.queues,
            ram: &self.ram,
            interrupt: &self.interrupt,
        };
        self.device.process_backend(fd, ctx)
    }

    /// Posts a receive buffer of `len` bytes at `addr`.
    fn post_rx(&mut self, addr: u64, len: u32) -> u16 {
        self.rx.post(&self.ram, &[(addr, len, WRITE)])
    }

    /// The bytes the device wrote into the receive buffer at `addr`, as the used ring says.
    fn received(&self, addr: u64, len: u32) -> Vec<u8> {
        let mut bytes = vec![0u8; len as usize];
        self.ram.read_slice(&mut bytes, GuestAddress(addr)).unwrap();
        bytes
    }

    fn console_text(&self) -> Vec<u8> {
        self.thread.drain();
        self.output.bytes()
    }
}

#[test]
fn each_transmitted_chain_reaches_the_console_in_order() {
    let mut bench = Bench::new();
    bench
        .ram
        .write_slice(b"hello ", GuestAddress(BUFFERS))
        .unwrap();
    bench
        .ram
        .write_slice(b"from hvc0\n", GuestAddress(BUFFERS + 0x100))
        .unwrap();
    bench
        .ram
        .write_slice(b"bye\n", GuestAddress(BUFFERS + 0x200))
        .unwrap();
    let first = bench
        .tx
        .post(&bench.ram, &[(BUFFERS, 6, 0), (BUFFERS + 0x100, 10, 0)]);
    let second = bench.tx.post(&bench.ram, &[(BUFFERS + 0x200, 4, 0)]);
    bench.notify(TRANSMITQ).unwrap();
    assert_eq!(bench.console_text(), b"hello from hvc0\nbye\n");
    assert_eq!(
        bench.tx.used_entries(&bench.ram),
        [(u32::from(first), 0), (u32::from(second), 0)]
    );
    assert_eq!(bench.interrupt.status() & 1, 1, "the driver is told");
}

/// Waits (with a generous bound, only so that a missing signal fails instead of hanging)
/// until `fd` is readable.
fn wait_readable(fd: RawFd) {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, for the duration of the call.
    let ready = unsafe { libc::poll(&mut poll, 1, 30_000) };
    assert_eq!(ready, 1, "the console never signalled room");
}

#[test]
fn a_full_console_leaves_chains_in_the_queue_until_it_has_room() {
    // A console of 8 bytes whose writer is stuck writing "0".
    let (release, thread, output) = stalled_console(8, None);
    let mut bench = Bench::on_console(ConsoleInbox::new(INBOX_BYTES).unwrap(), thread, output);
    bench
        .ram
        .write_slice(b"abcdef", GuestAddress(BUFFERS))
        .unwrap();
    bench
        .ram
        .write_slice(b"ghijkl", GuestAddress(BUFFERS + 0x100))
        .unwrap();
    let first = bench.tx.post(&bench.ram, &[(BUFFERS, 6, 0)]);
    let second = bench.tx.post(&bench.ram, &[(BUFFERS + 0x100, 6, 0)]);
    bench.notify(TRANSMITQ).unwrap();
    // The first chain fits; the second only in part, so it stays in the queue.
    assert_eq!(bench.tx.used_entries(&bench.ram), [(u32::from(first), 0)]);
    let room = bench.device.backend_events()[1].fd;
    drop(release);
    // The writer takes the buffer; the console signals room; the virtio thread goes on
    // where the second chain stopped.
    wait_readable(room);
    let ctx = QueueContext {
        queues: &mut bench.queues,
        ram: &bench.ram,
        interrupt: &bench.interrupt,
    };
    bench.device.process_backend(room, ctx).unwrap();
    assert_eq!(
        bench.tx.used_entries(&bench.ram),
        [(u32::from(first), 0), (u32::from(second), 0)]
    );
    assert_eq!(bench.console_text(), b"0abcdefghijkl");
}

#[test]
fn input_waits_for_a_receive_buffer_and_is_delivered_when_one_arrives() {
    let mut bench = Bench::new();
    let inbox = bench.device.inbox();
    assert_eq!(inbox.receive(b"ls -l\n"), 6);
    bench.input_arrived().unwrap();
    assert!(bench.rx.used_entries(&bench.ram).is_empty());
    assert_eq!(inbox.len(), 6, "no buffer: the bytes wait");

    let head = bench.post_rx(BUFFERS, 64);
    bench.notify(RECEIVEQ).unwrap();
    assert_eq!(bench.rx.used_entries(&bench.ram), [(u32::from(head), 6)]);
    assert_eq!(bench.received(BUFFERS, 6), b"ls -l\n");
    assert!(inbox.is_empty());
}

#[test]
fn posted_buffers_wait_for_input_without_being_used() {
    let mut bench = Bench::new();
    let head = bench.post_rx(BUFFERS, 64);
    bench.notify(RECEIVEQ).unwrap();
    assert!(bench.rx.used_entries(&bench.ram).is_empty(), "no input yet");
    bench.device.inbox().receive(b"x");
    bench.input_arrived().unwrap();
    assert_eq!(bench.rx.used_entries(&bench.ram), [(u32::from(head), 1)]);
    assert_eq!(bench.received(BUFFERS, 1), b"x");
}

#[test]
fn bytes_beyond_the_buffers_wait_and_none_is_lost() {
    let mut bench = Bench::new();
    let inbox = bench.device.inbox();
    let input: Vec<u8> = (b'a'..=b'z').collect();
    assert_eq!(inbox.receive(&input), input.len());
    bench.post_rx(BUFFERS, 4);
    bench.post_rx(BUFFERS + 0x100, 8);
    bench.input_arrived().unwrap();
    let used = bench.rx.used_entries(&bench.ram);
    assert_eq!(used.iter().map(|u| u.1).collect::<Vec<_>>(), [4, 8]);
    assert_eq!(inbox.len(), 14);

    // A buffer of two descriptors takes the rest.
    bench.rx.post(
        &bench.ram,
        &[(BUFFERS + 0x200, 10, WRITE), (BUFFERS + 0x300, 10, WRITE)],
    );
    bench.notify(RECEIVEQ).unwrap();
    let used = bench.rx.used_entries(&bench.ram);
    assert_eq!(used.len(), 3);
    assert_eq!(used[2].1, 14);
    let mut received = bench.received(BUFFERS, 4);
    received.extend(bench.received(BUFFERS + 0x100, 8));
    received.extend(bench.received(BUFFERS + 0x200, 10));
    received.extend(bench.received(BUFFERS + 0x300, 4));
    assert_eq!(received, input);
    assert!(inbox.is_empty());
}

#[test]
fn a_full_inbox_takes_only_what_fits() {
    let inbox = ConsoleInbox::new(8).unwrap();
    assert_eq!(inbox.receive(b"0123456789"), 8);
    assert_eq!(inbox.receive(b"x"), 0);
    assert_eq!(
        inbox.arrived().read().unwrap(),
        1,
        "signalled once, for the 8"
    );
    let taken = inbox
        .take(|front, back| Ok::<_, ()>(front.len() + back.len() - 3))
        .unwrap();
    assert_eq!(taken, 5);
    assert_eq!(inbox.receive(b"89abcdef"), 5);
}

/// The input thread against a small inbox: it must wait for room (made as the "driver"
/// posts buffers, one at a time), not drop what does not fit.
#[test]
fn the_input_thread_waits_for_room_and_everything_arrives_in_order() {
    let mut bench = Bench::with_inbox(ConsoleInbox::new(16).unwrap());
    let input: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
    let fifo: Arc<dyn ReceiveFifo> = bench.device.inbox();
    let _thread = ConsoleInput::spawn(Box::new(Cursor::new(input.clone())), fifo).unwrap();
    let mut received = Vec::new();
    let mut seen = 0;
    let mut posted = false;
    // Only a bound on a hang: the thread normally needs a few milliseconds.
    let give_up = Instant::now() + Duration::from_secs(30);
    while received.len() < input.len() && Instant::now() < give_up {
        if !posted {
            bench.post_rx(BUFFERS, 7);
            posted = true;
        }
        bench.input_arrived().unwrap();
        if bench.rx.used_count(&bench.ram) == seen {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let (_, len) = bench.rx.used_entry(&bench.ram, seen);
        received.extend(bench.received(BUFFERS, len));
        seen = seen.wrapping_add(1);
        posted = false;
    }
    assert_eq!(received.len(), input.len());
    assert!(received == input, "the bytes arrived out of order");
}

#[test]
fn the_configuration_space_says_80_by_25() {
    let bench = Bench::new();
    let mut space = [0u8; 8];
    bench.device.read_config(0, &mut space);
    assert_eq!(u16::from_le_bytes([space[0], space[1]]), 80);
    assert_eq!(u16::from_le_bytes([space[2], space[3]]), 25);
    assert_ne!(bench.device.features() & VIRTIO_CONSOLE_F_SIZE, 0);
}

#[test]
fn an_emergency_write_is_printed() {
    let mut bench = Bench::new();
    bench
        .device
        .write_config(EMERG_WR_OFFSET, &u32::from(b'!').to_le_bytes());
    assert_eq!(bench.console_text(), b"!");
}

#[test]
fn a_read_only_receive_buffer_is_a_driver_fault_not_a_panic() {
    let mut bench = Bench::new();
    bench.device.inbox().receive(b"abc");
    bench.rx.post(&bench.ram, &[(BUFFERS, 16, 0)]);
    let fault = bench.notify(RECEIVEQ).unwrap_err();
    assert!(matches!(fault, DeviceFault::Driver(_)), "{fault}");
}

#[test]
fn a_buffer_outside_guest_ram_is_a_driver_fault_not_a_panic() {
    let mut bench = Bench::new();
    bench.tx.post(&bench.ram, &[(RAM as u64 + 0x1000, 16, 0)]);
    let fault = bench.notify(TRANSMITQ).unwrap_err();
    assert!(matches!(fault, DeviceFault::Driver(_)), "{fault}");
}
