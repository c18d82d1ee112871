//! Just enough of a flattened device tree reader for the guests: the header's
//! magic, and whether the root has a child node of a given name (the demo asks
//! for `axvm-exit@9100000` to tell axvm from QEMU).

/// The FDT header's magic, big-endian in memory.
pub const FDT_MAGIC: u32 = 0xd00d_feed;

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;

/// A device tree blob in guest memory, its header checked.
pub struct Fdt {
    base: usize,
    struct_start: usize,
    struct_end: usize,
}

/// Reads the big-endian u32 at `addr` (4-byte aligned).
///
/// # Safety
/// `addr` must be readable memory.
unsafe fn be32(addr: usize) -> u32 {
    // SAFETY: the caller vouches for the address.
    u32::from_be(unsafe { core::ptr::read_volatile(addr as *const u32) })
}

impl Fdt {
    /// The big-endian magic at `addr`, which should be [`FDT_MAGIC`].
    ///
    /// # Safety
    /// `addr` must be 4-byte aligned readable memory.
    pub unsafe fn magic_at(addr: usize) -> u32 {
        // SAFETY: the caller vouches for the address.
        unsafe { be32(addr) }
    }

    /// The device tree at `addr`, or the reason it is not one.
    ///
    /// # Safety
    /// `addr` must be 8-byte aligned readable memory, and the whole blob the
    /// header describes too.
    pub unsafe fn new(addr: usize) -> Result<Self, &'static str> {
        // SAFETY: the caller vouches for the header and the blob.
        unsafe {
            if be32(addr) != FDT_MAGIC {
                return Err("bad magic");
            }
            let total = be32(addr + 4) as usize;
            let off_struct = be32(addr + 8) as usize;
            let size_struct = be32(addr + 36) as usize;
            if !off_struct.is_multiple_of(4) || off_struct.saturating_add(size_struct) > total {
                return Err("structure block outside the blob");
            }
            Ok(Self {
                base: addr,
                struct_start: addr + off_struct,
                struct_end: addr + off_struct + size_struct,
            })
        }
    }

    /// The blob's guest-physical address.
    pub fn base(&self) -> usize {
        self.base
    }

    /// Whether the root node has a child named exactly `name` (with its unit
    /// address, `axvm-exit@9100000`). A malformed structure block reads as
    /// "no".
    pub fn has_root_child(&self, name: &str) -> bool {
        let mut at = self.struct_start;
        let mut depth = 0usize;
        while at + 4 <= self.struct_end {
            // SAFETY: `at` stays inside the structure block `new` checked.
            let token = unsafe { be32(at) };
            at += 4;
            match token {
                FDT_BEGIN_NODE => {
                    let len = self.name_len(at);
                    if depth == 1 && self.name_is(at, len, name) {
                        return true;
                    }
                    at += (len + 1 + 3) & !3;
                    depth += 1;
                }
                FDT_END_NODE if depth <= 1 => return false,
                FDT_END_NODE => depth -= 1,
                FDT_PROP if at + 8 <= self.struct_end => {
                    // SAFETY: inside the structure block, checked just above.
                    let len = unsafe { be32(at) } as usize;
                    at += 8 + ((len + 3) & !3);
                }
                FDT_NOP => {}
                FDT_END => return false,
                // A token no device tree has.
                _ => return false,
            }
        }
        false
    }

    fn byte(&self, at: usize) -> u8 {
        if at >= self.struct_end {
            return 0;
        }
        // SAFETY: inside the structure block.
        unsafe { core::ptr::read_volatile(at as *const u8) }
    }

    /// Length of the NUL-terminated node name at `at`, bounded by the block.
    fn name_len(&self, at: usize) -> usize {
        (0..self.struct_end.saturating_sub(at))
            .find(|&i| self.byte(at + i) == 0)
            .unwrap_or(0)
    }

    fn name_is(&self, at: usize, len: usize, name: &str) -> bool {
        len == name.len()
            && name
                .bytes()
                .enumerate()
                .all(|(i, b)| self.byte(at + i) == b)
    }
}
