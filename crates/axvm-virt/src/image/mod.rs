//! Where an arm64 guest's kernel, initrd and device tree go in RAM, decided before
//! anything is written: [`plan`] reads the kernel's format and the config's addresses and
//! returns a [`LoadPlan`], every range checked to lie inside one RAM region and clear of
//! the others; the host then copies the bytes with the core's guest-memory API. Errors are
//! [`ConfigError`] messages naming the config field to change.
//!
//! Formats ([`detect`]):
//! - Linux arm64 `Image` (magic `ARM\x64` at offset 56): loaded at `kernel.kernel_load_addr`,
//!   which must be a 2 MiB-aligned base plus the header's `text_offset`, and entered there;
//!   the header's `image_size` (bss included) is kept free.
//! - ELF64 for AArch64: each `PT_LOAD` segment at its `p_paddr` (the bss zeroed), entered at
//!   `e_entry` (translated to a physical address when it is a virtual one).
//! - Anything else is raw: copied at `kernel.kernel_load_addr`, entered at
//!   `kernel.entry_point` (how the ArceOS hypervisor loads ArceOS).
//!
//! The device tree goes at `kernel.dtb_load_addr`, or else at the last 2 MiB-aligned 2 MiB
//! of the first RAM region. The initrd goes at `kernel.ramdisk_load_addr`, or else at the
//! first free page after the kernel in the first RAM region, below the device tree.

mod elf;
mod linux;
mod place;
#[cfg(test)]
mod tests;

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use axvm::{AxVMConfig, ConfigError};

use crate::layout::check_ram;

/// The largest device tree the arm64 boot protocol accepts: 2 MiB. A placed tree is
/// given that much room whatever its length.
pub const MAX_DTB_SIZE: u64 = 2 << 20;

/// The config field that names the kernel file.
pub(crate) const KERNEL_PATH_FIELD: &str = "kernel.kernel_path";
/// The config field that places raw and `Image` kernels.
pub(crate) const KERNEL_ADDR_FIELD: &str = "kernel.kernel_load_addr";

/// One piece of the kernel: `(guest-physical address, bytes of the kernel file, size in
/// memory)`; memory beyond the file bytes, up to the size, is zero-filled.
pub type Segment = (u64, Range<usize>, u64);

/// A kernel's segments and entry point, as each format's planner gives them.
type KernelPlan = (Vec<Segment>, u64);

/// A kernel file's format, as [`detect`] reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArmImageFormat {
    /// A Linux arm64 `Image` (the kernel build's `arch/arm64/boot/Image`).
    LinuxImage,
    /// An ELF file (only ELF64 for AArch64 is loadable).
    Elf,
    /// Bytes to copy as they are.
    Raw,
}

/// What to copy where, and how the boot vCPU starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// The kernel's format.
    pub format: ArmImageFormat,
    /// The kernel's pieces ([`Segment`]: address, file bytes, size in memory).
    pub segments: Vec<Segment>,
    /// Where vCPU 0 starts (PC).
    pub entry: u64,
    /// Where the device tree goes; vCPU 0's x0.
    pub dtb_gpa: u64,
    /// The initrd's `(start, end)`, end exclusive, when there is one: what the device
    /// tree's `/chosen` names.
    pub initrd: Option<(u64, u64)>,
}

/// The format of a kernel file: by its ELF magic, by the `Image` header's magic, else raw.
pub fn detect(kernel: &[u8]) -> ArmImageFormat {
    if kernel.starts_with(elf::ELF_MAGIC) {
        ArmImageFormat::Elf
    } else if linux::ImageHeader::parse(kernel).is_some() {
        ArmImageFormat::LinuxImage
    } else {
        ArmImageFormat::Raw
    }
}

/// A [`ConfigError`] message about `field`.
pub(crate) fn refuse(field: &str, problem: impl Into<String>) -> String {
    ConfigError::invalid(field, problem).to_string()
}

/// Plans the load of `kernel` (the file's bytes), an initrd of `initrd_len` bytes (when
/// the config names one) and a device tree of `dtb_len` bytes for `config`, checking
/// every range (see the module documentation). Pure: nothing is written.
///
/// `dtb_len` is the `dtb_path` file's length, or for a generated tree, which names the
/// initrd's addresses that only the plan gives, the length of the tree generated with any
/// initrd addresses (say `(0, 0)`): [`generate_fdt`](crate::fdt::generate_fdt)'s length
/// depends on whether there is an initrd, never on where. Generate it again with
/// [`LoadPlan::initrd`] afterwards. ([`MAX_DTB_SIZE`] works too, but asks for 2 MiB at
/// `kernel.dtb_load_addr`.)
pub fn plan(
    config: &AxVMConfig,
    kernel: &[u8],
    initrd_len: Option<usize>,
    dtb_len: usize,
) -> Result<LoadPlan, String> {
    check_ram(config)?;
    let format = detect(kernel);
    let (segments, entry) = match format {
        ArmImageFormat::LinuxImage => linux::plan(config, kernel)?,
        ArmImageFormat::Elf => elf::plan(config, kernel)?,
        ArmImageFormat::Raw => plan_raw(config, kernel)?,
    };
    let kernel_ranges: Vec<Range<u64>> = segments
        .iter()
        .map(|(gpa, _, size)| *gpa..*gpa + *size)
        .collect();
    let initrd_len = initrd_len.map(|len| len as u64);
    let fixed_initrd = place::fixed_initrd(config, initrd_len, &kernel_ranges)?;
    let dtb_gpa = place::dtb(config, dtb_len as u64, &kernel_ranges, fixed_initrd.clone())?;
    let dtb = dtb_gpa..dtb_gpa + dtb_len as u64;
    let initrd = match (fixed_initrd, initrd_len) {
        (Some(fixed), _) => Some(fixed),
        (None, Some(len)) => Some(place::free_initrd(config, len, &kernel_ranges, dtb)?),
        (None, None) => None,
    };
    Ok(LoadPlan {
        format,
        segments,
        entry,
        dtb_gpa,
        initrd: initrd.map(|range| (range.start, range.end)),
    })
}

/// A raw kernel: its bytes at `kernel.kernel_load_addr`, entered at `kernel.entry_point`.
fn plan_raw(config: &AxVMConfig, kernel: &[u8]) -> Result<KernelPlan, String> {
    if kernel.is_empty() {
        return Err(refuse(KERNEL_PATH_FIELD, "the kernel image is empty"));
    }
    let load = config.image_config.kernel_load_gpa;
    let len = kernel.len() as u64;
    config
        .check_image_fits(KERNEL_ADDR_FIELD, load, len)
        .map_err(|err| err.to_string())?;
    Ok((
        vec![(load.as_u64(), 0..kernel.len(), len)],
        config.cpu_config.bsp_entry.as_u64(),
    ))
}
