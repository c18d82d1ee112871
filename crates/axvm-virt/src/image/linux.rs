//! The Linux arm64 `Image` header (the kernel's `Documentation/arch/arm64/booting.rst`):
//! 64 bytes at the start of the file, all fields little-endian.
//!
//! | offset | field |
//! |---|---|
//! | 8 | `text_offset`: where the image starts past a 2 MiB-aligned base |
//! | 16 | `image_size`: the bytes the kernel occupies, bss included (0 before Linux 3.17) |
//! | 24 | `flags` |
//! | 56 | magic `ARM\x64` |

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;

use axvm::AxVMConfig;

use super::{refuse, KernelPlan, KERNEL_ADDR_FIELD};

/// `ARM\x64` as a little-endian u32.
pub(super) const IMAGE_MAGIC: u32 = 0x644d_5241;
/// The header's length; the magic is its last field.
const HEADER_LEN: usize = 64;
/// The base the image's `text_offset` counts from must be 2 MiB aligned.
pub(super) const BASE_ALIGN: u64 = 2 << 20;
/// `text_offset` of kernels older than 3.17, whose header has `image_size` 0.
pub(super) const OLD_TEXT_OFFSET: u64 = 0x8_0000;

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    let mut field = [0; 8];
    field.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(field)
}

/// The header fields the loader uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ImageHeader {
    /// Offset of the image from its 2 MiB-aligned base.
    pub text_offset: u64,
    /// Bytes the kernel occupies from its first byte (never less than the file).
    pub memory_size: u64,
}

impl ImageHeader {
    /// The header of `kernel`, if it has the magic. An `image_size` of 0 marks a kernel
    /// from before 3.17, whose `text_offset` is 0x80000 whatever the field says.
    pub fn parse(kernel: &[u8]) -> Option<Self> {
        let magic = kernel.get(56..HEADER_LEN)?;
        if u32::from_le_bytes([magic[0], magic[1], magic[2], magic[3]]) != IMAGE_MAGIC {
            return None;
        }
        let image_size = le_u64(kernel, 16);
        let text_offset = if image_size == 0 {
            OLD_TEXT_OFFSET
        } else {
            le_u64(kernel, 8)
        };
        Some(Self {
            text_offset,
            memory_size: image_size.max(kernel.len() as u64),
        })
    }
}

/// The nearest load address at or above `load` that the protocol allows, for messages.
fn suggested_load(load: u64, text_offset: u64) -> Option<u64> {
    let base = load.saturating_sub(text_offset);
    base.checked_next_multiple_of(BASE_ALIGN)?
        .checked_add(text_offset)
}

/// The `Image` at `kernel.kernel_load_addr`, refused unless that is a 2 MiB-aligned base
/// plus `text_offset` with the whole `image_size` inside one RAM region.
pub(super) fn plan(config: &AxVMConfig, kernel: &[u8]) -> Result<KernelPlan, String> {
    let Some(header) = ImageHeader::parse(kernel) else {
        return Err(refuse(
            super::KERNEL_PATH_FIELD,
            "not a Linux arm64 Image (no ARM\\x64 magic)",
        ));
    };
    let load = config.image_config.kernel_load_gpa.as_u64();
    let text_offset = header.text_offset;
    let aligned = load
        .checked_sub(text_offset)
        .is_some_and(|base| base % BASE_ALIGN == 0);
    if !aligned {
        let fix = match suggested_load(load, text_offset) {
            Some(at) => format!("use {at:#x}"),
            None => "use a 2 MiB-aligned address plus text_offset".to_string(),
        };
        return Err(refuse(
            KERNEL_ADDR_FIELD,
            format!(
                "{load:#x} is not a 2 MiB-aligned base plus the Image's text_offset {text_offset:#x}, where the arm64 boot protocol needs a Linux Image; {fix}"
            ),
        ));
    }
    config
        .check_image_fits(
            KERNEL_ADDR_FIELD,
            config.image_config.kernel_load_gpa,
            header.memory_size,
        )
        .map_err(|err| err.to_string())?;
    Ok((vec![(load, 0..kernel.len(), header.memory_size)], load))
}
