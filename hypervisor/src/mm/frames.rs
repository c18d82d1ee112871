//! The physical frame allocator: one bit per 4 KiB frame of RAM (1 = free), from the Multiboot
//! memory map, with the low 1 MiB (BIOS data, the AP trampoline), the kernel image and the
//! loader's data (info block, modules) never free.
//!
//! A bitmap rather than free lists because the VM side needs [`alloc_at`]: guest RAM mapped
//! identically must be exactly the host range the config names. Frames are zeroed when
//! handed out. RAM above [`MAX_PHYS`] is ignored (reported at boot).

use spin::Mutex;

use super::{kernel_range, phys_to_virt, PAGE_SIZE};
use crate::boot::multiboot::{MultibootInfo, RAM};

/// The highest physical address the allocator manages (and the kernel maps).
pub const MAX_PHYS: u64 = 16 << 30;
/// Frames below this are never handed out: real-mode data, the trampoline, firmware.
pub const LOW_RESERVED: u64 = 1 << 20;
const FRAMES: usize = (MAX_PHYS / PAGE_SIZE) as usize;
const WORDS: usize = FRAMES / 64;
/// A request for a multiple of this many frames is placed 2 MiB-aligned when possible, so
/// nested page tables can map it with large pages.
const LARGE_FRAMES: usize = 512;

struct Bitmap {
    free: [u64; WORDS],
    /// One past the highest frame that was ever RAM: searches stop here.
    limit: usize,
}

static BITMAP: Mutex<Bitmap> = Mutex::new(Bitmap {
    free: [0; WORDS],
    limit: 0,
});

impl Bitmap {
    fn is_free(&self, frame: usize) -> bool {
        self.free[frame / 64] & (1 << (frame % 64)) != 0
    }

    fn set(&mut self, frame: usize, free: bool) {
        let bit = 1u64 << (frame % 64);
        if free {
            self.free[frame / 64] |= bit;
        } else {
            self.free[frame / 64] &= !bit;
        }
    }

    fn set_range(&mut self, frames: core::ops::Range<usize>, free: bool) {
        for frame in frames.start.min(FRAMES)..frames.end.min(FRAMES) {
            self.set(frame, free);
        }
    }

    /// The highest used frame in `start..start + count`, if any.
    fn last_used(&self, start: usize, count: usize) -> Option<usize> {
        (start..start + count)
            .rev()
            .find(|&frame| !self.is_free(frame))
    }

    /// The highest run of `count` free frames starting at a multiple of `align`. Top-down, so
    /// that low RAM, where configs put identically mapped guest memory ([`alloc_at`]), stays
    /// free as long as possible.
    fn find(&self, count: usize, align: usize) -> Option<usize> {
        let mut end = self.limit;
        loop {
            while end > 0 && self.free[(end - 1) / 64] == 0 {
                end = (end - 1) / 64 * 64;
            }
            let start = end.checked_sub(count)? / align * align;
            match self.last_used(start, count) {
                None => return Some(start),
                Some(used) => end = used,
            }
        }
    }

    fn free_count(&self) -> usize {
        self.free
            .iter()
            .map(|word| word.count_ones() as usize)
            .sum()
    }
}

fn frame_of(pa: u64) -> usize {
    (pa / PAGE_SIZE) as usize
}

/// Fills the bitmap from `info`'s memory map; see the module doc for what stays reserved.
pub fn init(info: &MultibootInfo) {
    let mut bitmap = BITMAP.lock();
    for region in info.regions().iter().filter(|r| r.kind == RAM) {
        let first = frame_of(region.start.next_multiple_of(PAGE_SIZE));
        let end = frame_of(region.end().min(MAX_PHYS) / PAGE_SIZE * PAGE_SIZE);
        if first < end {
            bitmap.set_range(first..end, true);
            bitmap.limit = bitmap.limit.max(end);
        }
    }
    let mut reserve = |start: u64, end: u64| {
        let first = frame_of(start);
        let last = frame_of(end.next_multiple_of(PAGE_SIZE));
        bitmap.set_range(first..last, false);
    };
    reserve(0, LOW_RESERVED);
    let (kernel_start, kernel_end) = kernel_range();
    reserve(kernel_start, kernel_end);
    info.reserved(reserve);
}

/// `pages` zeroed frames, contiguous; the physical address of the first, 4 KiB-aligned
/// (2 MiB-aligned when `pages` is a multiple of 512 and such a run is free), from the top of
/// RAM down. `None` when no run that long is free (or `pages` is 0).
pub fn alloc(pages: usize) -> Option<u64> {
    if pages == 0 {
        return None;
    }
    let mut bitmap = BITMAP.lock();
    let large = pages.is_multiple_of(LARGE_FRAMES);
    let start = large
        .then(|| bitmap.find(pages, LARGE_FRAMES))
        .flatten()
        .or_else(|| bitmap.find(pages, 1))?;
    bitmap.set_range(start..start + pages, false);
    drop(bitmap);
    let pa = start as u64 * PAGE_SIZE;
    zero(pa, pages);
    Some(pa)
}

/// Claims exactly the frames `phys..phys + pages * 4 KiB` (for guest RAM mapped identically),
/// zeroed. `false`, claiming nothing, when `phys` is not page-aligned or any frame is not free
/// RAM (reserved, used, or beyond the memory map).
pub fn alloc_at(phys: u64, pages: usize) -> bool {
    if !phys.is_multiple_of(PAGE_SIZE) || pages == 0 {
        return false;
    }
    let start = frame_of(phys);
    let mut bitmap = BITMAP.lock();
    let Some(end) = start.checked_add(pages).filter(|&end| end <= bitmap.limit) else {
        return false;
    };
    if bitmap.last_used(start, pages).is_some() {
        return false;
    }
    bitmap.set_range(start..end, false);
    drop(bitmap);
    zero(phys, pages);
    true
}

/// Returns frames from [`alloc()`] or [`alloc_at`]. A misaligned address, a range beyond RAM or
/// frames that are already free are reported and left alone (a bug in the caller, which must
/// not take the allocator down).
pub fn free(phys: u64, pages: usize) {
    let start = frame_of(phys);
    let mut bitmap = BITMAP.lock();
    let in_range = start
        .checked_add(pages)
        .is_some_and(|end| end <= bitmap.limit);
    if !phys.is_multiple_of(PAGE_SIZE) || !in_range {
        drop(bitmap);
        log::error!("frames::free({phys:#x}, {pages}): not a page-aligned range of RAM; ignored");
        return;
    }
    if let Some(frame) = (start..start + pages).find(|&f| bitmap.is_free(f)) {
        drop(bitmap);
        log::error!(
            "frames::free({phys:#x}, {pages}): frame {:#x} is already free; ignored",
            frame as u64 * PAGE_SIZE
        );
        return;
    }
    bitmap.set_range(start..start + pages, true);
}

/// How many frames are free now.
pub fn free_pages() -> usize {
    BITMAP.lock().free_count()
}

fn zero(pa: u64, pages: usize) {
    // SAFETY: the frames were just taken from the allocator, so nothing else uses them; RAM is
    // identity-mapped.
    unsafe { core::ptr::write_bytes(phys_to_virt(pa), 0, pages * PAGE_SIZE as usize) };
}
