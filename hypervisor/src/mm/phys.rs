//! Reading boot data (the Multiboot info block, ACPI tables) by physical address. The data is
//! firmware's or the loader's and may be unaligned, so every read is unaligned and volatile.

use super::phys_to_virt;

/// Reads the byte at `pa`.
pub fn read_u8(pa: u64) -> u8 {
    // SAFETY: `pa` is identity-mapped (low 4 GiB or RAM); callers read firmware and loader data.
    unsafe { core::ptr::read_volatile(phys_to_virt(pa)) }
}

/// Reads the little-endian u16 at `pa`.
pub fn read_u16(pa: u64) -> u16 {
    // SAFETY: as in `read_u8`.
    unsafe { core::ptr::read_unaligned(phys_to_virt(pa).cast::<u16>()) }
}

/// Reads the little-endian u32 at `pa`.
pub fn read_u32(pa: u64) -> u32 {
    // SAFETY: as in `read_u8`.
    unsafe { core::ptr::read_unaligned(phys_to_virt(pa).cast::<u32>()) }
}

/// Reads the little-endian u64 at `pa`.
pub fn read_u64(pa: u64) -> u64 {
    // SAFETY: as in `read_u8`.
    unsafe { core::ptr::read_unaligned(phys_to_virt(pa).cast::<u64>()) }
}
