//! Reading boot data (info blocks, command lines, tables) the loader left in
//! guest memory, by physical address (identity-mapped).

use core::fmt;

/// Reads a `u8` at physical address `addr`.
///
/// # Safety
/// `addr` must be mapped guest memory (below 4 GiB under
/// [`crate::boot32`]).
pub unsafe fn u8_at(addr: usize) -> u8 {
    core::ptr::read_volatile(addr as *const u8)
}

/// Reads a little-endian `u32` at `addr` (any alignment).
///
/// # Safety
/// As for [`u8_at`].
pub unsafe fn u32_at(addr: usize) -> u32 {
    core::ptr::read_unaligned(addr as *const u32)
}

/// Reads a little-endian `u64` at `addr` (any alignment).
///
/// # Safety
/// As for [`u8_at`].
pub unsafe fn u64_at(addr: usize) -> u64 {
    core::ptr::read_unaligned(addr as *const u64)
}

/// The longest string [`CStrAt`] reads.
pub const MAX_CSTR: usize = 4096;

/// A NUL-terminated string in guest memory, displayed as ASCII (other bytes
/// as `?`), at most [`MAX_CSTR`] bytes.
#[derive(Clone, Copy, Debug)]
pub struct CStrAt {
    /// Physical address of the first byte.
    pub addr: usize,
}

impl CStrAt {
    /// The byte at `index` (`None` at or past the NUL or the length limit).
    pub fn byte(&self, index: usize) -> Option<u8> {
        if index >= MAX_CSTR {
            return None;
        }
        // SAFETY: the caller of `CStrAt` vouched for the string's address;
        // reading stops at its NUL.
        match unsafe { u8_at(self.addr + index) } {
            0 => None,
            byte => Some(byte),
        }
    }

    /// Length up to the NUL (at most [`MAX_CSTR`]).
    pub fn len(&self) -> usize {
        (0..MAX_CSTR)
            .take_while(|&i| self.byte(i).is_some())
            .count()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.byte(0).is_none()
    }
}

impl fmt::Display for CStrAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for byte in (0..).map_while(|i| self.byte(i)) {
            let c = if byte.is_ascii_graphic() || byte == b' ' {
                byte as char
            } else {
                '?'
            };
            f.write_char(c)?;
        }
        Ok(())
    }
}
