//! QEMU's firmware configuration interface (fw_cfg), through its legacy I/O
//! ports: a 16-bit write of an item's key to the selector port 0x510 selects
//! it and rewinds it; each byte read from the data port 0x511 returns the
//! item's next byte (0 past its end).
//!
//! Items used here: 0x0000 signature (`"QEMU"`), 0x0003 RAM size (u64, LE),
//! 0x0005 number of boot CPUs (u16, LE), 0x000f the most CPUs (u16, LE), 0x0019 file directory (a u32 count,
//! big-endian, then per file: u32 size (BE), u16 key (BE), u16 reserved, a
//! 56-byte NUL-padded name). `etc/e820` is the memory map: 20-byte entries
//! `{ u64 address, u64 length, u32 type }`, little-endian.
//!
//! Nothing here uses a buffer: names are compared and numbers assembled as
//! the bytes arrive.

use crate::io::{inb, outw};

/// Selector port (16-bit writes).
pub const SELECTOR: u16 = 0x510;
/// Data port (8-bit reads).
pub const DATA: u16 = 0x511;

/// Item keys.
pub const SIGNATURE: u16 = 0x0000;
/// Interface revision/feature bits (u32 LE).
pub const ID: u16 = 0x0001;
/// RAM size in bytes (u64 LE).
pub const RAM_SIZE: u16 = 0x0003;
/// Number of boot CPUs (u16 LE).
pub const NB_CPUS: u16 = 0x0005;
/// The most CPUs the machine may have (u16 LE): QEMU's `-smp maxcpus`,
/// which is the CPU count when only `-smp N` is given.
pub const MAX_CPUS: u16 = 0x000f;
/// The file directory.
pub const FILE_DIR: u16 = 0x0019;
/// Length of a name in the file directory.
const FILE_NAME_LEN: usize = 56;

/// Selects (and rewinds) item `key`.
pub fn select(key: u16) {
    // SAFETY: the fw_cfg selector has no effect beyond choosing an item.
    unsafe { outw(SELECTOR, key) }
}

/// The selected item's next byte.
pub fn read_u8() -> u8 {
    // SAFETY: reading fw_cfg data only advances the item's offset.
    unsafe { inb(DATA) }
}

/// The selected item's next `n` (at most 8) bytes, little-endian.
pub fn read_le(n: usize) -> u64 {
    (0..n).fold(0, |value, i| value | u64::from(read_u8()) << (8 * i))
}

/// The selected item's next `n` (at most 8) bytes, big-endian.
pub fn read_be(n: usize) -> u64 {
    (0..n).fold(0, |value, _| value << 8 | u64::from(read_u8()))
}

/// Skips `n` bytes of the selected item.
pub fn skip(n: usize) {
    for _ in 0..n {
        read_u8();
    }
}

/// Whether the signature item reads `"QEMU"`, i.e. fw_cfg is there.
pub fn present() -> bool {
    select(SIGNATURE);
    b"QEMU".iter().all(|&b| read_u8() == b)
}

/// Reads the little-endian integer item `key` of `len` bytes.
pub fn read_item_le(key: u16, len: usize) -> u64 {
    select(key);
    read_le(len)
}

/// Looks `name` up in the file directory: its key and size.
pub fn find_file(name: &str) -> Option<(u16, u32)> {
    let name = name.as_bytes();
    if name.len() >= FILE_NAME_LEN {
        return None;
    }
    select(FILE_DIR);
    let count = read_be(4) as u32;
    let mut found = None;
    for _ in 0..count {
        let size = read_be(4) as u32;
        let key = read_be(2) as u16;
        skip(2);
        // Match while reading all 56 bytes, so the next entry starts right.
        let mut matches = true;
        for i in 0..FILE_NAME_LEN {
            let byte = read_u8();
            let want = name.get(i).copied().unwrap_or(0);
            matches &= byte == want;
        }
        if matches && found.is_none() {
            found = Some((key, size));
        }
    }
    found
}

/// One entry of `etc/e820`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct E820Entry {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
    /// 1 = RAM, 2 = reserved, ...
    pub kind: u32,
}

/// `E820Entry::kind` of usable RAM.
pub const E820_RAM: u32 = 1;

impl E820Entry {
    /// Bytes of this range at or above `floor`.
    pub fn bytes_above(&self, floor: u64) -> u64 {
        let end = self.addr.saturating_add(self.len);
        end.saturating_sub(self.addr.max(floor))
    }

    /// Bytes of usable RAM in this range at or above `floor` (0 for any
    /// other kind).
    pub fn ram_above(&self, floor: u64) -> u64 {
        if self.kind == E820_RAM {
            self.bytes_above(floor)
        } else {
            0
        }
    }
}

/// Calls `f` on each entry of `etc/e820`; returns the number of entries, or
/// `None` if there is no such file.
pub fn for_each_e820(mut f: impl FnMut(E820Entry)) -> Option<usize> {
    let (key, size) = find_file("etc/e820")?;
    let entries = size as usize / 20;
    select(key);
    for _ in 0..entries {
        let addr = read_le(8);
        let len = read_le(8);
        let kind = read_le(4) as u32;
        f(E820Entry { addr, len, kind });
    }
    Some(entries)
}
