//! Physical memory: the frame allocator ([`frames`]), the kernel's page tables ([`paging`]),
//! the heap ([`heap`]) and the physical/virtual address conversions.
//!
//! The kernel identity-maps physical memory (virtual = physical) for all RAM and the low
//! 4 GiB, so the conversions are the identity today; callers still go through them so that a
//! different layout later changes only this file.

pub mod check;
pub mod frames;
pub mod heap;
pub mod paging;
pub mod phys;

use crate::boot::multiboot::MultibootInfo;

/// The size of a page (and of a frame).
pub const PAGE_SIZE: u64 = 4096;
/// The size of a large page.
pub const LARGE_PAGE_SIZE: u64 = 2 << 20;

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// The kernel image's physical range, `.bss` included.
pub fn kernel_range() -> (u64, u64) {
    (
        virt_to_phys(core::ptr::addr_of!(__kernel_start)),
        virt_to_phys(core::ptr::addr_of!(__kernel_end)),
    )
}

/// The kernel's pointer to physical address `pa`.
pub fn phys_to_virt(pa: u64) -> *mut u8 {
    pa as usize as *mut u8
}

/// The physical address of the kernel pointer `va`.
pub fn virt_to_phys(va: *const u8) -> u64 {
    va as usize as u64
}

/// Brings up memory management on the BSP: frames from the memory map (minus the low 1 MiB,
/// the kernel and the loader's data), the final page tables, the heap.
pub fn init(info: &MultibootInfo) {
    frames::init(info);
    paging::init(info.regions());
    heap::init();
}
