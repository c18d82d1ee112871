//! A host memory for unit tests: a fixed array of 4 KiB-aligned pages standing at made-up
//! host-physical addresses, allocated in order (so consecutive allocations are contiguous).

use alloc::vec::Vec;
use core::ptr::NonNull;

use super::HostMemory;
use crate::npt::PageTableMemory;

/// Where the fake host-physical memory starts.
pub(crate) const FAKE_HPA_BASE: u64 = 0x4000_0000;

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; 4096]);

/// Pages in one vector that never grows (pointers into it stay valid).
pub(crate) struct FakeHostMemory {
    /// Owns the pages; only reached through `base` after construction, so that every
    /// pointer handed out shares one provenance.
    _pages: Vec<Page>,
    base: *mut u8,
    capacity: usize,
    used: usize,
}

impl FakeHostMemory {
    /// Room for `capacity` pages.
    pub(crate) fn new(capacity: usize) -> Self {
        let mut pages = alloc::vec![Page([0; 4096]); capacity];
        let base = pages.as_mut_ptr().cast::<u8>();
        Self {
            _pages: pages,
            base,
            capacity,
            used: 0,
        }
    }

    fn offset(&self, hpa: u64, len: usize) -> Option<usize> {
        let offset = usize::try_from(hpa.checked_sub(FAKE_HPA_BASE)?).ok()?;
        (offset.checked_add(len)? <= self.used * 4096).then_some(offset)
    }

    /// The bytes at `hpa` (panics outside the allocated pages: tests only).
    pub(crate) fn bytes(&self, hpa: u64, len: usize) -> &[u8] {
        let offset = self.offset(hpa, len).expect("allocated memory");
        // SAFETY: `offset + len` lies within the allocated pages (checked above).
        unsafe { core::slice::from_raw_parts(self.base().add(offset), len) }
    }

    /// Writes `data` at `hpa` (panics outside the allocated pages: tests only).
    pub(crate) fn write(&mut self, hpa: u64, data: &[u8]) {
        let offset = self.offset(hpa, data.len()).expect("allocated memory");
        // SAFETY: as in `bytes`, and we hold `&mut self`.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(offset), data.len()) };
    }

    fn base(&self) -> *const u8 {
        self.base
    }
}

impl PageTableMemory for FakeHostMemory {
    fn alloc_zeroed_page(&mut self) -> Option<u64> {
        self.alloc_zeroed_contiguous(1)
    }

    fn table(&self, host_phys: u64) -> Option<&[u64; 512]> {
        let offset = self.offset(host_phys, 4096).filter(|o| o % 4096 == 0)?;
        // SAFETY: a whole allocated, 4 KiB-aligned page; u64 needs 8-byte alignment.
        Some(unsafe { &*self.base().add(offset).cast::<[u64; 512]>() })
    }

    fn table_mut(&mut self, host_phys: u64) -> Option<&mut [u64; 512]> {
        let offset = self.offset(host_phys, 4096).filter(|o| o % 4096 == 0)?;
        // SAFETY: as in `table`, and we hold `&mut self`.
        Some(unsafe { &mut *self.base.add(offset).cast::<[u64; 512]>() })
    }
}

// SAFETY: the raw base pointer is only used by the owner (tests run single-threaded
// per value).
unsafe impl Send for FakeHostMemory {}

// SAFETY: pointers are into `pages`, which never reallocates, and pages are handed out once.
unsafe impl HostMemory for FakeHostMemory {
    fn alloc_zeroed_contiguous(&mut self, pages: usize) -> Option<u64> {
        let first = self.used;
        if pages == 0 || first + pages > self.capacity {
            return None;
        }
        self.used += pages;
        Some(FAKE_HPA_BASE + first as u64 * 4096)
    }

    fn phys_to_virt(&self, hpa: u64, len: usize) -> Option<NonNull<u8>> {
        let offset = self.offset(hpa, len)?;
        // SAFETY: within the vector's buffer (checked by `offset`).
        NonNull::new(unsafe { self.base.add(offset) })
    }
}
