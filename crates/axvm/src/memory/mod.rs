//! Guest memory: the regions of guest RAM, and safe access to them from the VMM.
//!
//! Every accessor checks that the whole range lies inside one mapped region before it
//! touches host memory: a guest-controlled address or length can never make axvm read or
//! write outside guest RAM, and a copy never runs past the caller's buffer.

mod passthrough;
mod region;
mod volatile;

use alloc::vec::Vec;
use core::marker::PhantomData;
use core::sync::atomic::{AtomicBool, Ordering};

pub use passthrough::{merge_pass_through, PassThroughRange};
pub(crate) use region::{map_region, release_memory};
pub use region::{GuestRegion, RegionOutcome};

use crate::{GuestMemoryError, GuestPhysAddr, MappingFlags};

/// Plain data that any byte pattern is a valid value of, so it can be read from guest
/// memory the guest may have filled with anything.
///
/// # Safety
/// Implement only for types without padding, references, or invalid bit patterns.
pub unsafe trait GuestPod: Copy + Default {}

macro_rules! guest_pod {
    ($($t:ty),*) => { $( unsafe impl GuestPod for $t {} )* };
}
guest_pod!(u8, u16, u32, u64, u128, i8, i16, i32, i64, i128, usize, isize);
unsafe impl<const N: usize> GuestPod for [u8; N] where [u8; N]: Default {}

/// The RAM of one VM, as regions sorted by guest-physical address.
pub struct GuestMemory {
    regions: Vec<GuestRegion>,
    rom_write_reported: AtomicBool,
}

impl GuestMemory {
    /// Guest memory made of `regions` (any order; they must not overlap, which
    /// [`AxVMConfig::validate`](crate::AxVMConfig::validate) guarantees).
    pub(crate) fn new(mut regions: Vec<GuestRegion>) -> Self {
        regions.sort_by_key(|region| region.gpa());
        Self {
            regions,
            rom_write_reported: AtomicBool::new(false),
        }
    }

    /// Guest memory over host memory the caller owns, for fuzzing and tests of the
    /// accessors without a host: `regions` as [`new`](Self::new) takes them.
    ///
    /// # Safety
    /// Each region's `hva` must be valid for reads and writes of its `size` bytes for as
    /// long as the returned value lives, and the regions must not overlap.
    #[doc(hidden)]
    pub unsafe fn from_host_regions(regions: Vec<GuestRegion>) -> Self {
        Self::new(regions)
    }

    /// The regions, sorted by guest-physical address.
    pub fn regions(&self) -> &[GuestRegion] {
        &self.regions
    }

    /// The region holding `gpa`, if any.
    pub fn region_of(&self, gpa: GuestPhysAddr) -> Option<&GuestRegion> {
        let index = self.regions.partition_point(|region| region.end() <= gpa);
        self.regions.get(index).filter(|region| region.gpa() <= gpa)
    }

    /// A view of `len` bytes of guest RAM at `gpa`: the seed's `translated_byte_buffer`.
    ///
    /// The range must lie inside one region: a range that runs past a region's end is
    /// refused even when the next region starts right there, because the two are separate
    /// host allocations.
    pub fn translated_byte_buffer(
        &self,
        gpa: GuestPhysAddr,
        len: usize,
    ) -> Result<GuestSlice<'_>, GuestMemoryError> {
        let len64 = len as u64;
        let region = self
            .region_of(gpa)
            .ok_or(GuestMemoryError::NotMapped { gpa, len: len64 })?;
        let offset = gpa.as_u64() - region.gpa().as_u64();
        if len64 > region.size() - offset {
            return Err(GuestMemoryError::CrossesRegionEnd {
                gpa,
                len: len64,
                region_end: region.end(),
            });
        }
        Ok(GuestSlice {
            gpa,
            ptr: (region.hva.as_u64() + offset) as *mut u8,
            len,
            _memory: PhantomData,
        })
    }

    /// Copies guest RAM at `gpa` into `buf` (all of it, or nothing).
    pub fn read(&self, gpa: GuestPhysAddr, buf: &mut [u8]) -> Result<(), GuestMemoryError> {
        self.translated_byte_buffer(gpa, buf.len())?.read(0, buf);
        Ok(())
    }

    /// Copies `data` into guest RAM at `gpa` (all of it, or nothing).
    pub fn write(&self, gpa: GuestPhysAddr, data: &[u8]) -> Result<(), GuestMemoryError> {
        self.translated_byte_buffer(gpa, data.len())?.write(0, data);
        Ok(())
    }

    /// Reads a `T` from guest RAM at `gpa` (little-endian, as the guest stored it).
    pub fn read_from_guest_of<T: GuestPod>(
        &self,
        gpa: GuestPhysAddr,
    ) -> Result<T, GuestMemoryError> {
        let mut value = T::default();
        // SAFETY: GuestPod types are plain bytes; the slice covers exactly `value`.
        let bytes = unsafe {
            core::slice::from_raw_parts_mut(
                &mut value as *mut T as *mut u8,
                core::mem::size_of::<T>(),
            )
        };
        self.read(gpa, bytes)?;
        Ok(value)
    }

    /// Writes `value` to guest RAM at `gpa`.
    pub fn write_to_guest_of<T: GuestPod>(
        &self,
        gpa: GuestPhysAddr,
        value: &T,
    ) -> Result<(), GuestMemoryError> {
        // SAFETY: GuestPod types are plain bytes without padding.
        let bytes = unsafe {
            core::slice::from_raw_parts(value as *const T as *const u8, core::mem::size_of::<T>())
        };
        self.write(gpa, bytes)
    }

    /// Handles a nested page fault at `gpa`: `true` when the access is resolved.
    ///
    /// A write to a region without WRITE is a write to ROM, which real hardware drops: it is
    /// ignored, and reported once per VM. Anything else is not a RAM matter.
    pub(crate) fn handle_page_fault(&self, gpa: GuestPhysAddr, access: MappingFlags) -> bool {
        let Some(region) = self.region_of(gpa) else {
            return false;
        };
        let is_rom_write = access.contains(MappingFlags::WRITE) && !region.is_writable();
        if is_rom_write && !self.rom_write_reported.swap(true, Ordering::Relaxed) {
            log::warn!(
                "guest wrote read-only memory at {gpa} (region {}..{}, flags {}); the write is ignored, as ROM ignores writes",
                region.gpa(),
                region.end(),
                region.flags()
            );
        }
        is_rom_write
    }
}

/// A checked range of guest RAM, valid while the VM lives.
///
/// It hands out copies rather than `&mut [u8]`: running vCPUs may change guest memory at any
/// moment, and a Rust reference would promise that nothing does. For the same reason the
/// copies are volatile, not `memcpy`.
pub struct GuestSlice<'a> {
    gpa: GuestPhysAddr,
    ptr: *mut u8,
    len: usize,
    _memory: PhantomData<&'a GuestMemory>,
}

impl GuestSlice<'_> {
    /// Guest-physical start.
    pub fn gpa(&self) -> GuestPhysAddr {
        self.gpa
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Host address of the first byte, for handing to host I/O (e.g. a `read(2)` into guest
    /// memory). Valid for [`len`](Self::len) bytes while the VM lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// Copies bytes from `offset` into `buf`; copies only what lies inside the slice and
    /// returns how many bytes that was.
    ///
    /// Running vCPUs may write the memory meanwhile: the copy uses volatile, naturally
    /// aligned accesses as wide as a machine word, so every aligned value of up to 8 bytes
    /// (4 on 32-bit hosts) is read whole, never torn (see `memory/volatile.rs`).
    pub fn read(&self, offset: usize, buf: &mut [u8]) -> usize {
        let count = buf.len().min(self.len.saturating_sub(offset));
        if count == 0 {
            return 0;
        }
        // SAFETY: `offset + count <= len`, and the slice lies inside mapped guest RAM.
        unsafe { volatile::read_from_guest(self.ptr.add(offset), &mut buf[..count]) };
        count
    }

    /// Copies `data` to `offset`; copies only what fits inside the slice and returns how many
    /// bytes that was.
    ///
    /// Like [`read`](Self::read), with volatile aligned accesses: a vCPU reading an aligned
    /// value of up to a word meanwhile sees it old or new, never half written.
    pub fn write(&self, offset: usize, data: &[u8]) -> usize {
        let count = data.len().min(self.len.saturating_sub(offset));
        if count == 0 {
            return 0;
        }
        // SAFETY: `offset + count <= len`, and the slice lies inside mapped guest RAM.
        unsafe { volatile::write_to_guest(&data[..count], self.ptr.add(offset)) };
        count
    }
}
