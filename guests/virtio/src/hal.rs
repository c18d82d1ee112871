//! What virtio-drivers needs from the platform: DMA memory and address
//! translation ([`GuestHal`]), and a heap (the console driver boxes its
//! receive buffer, indirect descriptor lists are boxed too).
//!
//! Guest memory is identity-mapped by rt's 32-bit entry (the low 4 GiB, 2 MiB
//! pages), so a physical address is the virtual one and sharing a buffer with
//! a device is just naming its address. Both pools are static arrays in
//! `.bss` (zeroed by the entry) handed out by bump allocators that never
//! free: the guest sets its devices up once and exits, so nothing is worth
//! reusing, and never reusing memory keeps the "allocations are zeroed"
//! promise of [`Hal::dma_alloc`] without clearing anything.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use virtio_drivers::{BufferDirection, Hal, PhysAddr, PAGE_SIZE};

/// Pages of DMA memory: a queue takes two (one with descriptors and the
/// driver ring, one with the device ring), so this covers a dozen devices.
const DMA_PAGES: usize = 32;
/// Bytes of heap.
const HEAP_BYTES: usize = 64 * 1024;

/// A page-aligned static byte pool, shared by address only.
#[repr(C, align(4096))]
struct Pool<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: the pool's bytes are only reached through the disjoint ranges the
// bump allocators hand out.
unsafe impl<const N: usize> Sync for Pool<N> {}

impl<const N: usize> Pool<N> {
    const fn new() -> Self {
        Pool(UnsafeCell::new([0; N]))
    }

    fn base(&self) -> usize {
        self.0.get() as usize
    }
}

static DMA_POOL: Pool<{ DMA_PAGES * PAGE_SIZE }> = Pool::new();
/// Pages of [`DMA_POOL`] handed out so far.
static DMA_USED: AtomicUsize = AtomicUsize::new(0);

static HEAP: Pool<HEAP_BYTES> = Pool::new();
/// Bytes of [`HEAP`] handed out so far.
static HEAP_USED: AtomicUsize = AtomicUsize::new(0);

/// Takes `amount` units from a bump counter bounded by `limit`, with the
/// start aligned by `align_to`; returns the start, or `None` when full.
fn bump(
    used: &AtomicUsize,
    amount: usize,
    limit: usize,
    align_to: impl Fn(usize) -> usize,
) -> Option<usize> {
    let mut start = 0;
    used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
        start = align_to(now);
        start.checked_add(amount).filter(|&end| end <= limit)
    })
    .ok()?;
    Some(start)
}

/// Identity-mapped guest memory as virtio-drivers' [`Hal`].
pub struct GuestHal;

// SAFETY: `dma_alloc` returns page-aligned, zeroed (never handed out before,
// zeroed with .bss), exclusively owned memory; physical = virtual addresses
// (identity mapping), so the device and the driver see the same bytes.
unsafe impl Hal for GuestHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let Some(first) = bump(&DMA_USED, pages, DMA_PAGES, |n| n) else {
            // virtio-drivers turns a zero address into Error::DmaError.
            return (0, NonNull::dangling());
        };
        let addr = DMA_POOL.base() + first * PAGE_SIZE;
        // The pool is a static, never at address 0.
        let ptr = NonNull::new(addr as *mut u8).unwrap_or(NonNull::dangling());
        (addr as PhysAddr, ptr)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, _vaddr: NonNull<u8>, _pages: usize) -> i32 {
        // Never reused (see the module doc); 0 is success.
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as usize as *mut u8).unwrap_or(NonNull::dangling())
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        // Identity mapping, and no cache maintenance on x86: the device reads
        // the buffer where it is.
        buffer.cast::<u8>().as_ptr() as usize as PhysAddr
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// A bump heap over [`HEAP`]; `dealloc` does nothing.
struct BumpHeap;

// SAFETY: every allocation is a distinct, suitably aligned range of HEAP;
// exhaustion returns null as GlobalAlloc requires.
unsafe impl GlobalAlloc for BumpHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let base = HEAP.base();
        let align = layout.align();
        let aligned = |used: usize| (base + used).next_multiple_of(align) - base;
        match bump(&HEAP_USED, layout.size(), HEAP_BYTES, aligned) {
            Some(offset) => (base + offset) as *mut u8,
            None => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, _ptr: *mut u8, _layout: Layout) {}
}

#[global_allocator]
static ALLOCATOR: BumpHeap = BumpHeap;
