//! One virtio-blk request: parsed from a descriptor chain, checked against the disk, and
//! carried out on the backing file.

use std::io::{Read, Write};
use std::os::unix::fs::FileExt;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT,
};
use virtio_queue::{Reader, Writer};

use super::Disk;

/// The size of a virtio-blk sector, whatever the disk's.
pub const SECTOR_SIZE: u64 = 512;
/// How much of a request moves through the host at a time: requests of any size cost no
/// more host memory than this.
const CHUNK: usize = 64 * 1024;

/// The header the driver puts first in every request.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
struct RequestHeader {
    kind: u32,
    _reserved: u32,
    sector: u64,
}

// SAFETY: plain integers; every bit pattern is a valid header.
unsafe impl vm_memory::ByteValued for RequestHeader {}

/// What the request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// Read sectors into the driver's buffers.
    Read { sector: u64 },
    /// Write the driver's buffers to sectors.
    Write { sector: u64 },
    /// Make every completed write durable.
    Flush,
    /// The device's serial number.
    GetId,
    /// A request type this device does not implement.
    Unsupported(u32),
}

/// Carries out the request in `reader` (its readable part) and `writer` (its writable
/// part) on `disk`. Returns the number of bytes written into the driver's buffers, status
/// byte included, or a description of how the driver broke the request format (the device
/// then needs a reset).
pub fn execute(disk: &Disk, mut reader: Reader<'_>, mut writer: Writer<'_>) -> Result<u32, String> {
    let header: RequestHeader = reader
        .read_obj()
        .map_err(|_| String::from("sent a request without its 16-byte header"))?;
    let status_at = writer
        .available_bytes()
        .checked_sub(1)
        .ok_or("sent a request without a writable status byte")?;
    let mut status = writer
        .split_at(status_at)
        .map_err(|e| format!("sent a request whose status byte cannot be placed: {e}"))?;
    let kind = match header.kind {
        VIRTIO_BLK_T_IN => RequestKind::Read {
            sector: header.sector,
        },
        VIRTIO_BLK_T_OUT => RequestKind::Write {
            sector: header.sector,
        },
        VIRTIO_BLK_T_FLUSH => RequestKind::Flush,
        VIRTIO_BLK_T_GET_ID => RequestKind::GetId,
        other => RequestKind::Unsupported(other),
    };
    let outcome = match kind {
        RequestKind::Read { sector } => read(disk, sector, &mut writer),
        RequestKind::Write { sector } => write(disk, sector, &mut reader),
        RequestKind::Flush => flush(disk),
        RequestKind::GetId => get_id(disk, &mut writer),
        RequestKind::Unsupported(kind) => {
            log::debug!("virtio-blk: request type {kind} unsupported");
            Err(VIRTIO_BLK_S_UNSUPP)
        }
    };
    let code = outcome.err().unwrap_or(VIRTIO_BLK_S_OK);
    status
        .write_all(&[code as u8])
        .map_err(|e| format!("gave a status byte that cannot be written: {e}"))?;
    let written = writer.bytes_written() + 1;
    Ok(u32::try_from(written).unwrap_or(u32::MAX))
}

/// The byte offset and length of `len` bytes at `sector`, if they lie on the disk.
fn disk_span(disk: &Disk, sector: u64, len: usize) -> Result<u64, u32> {
    let start = sector.checked_mul(SECTOR_SIZE).ok_or(VIRTIO_BLK_S_IOERR)?;
    let end = start.checked_add(len as u64).ok_or(VIRTIO_BLK_S_IOERR)?;
    if end > disk.size || len as u64 % SECTOR_SIZE != 0 {
        log::debug!(
            "virtio-blk: {len} bytes at sector {sector} are not whole sectors on the disk ({} bytes)",
            disk.size
        );
        return Err(VIRTIO_BLK_S_IOERR);
    }
    Ok(start)
}

fn read(disk: &Disk, sector: u64, data: &mut Writer<'_>) -> Result<(), u32> {
    let total = data.available_bytes();
    let mut at = disk_span(disk, sector, total)?;
    let mut buffer = vec![0u8; CHUNK.min(total)];
    let mut left = total;
    while left > 0 {
        let chunk = &mut buffer[..CHUNK.min(left)];
        disk.file
            .read_exact_at(chunk, at)
            .map_err(io_error("read"))?;
        data.write_all(chunk).map_err(|_| VIRTIO_BLK_S_IOERR)?;
        at += chunk.len() as u64;
        left -= chunk.len();
    }
    Ok(())
}

fn write(disk: &Disk, sector: u64, data: &mut Reader<'_>) -> Result<(), u32> {
    if disk.read_only {
        log::debug!("virtio-blk: write to a read-only disk refused");
        return Err(VIRTIO_BLK_S_IOERR);
    }
    let total = data.available_bytes();
    let mut at = disk_span(disk, sector, total)?;
    let mut buffer = vec![0u8; CHUNK.min(total)];
    let mut left = total;
    while left > 0 {
        let chunk = &mut buffer[..CHUNK.min(left)];
        data.read_exact(chunk).map_err(|_| VIRTIO_BLK_S_IOERR)?;
        disk.file
            .write_all_at(chunk, at)
            .map_err(io_error("write"))?;
        at += chunk.len() as u64;
        left -= chunk.len();
    }
    Ok(())
}

/// The durability point: the used-ring entry of a flush is written only after this returns.
fn flush(disk: &Disk) -> Result<(), u32> {
    if disk.read_only {
        return Ok(());
    }
    disk.file.sync_data().map_err(io_error("flush"))
}

fn get_id(disk: &Disk, data: &mut Writer<'_>) -> Result<(), u32> {
    let mut id = [0u8; VIRTIO_BLK_ID_BYTES as usize];
    let serial = disk.serial.as_bytes();
    let len = serial.len().min(id.len());
    id[..len].copy_from_slice(&serial[..len]);
    let room = data.available_bytes().min(id.len());
    data.write_all(&id[..room]).map_err(|_| VIRTIO_BLK_S_IOERR)
}

fn io_error(what: &'static str) -> impl Fn(std::io::Error) -> u32 {
    move |err| {
        log::warn!("virtio-blk: {what} failed on the host: {err}");
        VIRTIO_BLK_S_IOERR
    }
}
