//! A vm-memory view of axvm's guest RAM, so rust-vmm loaders (linux-loader) can write images
//! into it and virtio devices can reach the driver's buffers.

use axvm::memory::GuestMemory;
use vm_memory::{GuestAddress, GuestMemoryMmap, GuestRegionMmap, MmapRegion};

/// A `GuestMemoryMmap` over the same host memory as `memory`; it does not own the memory.
/// Used while the VM (which owns the memory) lives: for a load, and by the virtio devices
/// until their thread is stopped, which `KvmVm` does before the VM can go.
pub(crate) fn vm_memory_view(memory: &GuestMemory) -> Result<GuestMemoryMmap, String> {
    let regions = memory
        .regions()
        .iter()
        .map(|region| {
            let size =
                usize::try_from(region.size()).map_err(|_| "region too large".to_string())?;
            // SAFETY: the region is a live read-write mapping of `size` bytes owned by the VM,
            // which outlives this view; build_raw does not take ownership (no munmap on drop).
            let mapping = unsafe {
                MmapRegion::build_raw(
                    region.hva.as_u64() as *mut u8,
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_ANONYMOUS | libc::MAP_PRIVATE,
                )
            }
            .map_err(|e| format!("cannot describe guest memory at {}: {e}", region.gpa()))?;
            GuestRegionMmap::new(mapping, GuestAddress(region.gpa().as_u64()))
                .ok_or_else(|| format!("guest memory at {} wraps the address space", region.gpa()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    GuestMemoryMmap::from_regions(regions).map_err(|e| format!("cannot describe guest memory: {e}"))
}
