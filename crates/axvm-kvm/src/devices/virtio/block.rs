//! virtio-blk: a disk backed by a raw image file or a host block device.
//!
//! Reads and writes go to the file at the sector the driver names (checked against the
//! disk's size); a flush calls `fdatasync` before the request is returned, so a flush the
//! guest saw complete survives the host process being killed. The device offers
//! `VIRTIO_BLK_F_FLUSH` (so drivers flush), `VIRTIO_BLK_F_SEG_MAX`, `VIRTIO_BLK_F_RO` for
//! read-only disks, indirect descriptors and event indices.

mod request;

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::path::Path;

use virtio_bindings::virtio_blk::{VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_RO, VIRTIO_BLK_F_SEG_MAX};
use virtio_bindings::virtio_ids::VIRTIO_ID_BLOCK;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{QueueT, Reader, Writer};

pub use request::SECTOR_SIZE;

use super::{DeviceFault, QueueContext, VirtioDevice};

/// The size of the request queue (the only queue).
const QUEUE_SIZE: u16 = 256;

/// An open disk image.
#[derive(Debug)]
pub struct Disk {
    file: File,
    /// Its size in bytes.
    size: u64,
    read_only: bool,
    /// What GET_ID answers (at most 20 bytes are used).
    serial: String,
}

impl Disk {
    /// Opens the regular file or block device at `path`, for reading only when `read_only`.
    /// The error says what `path` is when it is neither, or why it cannot be opened.
    ///
    /// ```
    /// use axvm_kvm::Disk;
    /// let dir = std::env::temp_dir().join(format!("axvm-disk-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("disk.img");
    /// std::fs::write(&path, vec![0u8; 4096])?;
    /// let disk = Disk::open(&path, true, "doc-disk").unwrap();
    /// assert_eq!(disk.sectors(), 8);
    /// assert!(Disk::open(&dir, false, "dir").unwrap_err().contains("directory"));
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn open(path: &Path, read_only: bool, serial: &str) -> Result<Self, String> {
        Self::check_path(path)?;
        let shown = path.display();
        let mut file = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(path)
            .map_err(|e| format!("cannot open disk {shown}: {e}"))?;
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| format!("cannot find the size of disk {shown}: {e}"))?;
        if size % SECTOR_SIZE != 0 {
            log::warn!("disk {shown}: its last {} bytes are not a whole sector; the guest does not see them", size % SECTOR_SIZE);
        }
        Ok(Self {
            file,
            size: size - size % SECTOR_SIZE,
            read_only,
            serial: serial.into(),
        })
    }

    /// Refuses a `path` that is not a regular file or block device (a FIFO would block the
    /// open, a directory cannot be a disk), without opening it.
    pub fn check_path(path: &Path) -> Result<(), String> {
        use std::os::unix::fs::FileTypeExt;
        let shown = path.display();
        let kind = std::fs::metadata(path)
            .map_err(|e| format!("cannot use disk {shown}: {e}"))?
            .file_type();
        if kind.is_file() || kind.is_block_device() {
            return Ok(());
        }
        let what = if kind.is_dir() {
            "a directory"
        } else {
            "not a regular file or block device"
        };
        Err(format!(
            "disk {shown} is {what}: give a raw disk image or a block device"
        ))
    }

    /// The disk's size in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.size / SECTOR_SIZE
    }
}

/// A virtio block device on a [`Disk`].
pub struct VirtioBlock {
    disk: Disk,
    config: [u8; 16],
}

impl VirtioBlock {
    /// The device for `disk`.
    pub fn new(disk: Disk) -> Self {
        let mut config = [0u8; 16];
        config[..8].copy_from_slice(&disk.sectors().to_le_bytes());
        // size_max (8..12) stays 0: the feature is not offered. seg_max leaves room for the
        // header and status descriptors.
        config[12..16].copy_from_slice(&u32::from(QUEUE_SIZE - 2).to_le_bytes());
        Self { disk, config }
    }
}

impl VirtioDevice for VirtioBlock {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_BLOCK
    }

    fn features(&self) -> u64 {
        let mut features = 1 << VIRTIO_BLK_F_FLUSH
            | 1 << VIRTIO_BLK_F_SEG_MAX
            | 1 << VIRTIO_RING_F_EVENT_IDX
            | 1 << VIRTIO_RING_F_INDIRECT_DESC;
        if self.disk.read_only {
            features |= 1 << VIRTIO_BLK_F_RO;
        }
        features
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        copy_config(&self.config, offset, data);
    }

    fn process_queue(
        &mut self,
        index: usize,
        mut ctx: QueueContext<'_>,
    ) -> Result<(), DeviceFault> {
        let ram = ctx.ram;
        loop {
            let queue = ctx.queue(index)?;
            queue
                .disable_notification(ram)
                .map_err(|e| DeviceFault::Driver(format!("placed its rings badly: {e}")))?;
            while let Some(chain) = ctx.pop_chain(index)? {
                let head = chain.head_index();
                let reader = Reader::new(ram, chain.clone()).map_err(|e| {
                    DeviceFault::Driver(format!("sent request {head} with a bad buffer: {e}"))
                })?;
                let writer = Writer::new(ram, chain).map_err(|e| {
                    DeviceFault::Driver(format!("sent request {head} with a bad buffer: {e}"))
                })?;
                let written = request::execute(&self.disk, reader, writer)
                    .map_err(|e| DeviceFault::Driver(format!("{e} (request {head})")))?;
                ctx.add_used(index, head, written)?;
            }
            let more = ctx
                .queue(index)?
                .enable_notification(ram)
                .map_err(|e| DeviceFault::Driver(format!("placed its rings badly: {e}")))?;
            if !more {
                return Ok(());
            }
        }
    }
}

/// Copies the bytes of `space` at `offset` into `data`, zeros past its end.
pub(crate) fn copy_config(space: &[u8], offset: u64, data: &mut [u8]) {
    data.fill(0);
    let Ok(start) = usize::try_from(offset) else {
        return;
    };
    if let Some(bytes) = space.get(start..) {
        let len = bytes.len().min(data.len());
        data[..len].copy_from_slice(&bytes[..len]);
    }
}
