//! Where the device tree and the initrd go: at the config's addresses (checked) or placed
//! by axvm in the first RAM region, never over the kernel or each other.

use alloc::format;
use alloc::string::{String, ToString};
use core::ops::Range;

use axvm::{AxVMConfig, GuestPhysAddr, VmMemConfig};

use super::{refuse, MAX_DTB_SIZE};

const DTB_ADDR_FIELD: &str = "kernel.dtb_load_addr";
const DTB_PATH_FIELD: &str = "kernel.dtb_path";
const RAMDISK_ADDR_FIELD: &str = "kernel.ramdisk_load_addr";
const RAMDISK_PATH_FIELD: &str = "kernel.ramdisk_path";
/// The arm64 boot protocol's device tree alignment.
const DTB_ALIGN: u64 = 8;
/// A placed device tree sits on a 2 MiB boundary, so it never shares a huge page.
const DTB_PLACEMENT_ALIGN: u64 = 2 << 20;
/// The smallest first region axvm places a device tree in: the tree's 2 MiB at the top
/// and at least as much below for the kernel.
const DTB_PLACEMENT_MIN_REGION: u64 = 4 << 20;
const PAGE: u64 = 0x1000;

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The first of `ranges` that `range` overlaps.
fn clash<'a>(range: &Range<u64>, ranges: &'a [Range<u64>]) -> Option<&'a Range<u64>> {
    ranges.iter().find(|other| overlaps(range, other))
}

fn first_region(config: &AxVMConfig, field: &str) -> Result<VmMemConfig, String> {
    config.memory_regions.first().copied().ok_or_else(|| {
        refuse(
            field,
            "there is no RAM to place it in: add kernel.memory_regions",
        )
    })
}

/// `len` bytes at `at` checked to lie in one RAM region; its range.
fn fits(config: &AxVMConfig, field: &str, at: u64, len: u64) -> Result<Range<u64>, String> {
    config
        .check_image_fits(field, GuestPhysAddr::new(at), len)
        .map_err(|err| err.to_string())?;
    Ok(at..at + len)
}

/// The initrd at `kernel.ramdisk_load_addr`, when the config gives one: inside RAM, clear
/// of the kernel.
pub(super) fn fixed_initrd(
    config: &AxVMConfig,
    len: Option<u64>,
    kernel: &[Range<u64>],
) -> Result<Option<Range<u64>>, String> {
    let Some(len) = len else {
        return Ok(None);
    };
    if len == 0 {
        return Err(refuse(RAMDISK_PATH_FIELD, "the ramdisk file is empty"));
    }
    let Some(at) = config.image_config.ramdisk_load_gpa else {
        return Ok(None);
    };
    let range = fits(config, RAMDISK_ADDR_FIELD, at.as_u64(), len)?;
    if let Some(hit) = clash(&range, kernel) {
        return Err(refuse(
            RAMDISK_ADDR_FIELD,
            format!(
                "the {len:#x}-byte ramdisk at {:#x} overlaps the kernel at {:#x}..{:#x}; move it past {:#x}",
                range.start, hit.start, hit.end, hit.end
            ),
        ));
    }
    Ok(Some(range))
}

/// The device tree's address: `kernel.dtb_load_addr` checked, or placed at the last
/// 2 MiB-aligned 2 MiB of the first RAM region.
pub(super) fn dtb(
    config: &AxVMConfig,
    len: u64,
    kernel: &[Range<u64>],
    initrd: Option<Range<u64>>,
) -> Result<u64, String> {
    if len == 0 {
        return Err(refuse(DTB_PATH_FIELD, "the device tree is empty"));
    }
    if len > MAX_DTB_SIZE {
        return Err(refuse(
            DTB_PATH_FIELD,
            format!("a {len:#x}-byte device tree is larger than the 2 MiB the arm64 boot protocol allows"),
        ));
    }
    let initrd_slot = initrd.clone().into_iter();
    let taken: alloc::vec::Vec<Range<u64>> = kernel.iter().cloned().chain(initrd_slot).collect();
    let what = |hit: &Range<u64>| {
        if initrd.as_ref() == Some(hit) {
            "the ramdisk"
        } else {
            "the kernel"
        }
    };
    if let Some(at) = config.image_config.dtb_load_gpa {
        let at = at.as_u64();
        if at % DTB_ALIGN != 0 {
            return Err(refuse(
                DTB_ADDR_FIELD,
                format!(
                    "{at:#x} is not 8-byte aligned, as the arm64 boot protocol needs; use {:#x}",
                    at & !(DTB_ALIGN - 1)
                ),
            ));
        }
        let range = fits(config, DTB_ADDR_FIELD, at, len)?;
        if let Some(hit) = clash(&range, &taken) {
            return Err(refuse(
                DTB_ADDR_FIELD,
                format!(
                    "the device tree at {at:#x}..{:#x} overlaps {} at {:#x}..{:#x}; move one of them",
                    range.end, what(hit), hit.start, hit.end
                ),
            ));
        }
        return Ok(at);
    }
    let region = first_region(config, DTB_ADDR_FIELD)?;
    if region.size < DTB_PLACEMENT_MIN_REGION {
        return Err(refuse(
            DTB_ADDR_FIELD,
            format!("not given, and kernel.memory_regions[0] ({:#x} bytes) is smaller than the 4 MiB axvm places a device tree in: set it or enlarge the region", region.size),
        ));
    }
    let end = region.end().as_u64();
    let at = (end - MAX_DTB_SIZE) / DTB_PLACEMENT_ALIGN * DTB_PLACEMENT_ALIGN;
    let range = at..at + MAX_DTB_SIZE;
    if let Some(hit) = clash(&range, &taken) {
        return Err(refuse(
            DTB_ADDR_FIELD,
            format!(
                "not given, and where axvm places the device tree, {at:#x}..{:#x} at the top of kernel.memory_regions[0], holds {} ({:#x}..{:#x}); set it to free RAM",
                range.end, what(hit), hit.start, hit.end
            ),
        ));
    }
    Ok(at)
}

/// The initrd placed at the first free page after the kernel in the first RAM region,
/// stepping over the kernel's segments and the device tree.
pub(super) fn free_initrd(
    config: &AxVMConfig,
    len: u64,
    kernel: &[Range<u64>],
    dtb: Range<u64>,
) -> Result<Range<u64>, String> {
    let region = first_region(config, RAMDISK_ADDR_FIELD)?;
    let region_range = region.gpa.as_u64()..region.end().as_u64();
    let kernel_end = kernel
        .iter()
        .filter(|range| region_range.contains(&range.start))
        .map(|range| range.end)
        .max()
        .unwrap_or(region_range.start);
    let mut obstacles: alloc::vec::Vec<Range<u64>> = kernel.to_vec();
    obstacles.push(dtb);
    let no_room = || {
        refuse(
            RAMDISK_ADDR_FIELD,
            format!(
                "not given, and kernel.memory_regions[0] ({:#x}..{:#x}) has no room for the {len:#x}-byte ramdisk after the kernel (ending at {kernel_end:#x}) and below the device tree; set it or enlarge the region",
                region_range.start, region_range.end
            ),
        )
    };
    let mut at = kernel_end
        .checked_next_multiple_of(PAGE)
        .ok_or_else(no_room)?;
    loop {
        let end = at.checked_add(len).ok_or_else(no_room)?;
        if end > region_range.end {
            return Err(no_room());
        }
        match clash(&(at..end), &obstacles) {
            None => return Ok(at..end),
            Some(hit) => at = hit.end.checked_next_multiple_of(PAGE).ok_or_else(no_room)?,
        }
    }
}
