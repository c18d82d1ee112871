//! What the backend needs from the host kernel's memory beyond the page-table frames of
//! [`PageTableMemory`]: contiguous zeroed pages (the permission maps), and reaching any
//! host-physical address by pointer (the VMCB, guest RAM for instruction fetches).

use core::ptr::NonNull;

use crate::iopm::{IoPermissionMap, IOPM_SIZE};
use crate::msrpm::{MsrPermissionMap, MSRPM_SIZE};
use crate::npt::{NestedPageTables, PageTableMemory};

/// The host kernel's memory, as the vCPU uses it.
///
/// Its [`PageTableMemory`] part must reach the frames of the VM's nested page tables too
/// (a kernel that identity-maps RAM simply reaches every frame).
///
/// # Safety
///
/// [`phys_to_virt`](Self::phys_to_virt) must return either `None` or a pointer through
/// which `len` bytes of host-physical memory at `hpa` can be read and written for as long
/// as the implementing value lives, and the frames that the allocation methods return must
/// belong to the caller alone. The backend dereferences these pointers.
pub unsafe trait HostMemory: PageTableMemory {
    /// Allocates `pages` physically contiguous zeroed 4 KiB pages and returns the first
    /// one's host-physical address (4 KiB-aligned), or `None` when memory ran out.
    fn alloc_zeroed_contiguous(&mut self, pages: usize) -> Option<u64>;

    /// Where the kernel reaches `len` bytes of host-physical memory at `hpa`, or `None`
    /// when that is not memory it can reach.
    fn phys_to_virt(&self, hpa: u64, len: usize) -> Option<NonNull<u8>>;
}

/// Why host memory could not be set up or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostMemoryError {
    /// An allocation failed.
    #[error("out of host memory allocating {pages} page(s) for the {what}")]
    OutOfMemory {
        /// What the pages were for.
        what: &'static str,
        /// How many pages.
        pages: usize,
    },
    /// An address the kernel cannot reach or that is misaligned.
    #[error("the {what} at host-physical {hpa:#x} is not reachable through HostMemory::phys_to_virt or is misaligned")]
    Unreachable {
        /// What should be there.
        what: &'static str,
        /// Its address.
        hpa: u64,
    },
}

/// The physical addresses of a VM's I/O and MSR permission maps, shared by its vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PermissionMaps {
    /// The IOPM (three contiguous pages).
    pub iopm_pa: u64,
    /// The MSRPM (two contiguous pages).
    pub msrpm_pa: u64,
}

impl PermissionMaps {
    /// Copies `iopm` and `msrpm` into freshly allocated contiguous pages.
    pub fn install(
        memory: &mut impl HostMemory,
        iopm: &IoPermissionMap,
        msrpm: &MsrPermissionMap,
    ) -> Result<Self, HostMemoryError> {
        let iopm_pa = copy_to_new_pages(memory, iopm.as_bytes(), "I/O permission map")?;
        let msrpm_pa = copy_to_new_pages(memory, msrpm.as_bytes(), "MSR permission map")?;
        Ok(Self { iopm_pa, msrpm_pa })
    }
}

/// The I/O permission map a VM starts with: every port exits (every device is emulated).
pub fn default_iopm() -> IoPermissionMap {
    IoPermissionMap::intercept_all()
}

/// The MSRs the guest reaches directly: those `VMLOAD`/`VMSAVE` switch between host and
/// guest (FS/GS bases, KernelGSbase, the SYSCALL and SYSENTER MSRs), and PAT, which with
/// nested paging is the guest's own G_PAT. Every other MSR exits; EFER is answered by the
/// backend itself (the guest's EFER.SVME must stay set for `VMRUN`, and is hidden from it).
pub const PASS_THROUGH_MSRS: [u32; 11] = [
    0xc000_0100, // FS.base
    0xc000_0101, // GS.base
    0xc000_0102, // KernelGSbase
    0xc000_0081, // STAR
    0xc000_0082, // LSTAR
    0xc000_0083, // CSTAR
    0xc000_0084, // SFMASK
    0x174,       // SYSENTER_CS
    0x175,       // SYSENTER_ESP
    0x176,       // SYSENTER_EIP
    0x277,       // PAT (G_PAT under nested paging)
];

/// The MSR permission map a VM starts with: everything exits except [`PASS_THROUGH_MSRS`].
pub fn default_msrpm() -> MsrPermissionMap {
    let mut map = MsrPermissionMap::intercept_all();
    for msr in PASS_THROUGH_MSRS {
        // Every listed MSR lies inside the map's ranges (tested), so this cannot fail.
        let _ = map.set(msr, false, false);
    }
    map
}

fn copy_to_new_pages(
    memory: &mut impl HostMemory,
    bytes: &[u8],
    what: &'static str,
) -> Result<u64, HostMemoryError> {
    let pages = bytes.len().div_ceil(0x1000);
    let hpa = memory
        .alloc_zeroed_contiguous(pages)
        .ok_or(HostMemoryError::OutOfMemory { what, pages })?;
    let target = memory
        .phys_to_virt(hpa, bytes.len())
        .filter(|_| hpa % 0x1000 == 0)
        .ok_or(HostMemoryError::Unreachable { what, hpa })?;
    // SAFETY: `phys_to_virt` promises `bytes.len()` writable bytes at `target`, in pages
    // just allocated for us, so they cannot overlap `bytes`.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), target.as_ptr(), bytes.len()) };
    Ok(hpa)
}

/// Reads `buf.len()` bytes of guest-physical memory at `gpa` (within one 4 KiB page)
/// through the nested page tables; `None` when the page is not guest RAM.
pub(crate) fn read_guest_phys(
    memory: &impl HostMemory,
    npt: &NestedPageTables,
    gpa: u64,
    buf: &mut [u8],
) -> Option<()> {
    let offset = (gpa % 0x1000) as usize;
    if offset + buf.len() > 0x1000 {
        return None;
    }
    let hpa = npt.translate(memory, gpa)?.hpa;
    let source = memory.phys_to_virt(hpa, buf.len())?;
    // SAFETY: `phys_to_virt` promises `buf.len()` readable bytes at `source`; guest RAM is
    // never the host's own buffer.
    unsafe { core::ptr::copy_nonoverlapping(source.as_ptr(), buf.as_mut_ptr(), buf.len()) };
    Some(())
}

/// Compile-time check that the map sizes are whole pages.
const _: () = assert!(IOPM_SIZE % 0x1000 == 0 && MSRPM_SIZE % 0x1000 == 0);

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests {
    use super::*;
    use testing::FakeHostMemory;

    #[test]
    fn the_maps_are_copied_into_contiguous_pages() {
        let mut memory = FakeHostMemory::new(64);
        let maps = PermissionMaps::install(&mut memory, &default_iopm(), &default_msrpm())
            .expect("room for five pages");
        assert_eq!(maps.iopm_pa % 0x1000, 0);
        assert_eq!(maps.msrpm_pa % 0x1000, 0);
        assert!(memory
            .bytes(maps.iopm_pa, IOPM_SIZE)
            .iter()
            .all(|&b| b == 0xff));
        let msrpm = memory.bytes(maps.msrpm_pa, MSRPM_SIZE);
        assert_eq!(msrpm, default_msrpm().as_bytes().as_slice());
    }

    #[test]
    fn the_default_msrpm_passes_through_only_the_switched_msrs() {
        let map = default_msrpm();
        for msr in PASS_THROUGH_MSRS {
            assert_eq!(map.intercepts(msr), (false, false), "{msr:#x}");
        }
        for msr in [0xc000_0080, 0x10, 0x1b, 0xc001_0114, 0x40_0000_u32] {
            assert_eq!(map.intercepts(msr), (true, true), "{msr:#x}");
        }
    }

    #[test]
    fn running_out_of_pages_names_the_map() {
        let mut memory = FakeHostMemory::new(2);
        let err =
            PermissionMaps::install(&mut memory, &default_iopm(), &default_msrpm()).unwrap_err();
        assert_eq!(
            err,
            HostMemoryError::OutOfMemory {
                what: "I/O permission map",
                pages: 3
            }
        );
    }
}
