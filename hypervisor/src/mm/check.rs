//! A boot-time check of the frame allocator's contract, which the VM side builds on (guest RAM
//! from [`frames::alloc`] and, for identical mappings, [`frames::alloc_at`]). It runs once on
//! the BSP after [`super::init`], takes a few milliseconds, and leaves the allocator as it found
//! it; a broken contract stops the boot with the check that failed.

use super::{frames, kernel_range, phys_to_virt, PAGE_SIZE};
use crate::boot::entry::TRAMPOLINE;
use crate::boot::multiboot::MultibootInfo;

/// A byte pattern the checks write, to see it gone after the frames come back zeroed.
const PATTERN: u8 = 0xa5;

fn fill(pa: u64, pages: usize) {
    // SAFETY: the caller owns these frames (just allocated); RAM is identity-mapped.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa), PATTERN, pages * PAGE_SIZE as usize) };
}

fn is_zero(pa: u64, pages: usize) -> bool {
    // SAFETY: as in `fill`.
    let bytes =
        unsafe { core::slice::from_raw_parts(phys_to_virt(pa), pages * PAGE_SIZE as usize) };
    bytes.iter().all(|&byte| byte == 0)
}

fn ensure(ok: bool, what: &str) -> Result<(), &str> {
    if ok {
        Ok(())
    } else {
        Err(what)
    }
}

/// Runs the checks; `Err` names the first that failed.
pub fn run(info: &MultibootInfo) -> Result<(), &'static str> {
    let before = frames::free_pages();
    let page = frames::alloc(1).ok_or("alloc(1) found no free frame")?;
    ensure(
        page.is_multiple_of(PAGE_SIZE),
        "alloc(1) is not 4 KiB-aligned",
    )?;
    ensure(is_zero(page, 1), "alloc(1) is not zeroed")?;
    let large = frames::alloc(512).ok_or("alloc(512) found no free 2 MiB")?;
    ensure(
        large.is_multiple_of(2 << 20),
        "alloc(512) is not 2 MiB-aligned",
    )?;
    ensure(
        large >= page + PAGE_SIZE || large + (2 << 20) <= page,
        "alloc(512) overlaps alloc(1)",
    )?;
    ensure(
        !frames::alloc_at(large, 1),
        "alloc_at claimed a frame in use",
    )?;
    fill(large, 512);
    frames::free(large, 512);
    ensure(
        frames::alloc_at(large, 512),
        "alloc_at refused frames just freed",
    )?;
    ensure(is_zero(large, 512), "alloc_at did not zero the frames")?;
    ensure(
        !frames::alloc_at(large + 1, 1),
        "alloc_at took an unaligned address",
    )?;
    ensure(
        !frames::alloc_at(TRAMPOLINE, 1),
        "alloc_at handed out the low 1 MiB",
    )?;
    ensure(
        !frames::alloc_at(kernel_range().0, 1),
        "alloc_at handed out the kernel image",
    )?;
    for module in info.modules() {
        let first = module.start / PAGE_SIZE * PAGE_SIZE;
        ensure(
            !frames::alloc_at(first, 1),
            "alloc_at handed out a Multiboot module",
        )?;
    }
    ensure(
        !frames::alloc_at(frames::MAX_PHYS, 1),
        "alloc_at went beyond RAM",
    )?;
    frames::free(large, 512);
    frames::free(page, 1);
    ensure(
        frames::free_pages() == before,
        "alloc/free lost or gained frames",
    )
}
