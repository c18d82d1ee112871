//! The test ramdisk format the guests check a boot module (Multiboot module,
//! PVH module, Linux initrd) against:
//!
//! ```text
//! offset 0        6 bytes   ASCII "AXVMRD"
//! offset 6        u32 LE    n, the payload length
//! offset 10       n bytes   payload
//! offset 10 + n   u32 LE    sum of the payload bytes, mod 2^32
//! ```
//!
//! Anything after the sum is ignored (a loader may round the module's size
//! up), so the module must be at least `14 + n` bytes.

use core::fmt;

/// The magic at the start of a test ramdisk.
pub const MAGIC: &[u8; 6] = b"AXVMRD";
/// Bytes besides the payload: magic, length, sum.
pub const OVERHEAD: usize = 14;

/// Why a module is not a valid test ramdisk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the fixed fields.
    TooShort(usize),
    /// The first 6 bytes are not `AXVMRD`.
    BadMagic,
    /// The payload length does not fit in the module.
    Length {
        /// The length field.
        payload: u32,
        /// The module's size.
        module: usize,
    },
    /// The stored sum does not match the payload.
    Sum {
        /// The stored sum.
        stored: u32,
        /// The sum of the payload as loaded.
        computed: u32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::TooShort(size) => write!(f, "ramdisk is {size} bytes, shorter than {OVERHEAD}"),
            Error::BadMagic => write!(f, "ramdisk does not start with \"AXVMRD\""),
            Error::Length { payload, module } => {
                write!(
                    f,
                    "ramdisk payload length {payload} does not fit in {module} bytes"
                )
            }
            Error::Sum { stored, computed } => {
                write!(f, "ramdisk sum expected {stored:#x} got {computed:#x}")
            }
        }
    }
}

fn byte(addr: usize) -> u8 {
    // SAFETY: callers stay within the module, identity-mapped guest RAM.
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

fn u32_le(addr: usize) -> u32 {
    (0..4).fold(0, |v, i| v | u32::from(byte(addr + i)) << (8 * i))
}

/// Checks the `size`-byte module at physical address `addr`; returns the
/// payload length.
pub fn check(addr: usize, size: usize) -> Result<u32, Error> {
    if size < OVERHEAD {
        return Err(Error::TooShort(size));
    }
    if (0..MAGIC.len()).any(|i| byte(addr + i) != MAGIC[i]) {
        return Err(Error::BadMagic);
    }
    let payload = u32_le(addr + 6);
    if payload as usize > size - OVERHEAD {
        return Err(Error::Length {
            payload,
            module: size,
        });
    }
    let start = addr + 10;
    let computed =
        (0..payload as usize).fold(0u32, |sum, i| sum.wrapping_add(u32::from(byte(start + i))));
    let stored = u32_le(start + payload as usize);
    if stored != computed {
        return Err(Error::Sum { stored, computed });
    }
    Ok(payload)
}
