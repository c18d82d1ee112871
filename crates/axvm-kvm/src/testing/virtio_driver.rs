//! A virtio-mmio driver written for the tests: guest RAM in two regions with a gap, a
//! [`VirtioMmio`] around a [`VirtioBlock`] on a temporary disk file, the register dance of a
//! real driver through [`BaseDeviceOps`], and one split queue whose descriptors and rings it
//! writes into guest memory itself. A notification is delivered the way the VM's device
//! thread delivers it: the QueueNotify write signals the queue's eventfd, the test reads it
//! and calls the transport's `queue_notified`.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axvm::device::{BaseDeviceOps, DeviceOffset};
use axvm::{AccessWidth, EmulatedDeviceType};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_ACKNOWLEDGE, VIRTIO_CONFIG_S_DRIVER, VIRTIO_CONFIG_S_DRIVER_OK,
    VIRTIO_CONFIG_S_FEATURES_OK,
};
use virtio_bindings::virtio_mmio::*;
use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::devices::{Disk, VirtioBlock, VirtioInterrupt, VirtioMmio, VIRTIO_F_VERSION_1};

/// The first RAM region: [0, 1 MiB).
pub const LOW_END: u64 = 0x10_0000;
/// The second RAM region: [2 MiB, 3 MiB); the gap between them is not RAM.
pub const HIGH_START: u64 = 0x20_0000;
/// The end of the second region.
pub const HIGH_END: u64 = 0x30_0000;
/// Where the driver puts its rings by default (all in the first region).
pub const DESC: u64 = 0x1000;
/// The available ring.
pub const AVAIL: u64 = 0x3000;
/// The used ring.
pub const USED: u64 = 0x4000;
/// Where buffers are allocated from.
const BUFFERS: u64 = 0x1_0000;
/// The size of the disk the tests use, in sectors.
pub const DISK_SECTORS: u64 = 512;
/// The serial number GET_ID answers.
pub const SERIAL: &str = "axvm-test-serial";
/// How long serving one notification may take before the test calls it a hang; far more
/// than any test needs, it only turns a hang into a failure.
pub const HANG: std::time::Duration = std::time::Duration::from_secs(20);
/// The device's window (any address; the driver only uses offsets).
const BASE: u64 = 0xd000_0000;

/// `VIRTIO_MMIO_INT_CONFIG`: the device's status changed (DEVICE_NEEDS_RESET).
pub const INT_CONFIG: u32 = VIRTIO_MMIO_INT_CONFIG;
/// `VIRTIO_MMIO_INT_VRING`: the device used buffers.
pub const INT_VRING: u32 = VIRTIO_MMIO_INT_VRING;
/// The status bit of a device that stopped serving its driver.
pub const NEEDS_RESET: u32 = virtio_bindings::virtio_config::VIRTIO_CONFIG_S_NEEDS_RESET;

/// One descriptor as the driver writes it.
#[derive(Clone, Copy, Debug)]
pub struct Desc {
    pub addr: u64,
    pub len: u32,
    pub flags: u16,
    pub next: u16,
}

impl Desc {
    /// A buffer the device reads.
    pub fn readable(addr: u64, len: u32) -> Self {
        Self {
            addr,
            len,
            flags: 0,
            next: 0,
        }
    }

    /// A buffer the device writes.
    pub fn writable(addr: u64, len: u32) -> Self {
        Self {
            addr,
            len,
            flags: VRING_DESC_F_WRITE as u16,
            next: 0,
        }
    }

    /// A descriptor naming an indirect table of `count` descriptors at `addr`.
    pub fn indirect(addr: u64, count: u32) -> Self {
        Self {
            addr,
            len: count * 16,
            flags: VRING_DESC_F_INDIRECT as u16,
            next: 0,
        }
    }

    /// The 16 bytes of the descriptor in guest memory.
    pub fn bytes(&self) -> [u8; 16] {
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&self.addr.to_le_bytes());
        bytes[8..12].copy_from_slice(&self.len.to_le_bytes());
        bytes[12..14].copy_from_slice(&self.flags.to_le_bytes());
        bytes[14..].copy_from_slice(&self.next.to_le_bytes());
        bytes
    }
}

/// A disk image file in the temp directory, removed when dropped.
pub struct TempDisk {
    pub path: PathBuf,
}

impl TempDisk {
    /// A disk of `sectors` sectors, sector `s` filled with [`sector_byte`]`(s)`.
    pub fn new(sectors: u64) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "axvm-virtio-test-{}-{}.img",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let bytes: Vec<u8> = (0..sectors).flat_map(|s| [sector_byte(s); 512]).collect();
        std::fs::write(&path, bytes).expect("cannot write the test disk");
        Self { path }
    }

    /// The file's bytes now.
    pub fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("cannot read the test disk")
    }
}

impl Drop for TempDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What every byte of sector `s` of a fresh [`TempDisk`] holds.
pub fn sector_byte(s: u64) -> u8 {
    (s as u8).wrapping_mul(7).wrapping_add(1)
}

/// Guest RAM: [0, [`LOW_END`]) and [[`HIGH_START`], [`HIGH_END`]).
pub fn two_region_ram() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[
        (GuestAddress(0), LOW_END as usize),
        (GuestAddress(HIGH_START), (HIGH_END - HIGH_START) as usize),
    ])
    .expect("cannot map the test RAM")
}

/// The test driver and the device it drives.
pub struct Driver {
    pub mmio: VirtioMmio,
    pub ram: GuestMemoryMmap,
    pub disk: Rc<TempDisk>,
    /// The queue's size as the driver set it.
    pub size: u16,
    /// Where the rings are.
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
    /// The next free descriptor and buffer, and the driver's available index.
    next_desc: u16,
    next_buffer: u64,
    avail_idx: u16,
}

impl Driver {
    /// A read-write block device of [`DISK_SECTORS`] sectors, not yet set up.
    // No `Default`: this creates a file, which a default value should not.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self::with_disk(false)
    }

    /// A block device on a fresh disk, read-only when `read_only`.
    pub fn with_disk(read_only: bool) -> Self {
        let disk = TempDisk::new(DISK_SECTORS);
        let opened = Disk::open(&disk.path, read_only, SERIAL).expect("cannot open the disk");
        Self::around(Rc::new(disk), opened, two_region_ram())
    }

    /// The driver of a block device on `opened` (the disk at `disk`), with `ram` attached.
    pub fn around(disk: Rc<TempDisk>, opened: Disk, ram: GuestMemoryMmap) -> Self {
        let mmio = VirtioMmio::new(
            "vda",
            EmulatedDeviceType::VirtioBlk,
            BASE,
            0x1000,
            Box::new(VirtioBlock::new(opened)),
            VirtioInterrupt::new(None),
        )
        .expect("cannot create the transport");
        mmio.attach_ram(ram.clone());
        Self {
            mmio,
            ram,
            disk,
            size: 16,
            desc: DESC,
            avail: AVAIL,
            used: USED,
            next_desc: 0,
            next_buffer: BUFFERS,
            avail_idx: 0,
        }
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read(&self, offset: u32) -> u32 {
        self.read_width(u64::from(offset), AccessWidth::Dword) as u32
    }

    /// Reads `width` bytes at `offset` of the window.
    pub fn read_width(&self, offset: u64, width: AccessWidth) -> u64 {
        self.mmio
            .handle_read(DeviceOffset::first(offset), width)
            .expect("register reads never fail")
    }

    /// Writes the 32-bit register at `offset`.
    pub fn write(&self, offset: u32, value: u32) {
        self.write_width(u64::from(offset), AccessWidth::Dword, u64::from(value));
    }

    /// Writes `width` bytes at `offset` of the window.
    pub fn write_width(&self, offset: u64, width: AccessWidth, value: u64) {
        self.mmio
            .handle_write(DeviceOffset::first(offset), width, value)
            .expect("register writes never fail");
    }

    /// The Status register.
    pub fn status(&self) -> u32 {
        self.read(VIRTIO_MMIO_STATUS)
    }

    /// The InterruptStatus register.
    pub fn interrupt_status(&self) -> u32 {
        self.read(VIRTIO_MMIO_INTERRUPT_STATUS)
    }

    /// Whether the device stopped serving (NEEDS_RESET in Status and a configuration
    /// interrupt pending).
    pub fn needs_reset(&self) -> bool {
        let status = self.status() & NEEDS_RESET != 0;
        let interrupt = self.interrupt_status() & INT_CONFIG != 0;
        assert_eq!(
            status, interrupt,
            "NEEDS_RESET in Status and the configuration interrupt must go together"
        );
        status
    }

    /// The features the device offers (both halves).
    pub fn device_features(&self) -> u64 {
        self.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
        let low = self.read(VIRTIO_MMIO_DEVICE_FEATURES);
        self.write(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
        let high = self.read(VIRTIO_MMIO_DEVICE_FEATURES);
        u64::from(high) << 32 | u64::from(low)
    }

    /// Resets the device, acknowledges it and writes `features`; returns whether
    /// FEATURES_OK stuck.
    pub fn negotiate(&self, features: u64) -> bool {
        self.write(VIRTIO_MMIO_STATUS, 0);
        self.write(VIRTIO_MMIO_STATUS, VIRTIO_CONFIG_S_ACKNOWLEDGE);
        self.write(
            VIRTIO_MMIO_STATUS,
            VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER,
        );
        self.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
        self.write(VIRTIO_MMIO_DRIVER_FEATURES, features as u32);
        self.write(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
        self.write(VIRTIO_MMIO_DRIVER_FEATURES, (features >> 32) as u32);
        self.write(VIRTIO_MMIO_STATUS, Self::FEATURES_OK);
        self.status() & VIRTIO_CONFIG_S_FEATURES_OK != 0
    }

    /// ACKNOWLEDGE | DRIVER | FEATURES_OK.
    pub const FEATURES_OK: u32 =
        VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER | VIRTIO_CONFIG_S_FEATURES_OK;
    /// Every bit of a working driver's status.
    pub const DRIVER_OK: u32 = Self::FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK;

    /// Places queue 0 with `size` entries at the driver's ring addresses (zeroing the rings)
    /// and makes it ready.
    pub fn place_queue(&mut self, size: u32) {
        self.write(VIRTIO_MMIO_QUEUE_SEL, 0);
        self.write(VIRTIO_MMIO_QUEUE_NUM, size);
        self.size = size as u16;
        for (low, high, addr) in [
            (
                VIRTIO_MMIO_QUEUE_DESC_LOW,
                VIRTIO_MMIO_QUEUE_DESC_HIGH,
                self.desc,
            ),
            (
                VIRTIO_MMIO_QUEUE_AVAIL_LOW,
                VIRTIO_MMIO_QUEUE_AVAIL_HIGH,
                self.avail,
            ),
            (
                VIRTIO_MMIO_QUEUE_USED_LOW,
                VIRTIO_MMIO_QUEUE_USED_HIGH,
                self.used,
            ),
        ] {
            self.write(low, addr as u32);
            self.write(high, (addr >> 32) as u32);
        }
        for ring in [self.desc, self.avail, self.used] {
            // Rings placed outside RAM on purpose are not there to zero.
            let _ = self.ram.write_slice(&[0; 0x1000], GuestAddress(ring));
        }
        self.next_desc = 0;
        self.avail_idx = 0;
        self.write(VIRTIO_MMIO_QUEUE_READY, 1);
    }

    /// The whole setup of a working driver: VERSION_1 and `extra` features, queue 0 with 16
    /// entries, DRIVER_OK. Panics if the device refuses any of it.
    pub fn setup(&mut self, extra: u64) {
        assert!(
            self.negotiate(VIRTIO_F_VERSION_1 | extra),
            "FEATURES_OK refused"
        );
        self.place_queue(16);
        self.write(VIRTIO_MMIO_STATUS, Self::DRIVER_OK);
        assert_eq!(self.status(), Self::DRIVER_OK, "DRIVER_OK refused");
    }

    /// A fresh buffer of `len` bytes in the first region holding `fill`.
    pub fn buffer(&mut self, len: u64, fill: u8) -> u64 {
        let addr = self.next_buffer;
        self.next_buffer = (addr + len).next_multiple_of(16);
        assert!(self.next_buffer <= LOW_END, "the tests ran out of buffers");
        self.ram
            .write_slice(&vec![fill; len as usize], GuestAddress(addr))
            .expect("buffer in RAM");
        addr
    }

    /// Writes `descs` as one chain into the descriptor table (linked with NEXT) and makes it
    /// available; returns its head.
    pub fn push_chain(&mut self, descs: &[Desc]) -> u16 {
        let head = self.next_desc;
        let indices: Vec<u16> = (0..descs.len() as u16)
            .map(|i| (head + i) % self.size)
            .collect();
        for (i, desc) in descs.iter().enumerate() {
            let mut desc = *desc;
            if let Some(&next) = indices.get(i + 1) {
                desc.flags |= VRING_DESC_F_NEXT as u16;
                desc.next = next;
            }
            self.write_desc(indices[i], desc);
        }
        self.next_desc = (head + descs.len() as u16) % self.size;
        self.make_available(head);
        head
    }

    /// Writes `desc` as descriptor `index` of the table, as it is.
    pub fn write_desc(&self, index: u16, desc: Desc) {
        let at = self.desc + 16 * u64::from(index);
        self.ram
            .write_slice(&desc.bytes(), GuestAddress(at))
            .expect("descriptor table in RAM");
    }

    /// Puts `head` in the available ring and publishes it.
    pub fn make_available(&mut self, head: u16) {
        let slot = self.avail + 4 + 2 * u64::from(self.avail_idx % self.size);
        self.ram
            .write_obj(head, GuestAddress(slot))
            .expect("available ring in RAM");
        self.avail_idx = self.avail_idx.wrapping_add(1);
        self.set_avail_idx(self.avail_idx);
    }

    /// Writes the available ring's index (the driver's publication) as it is.
    pub fn set_avail_idx(&self, idx: u16) {
        self.ram
            .write_obj(idx, GuestAddress(self.avail + 2))
            .expect("available ring in RAM");
    }

    /// The driver writes QueueNotify; the device thread's part follows: its eventfd fired,
    /// so it calls the transport. Returns whether the eventfd had fired.
    pub fn notify(&self, queue: u32) -> bool {
        self.write(VIRTIO_MMIO_QUEUE_NOTIFY, queue);
        let fired = self
            .mmio
            .queue_notifiers()
            .get(queue as usize)
            .is_some_and(|notifier| notifier.read().is_ok());
        if fired {
            self.serve(queue as usize);
        }
        fired
    }

    /// What the device thread does when queue `index`'s eventfd fires, on a thread of its
    /// own: a device that never returns (a spinning queue walk) fails the test after
    /// [`HANG`] instead of hanging it.
    pub fn serve(&self, index: usize) {
        let transport = self.mmio.transport().clone();
        let (done, finished) = std::sync::mpsc::channel();
        let worker = std::thread::spawn(move || {
            transport.queue_notified(index);
            let _ = done.send(());
        });
        match finished.recv_timeout(HANG) {
            // Joined, so that no thread outlives the case (the fuzz target's leak check
            // counts a still-exiting thread's bookkeeping as a leak).
            Ok(()) => {
                let _ = worker.join();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("the device still works on queue {index} after {HANG:?}: it hangs")
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                panic!("the device panicked serving queue {index}")
            }
        }
    }

    /// The used ring's index.
    pub fn used_idx(&self) -> u16 {
        self.ram
            .read_obj(GuestAddress(self.used + 2))
            .expect("used ring in RAM")
    }

    /// Used-ring entry `slot`: (head, length written).
    pub fn used_entry(&self, slot: u16) -> (u32, u32) {
        let at = self.used + 4 + 8 * u64::from(slot % self.size);
        let id = self.ram.read_obj(GuestAddress(at)).expect("used ring");
        let len = self.ram.read_obj(GuestAddress(at + 4)).expect("used ring");
        (id, len)
    }

    /// `len` bytes of guest memory at `addr`.
    pub fn memory(&self, addr: u64, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        self.ram
            .read_slice(&mut bytes, GuestAddress(addr))
            .expect("test read in RAM");
        bytes
    }

    /// The byte at `addr`.
    pub fn byte(&self, addr: u64) -> u8 {
        self.memory(addr, 1)[0]
    }
}

/// Where a block request's parts are, for checking the result.
#[derive(Debug)]
pub struct Request {
    pub head: u16,
    /// The data buffers (address, length).
    pub data: Vec<(u64, u32)>,
    /// The status byte.
    pub status: u64,
}

impl Driver {
    /// A virtio-blk request of `kind` at `sector` with data buffers of `lens` bytes (written
    /// by the device when `device_writes`, else filled with `fill` for it to read), pushed as
    /// one direct chain: header, data, status.
    pub fn blk_request(
        &mut self,
        kind: u32,
        sector: u64,
        lens: &[u32],
        device_writes: bool,
        fill: u8,
    ) -> Request {
        let (descs, request) = self.blk_descs(kind, sector, lens, device_writes, fill);
        let head = self.push_chain(&descs);
        Request { head, ..request }
    }

    /// The descriptors of [`blk_request`](Self::blk_request), without pushing them.
    pub fn blk_descs(
        &mut self,
        kind: u32,
        sector: u64,
        lens: &[u32],
        device_writes: bool,
        fill: u8,
    ) -> (Vec<Desc>, Request) {
        let header = self.buffer(16, 0);
        let mut bytes = [0u8; 16];
        bytes[..4].copy_from_slice(&kind.to_le_bytes());
        bytes[8..].copy_from_slice(&sector.to_le_bytes());
        self.ram
            .write_slice(&bytes, GuestAddress(header))
            .expect("header in RAM");
        let mut descs = vec![Desc::readable(header, 16)];
        let mut data = Vec::new();
        for &len in lens {
            let addr = self.buffer(u64::from(len), if device_writes { 0xee } else { fill });
            data.push((addr, len));
            descs.push(if device_writes {
                Desc::writable(addr, len)
            } else {
                Desc::readable(addr, len)
            });
        }
        let status = self.buffer(1, 0xff);
        descs.push(Desc::writable(status, 1));
        (
            descs,
            Request {
                head: 0,
                data,
                status,
            },
        )
    }

    /// Notifies queue 0 and returns the status byte `request` got, checking that exactly one
    /// more used entry appeared and that it names the request.
    pub fn complete(&mut self, request: &Request) -> u8 {
        let before = self.used_idx();
        assert!(
            self.notify(0),
            "QueueNotify did not reach queue 0's eventfd"
        );
        assert!(!self.needs_reset(), "the device needs a reset");
        assert_eq!(self.used_idx(), before.wrapping_add(1), "no used entry");
        let (id, _) = self.used_entry(before);
        assert_eq!(
            id,
            u32::from(request.head),
            "the used entry names another chain"
        );
        self.byte(request.status)
    }

    /// The length the last used entry reports.
    pub fn last_used_len(&self) -> u32 {
        self.used_entry(self.used_idx().wrapping_sub(1)).1
    }
}
