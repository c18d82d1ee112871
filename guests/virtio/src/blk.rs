//! The block device: the default exercise and the durability mode.

use rt::println;
use virtio_drivers::device::blk::{VirtIOBlk, SECTOR_SIZE};
use virtio_drivers::transport::Transport;

use crate::cmdline::MmioDevice;
use crate::hal::GuestHal;
use crate::text::Text;
use crate::{fail, status, Mmio};

/// What sector 1 gets in the default mode, padded with spaces.
pub const SECTOR1_TEXT: &[u8] = b"written by the virtio guest";
/// `VIRTIO_BLK_F_FLUSH`, bit 9 of the device features.
const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;

type Blk = VirtIOBlk<GuestHal, Mmio>;
type Sector = [u8; SECTOR_SIZE];

fn init(device: MmioDevice, transport: Mmio, failure: u8) -> Blk {
    Blk::new(transport).unwrap_or_else(|e| {
        fail!(
            failure,
            "blk at {:#x}: driver initialisation: {e}",
            device.base
        )
    })
}

/// The default mode's checks (see the crate doc).
pub fn exercise(device: MmioDevice, transport: Mmio) {
    let mut blk = init(device, transport, status::BLK);
    let capacity = blk.capacity();
    println!("virtio: blk capacity {capacity} sectors");
    if capacity < 2 {
        fail!(status::BLK, "blk capacity {capacity} sectors: need 2");
    }

    let mut id = [0u8; 20];
    match blk.device_id(&mut id) {
        Ok(len) => println!("virtio: blk id \"{}\"", Text(&id[..len])),
        Err(e) => println!("virtio: blk id unavailable ({e})"),
    }

    let mut sector: Sector = [0; SECTOR_SIZE];
    blk.read_blocks(0, &mut sector)
        .unwrap_or_else(|e| fail!(status::BLK, "blk read of sector 0: {e}"));
    println!("virtio: blk sector 0: {}", Text(&sector[..16]));

    if blk.readonly() {
        println!("virtio: blk read-only: sector 1 not written");
    } else {
        write_flush_verify(&mut blk);
        println!("virtio: blk sector 1 written, flushed and read back");
    }
    println!("virtio: blk ok");
}

fn write_flush_verify(blk: &mut Blk) {
    let mut written: Sector = [b' '; SECTOR_SIZE];
    written[..SECTOR1_TEXT.len()].copy_from_slice(SECTOR1_TEXT);
    blk.write_blocks(1, &written)
        .unwrap_or_else(|e| fail!(status::BLK, "blk write of sector 1: {e}"));
    blk.flush()
        .unwrap_or_else(|e| fail!(status::BLK, "blk flush: {e}"));
    let mut read: Sector = [0; SECTOR_SIZE];
    blk.read_blocks(1, &mut read)
        .unwrap_or_else(|e| fail!(status::BLK, "blk read of sector 1: {e}"));
    if let Some(at) = (0..SECTOR_SIZE).find(|&i| read[i] != written[i]) {
        fail!(
            status::BLK,
            "blk sector 1 read back differs at byte {at}: wrote {:#04x} read {:#04x}",
            written[at],
            read[at]
        );
    }
}

/// Block `k` of the durability mode: `block <k>` and a newline, then from
/// byte i on the letter `b'a' + (k + i) % 26`.
pub fn durability_block(k: u64) -> Sector {
    let mut block: Sector = [0; SECTOR_SIZE];
    let mut cursor = Cursor {
        buf: &mut block,
        len: 0,
    };
    // A u64 in decimal always fits: 6 + 20 + 1 bytes.
    let _ = core::fmt::Write::write_fmt(&mut cursor, format_args!("block {k}\n"));
    let text_len = cursor.len;
    for (i, byte) in block.iter_mut().enumerate().skip(text_len) {
        *byte = b'a' + ((k + i as u64) % 26) as u8;
    }
    block
}

/// A `fmt::Write` into a byte buffer.
struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The durability mode (see the crate doc): `blocks` writes, each flushed
/// before the next, each flush reported once acknowledged.
pub fn durability(device: MmioDevice, mut transport: Mmio, blocks: u64) {
    let base = device.base;
    println!("virtio: {base:#x} blk");
    if transport.read_device_features() & VIRTIO_BLK_F_FLUSH == 0 {
        fail!(
            status::DURABILITY,
            "blk at {base:#x} does not offer VIRTIO_BLK_F_FLUSH: its flushes would be no-ops"
        );
    }
    let mut blk = init(device, transport, status::DURABILITY);
    if blk.readonly() {
        fail!(status::DURABILITY, "blk at {base:#x} is read-only");
    }
    if blocks > blk.capacity() {
        fail!(
            status::DURABILITY,
            "virtio.durability={blocks} but the disk has {} sectors",
            blk.capacity()
        );
    }
    for k in 0..blocks {
        let block = durability_block(k);
        blk.write_blocks(k as usize, &block)
            .unwrap_or_else(|e| fail!(status::DURABILITY, "blk write of block {k}: {e}"));
        blk.flush()
            .unwrap_or_else(|e| fail!(status::DURABILITY, "blk flush after block {k}: {e}"));
        println!("virtio: flushed {k}");
    }
    println!("virtio: durability ok: {blocks} blocks");
}
