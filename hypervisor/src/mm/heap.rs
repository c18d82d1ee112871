//! The kernel heap: one contiguous block of frames handed to `linked_list_allocator`, which
//! serves `alloc` (the axvm core's `Vec`s and `Box`es, the TOML parser).

use linked_list_allocator::LockedHeap;

use super::{frames, phys_to_virt, PAGE_SIZE};

/// The heap's size: the VM side keeps configs, device state and decoded images here; guest RAM
/// comes from [`frames`] directly.
pub const HEAP_SIZE: u64 = 8 << 20;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Takes [`HEAP_SIZE`] bytes of frames for the heap. Panics (the kernel cannot go on) when the
/// machine has less free RAM than that.
pub fn init() {
    let pages = (HEAP_SIZE / PAGE_SIZE) as usize;
    let Some(base) = frames::alloc(pages) else {
        panic!(
            "no {} MiB of contiguous free RAM for the kernel heap: give QEMU more memory (-m)",
            HEAP_SIZE >> 20
        );
    };
    // SAFETY: the frames are ours for good, identity-mapped and zeroed.
    unsafe { HEAP.lock().init(phys_to_virt(base), HEAP_SIZE as usize) };
}
