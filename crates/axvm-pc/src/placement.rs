//! Where the PC boot protocols (Multiboot, PVH, Linux) put the kernel and the ramdisk, and
//! the checks that come first: every range inside one RAM region, and kernel and ramdisk
//! clear of each other. (The boot data and firmware tables then go around them:
//! [`low_memory`](crate::low_memory).)
//! Checking first means a misplaced image is refused before it is written, and `axvm check`
//! can give the same answer without a VM.

use alloc::format;
use alloc::vec::Vec;

use axvm::{AxVM, AxVMConfig, AxVMHal, ConfigError, GuestPhysAddr, MappingFlags};

use crate::elf::Segment;
use crate::layout::HIGH_MEMORY_START;
/// The field that names an explicit ramdisk address.
const RAMDISK_ADDR_FIELD: &str = "kernel.ramdisk_load_addr";
/// The field that names the ramdisk image.
const RAMDISK_FIELD: &str = "kernel.ramdisk_path";
/// 4 GiB: the 32-bit protocols pass addresses in 32-bit fields.
pub const FOUR_GIB: u64 = 1 << 32;
const PAGE: u64 = 0x1000;

/// Where the ramdisk went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamdiskPlacement {
    /// Its first byte.
    pub gpa: GuestPhysAddr,
    /// Its length in bytes.
    pub size: u64,
}

/// Where a ramdisk of `size` bytes goes: at `kernel.ramdisk_load_addr` when the config gives
/// it (checked), otherwise page-aligned as high as possible in RAM between 1 MiB and
/// `limit` (exclusive; at most 4 GiB), below the kernel's segments where they are in the
/// way, as QEMU places an initrd.
pub fn place_ramdisk(
    config: &AxVMConfig,
    size: u64,
    kernel: &[Segment],
    limit: u64,
) -> Result<GuestPhysAddr, ConfigError> {
    let limit = limit.min(FOUR_GIB);
    match config.image_config.ramdisk_load_gpa {
        Some(gpa) => check_ramdisk_at(config, gpa.as_u64(), size, kernel, limit).map(|()| gpa),
        None => highest_free(config, size, kernel, limit)
            .map(GuestPhysAddr::new)
            .ok_or_else(|| {
                ConfigError::invalid(
                    RAMDISK_FIELD,
                    format!("no RAM between 1 MiB and {limit:#x} has room for the {size:#x}-byte ramdisk beside the kernel; add memory or set kernel.ramdisk_load_addr"),
                )
            }),
    }
}

/// Where the ramdisk (if there is one) goes, checked against RAM and `kernel`, before
/// anything is written.
pub fn plan_ramdisk(
    config: &AxVMConfig,
    ramdisk: Option<&[u8]>,
    kernel: &[Segment],
    limit: u64,
) -> Result<Option<RamdiskPlacement>, ConfigError> {
    ramdisk
        .map(|ramdisk| {
            let size = ramdisk.len() as u64;
            place_ramdisk(config, size, kernel, limit).map(|gpa| RamdiskPlacement { gpa, size })
        })
        .transpose()
}

/// Copies the ramdisk where [`plan_ramdisk`] put it.
pub fn copy_ramdisk<H: AxVMHal>(
    vm: &AxVM<H>,
    ramdisk: Option<&[u8]>,
    placement: Option<RamdiskPlacement>,
) -> Result<(), ConfigError> {
    let (Some(ramdisk), Some(placement)) = (ramdisk, placement) else {
        return Ok(());
    };
    vm.memory().write(placement.gpa, ramdisk).map_err(|err| {
        ConfigError::invalid(RAMDISK_FIELD, format!("cannot copy the ramdisk: {err}"))
    })?;
    log::debug!("ramdisk at {}, {:#x} bytes", placement.gpa, placement.size);
    Ok(())
}

fn check_ramdisk_at(
    config: &AxVMConfig,
    gpa: u64,
    size: u64,
    kernel: &[Segment],
    limit: u64,
) -> Result<(), ConfigError> {
    config.check_image_fits(RAMDISK_ADDR_FIELD, GuestPhysAddr::new(gpa), size)?;
    if gpa.saturating_add(size) > limit {
        return Err(ConfigError::invalid(
            RAMDISK_ADDR_FIELD,
            format!("the ramdisk at {gpa:#x}+{size:#x} must end at or below {limit:#x}, the highest address this kernel accepts"),
        ));
    }
    if let Some(segment) = kernel
        .iter()
        .find(|s| overlaps(gpa, size, s.paddr, s.memsz))
    {
        return Err(ConfigError::invalid(
            RAMDISK_ADDR_FIELD,
            format!(
                "the ramdisk at {gpa:#x}+{size:#x} overlaps the kernel at {:#x}+{:#x}; move one of them",
                segment.paddr, segment.memsz
            ),
        ));
    }
    Ok(())
}

/// The highest page-aligned address in one writable region, between 1 MiB and `limit`,
/// where `size` bytes overlap no kernel segment.
fn highest_free(config: &AxVMConfig, size: u64, kernel: &[Segment], limit: u64) -> Option<u64> {
    let mut regions: Vec<_> = config
        .memory_regions
        .iter()
        .filter(|region| region.flags.contains(MappingFlags::WRITE))
        .collect();
    regions.sort_by_key(|region| core::cmp::Reverse(region.gpa));
    regions.into_iter().find_map(|region| {
        let floor = region.gpa.as_u64().max(HIGH_MEMORY_START);
        let mut top = region.end().as_u64().min(limit);
        loop {
            let at = top.checked_sub(size)? & !(PAGE - 1);
            if at < floor {
                return None;
            }
            let blocking = kernel
                .iter()
                .filter(|s| overlaps(at, size, s.paddr, s.memsz))
                .map(|s| s.paddr)
                .min();
            match blocking {
                None => return Some(at),
                Some(start) => top = start,
            }
        }
    })
}

/// Whether `[a, a + a_len)` and `[b, b + b_len)` share an address.
pub fn overlaps(a: u64, a_len: u64, b: u64, b_len: u64) -> bool {
    a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use axvm::{VmMemConfig, VmMemMappingType};

    fn config(ram: u64) -> AxVMConfig {
        let mut config = AxVMConfig::new("placement", 1);
        config.memory_regions.push(VmMemConfig {
            gpa: GuestPhysAddr::new(0),
            size: ram,
            flags: MappingFlags::READ | MappingFlags::WRITE,
            map_type: VmMemMappingType::MapAlloc,
        });
        config
    }

    fn segment(paddr: u64, memsz: u64) -> Segment {
        Segment {
            paddr,
            vaddr: paddr,
            offset: 0,
            filesz: 0,
            memsz,
        }
    }

    #[test]
    fn ramdisk_goes_page_aligned_at_the_top_of_ram_below_the_limit() {
        let config = config(0x800_0000);
        let at = place_ramdisk(&config, 0x1800, &[], u64::MAX).unwrap();
        assert_eq!(at, GuestPhysAddr::new(0x7ff_e000));
        let at = place_ramdisk(&config, 0x1000, &[], 0x400_0000).unwrap();
        assert_eq!(at, GuestPhysAddr::new(0x3ff_f000));
    }

    #[test]
    fn ramdisk_moves_below_a_kernel_in_the_way() {
        let config = config(0x100_0000);
        let kernel = [segment(0xf0_0000, 0x8_0000)];
        let at = place_ramdisk(&config, 0x20_0000, &kernel, u64::MAX).unwrap();
        assert_eq!(at, GuestPhysAddr::new(0xd0_0000));
        let err = place_ramdisk(&config, 0xf0_0000, &kernel, u64::MAX).unwrap_err();
        assert_eq!(err.field(), Some(RAMDISK_FIELD));
    }

    #[test]
    fn explicit_ramdisk_address_is_checked() {
        let mut config = config(0x100_0000);
        config.image_config.ramdisk_load_gpa = Some(GuestPhysAddr::new(0x20_0000));
        let kernel = [segment(0x10_0000, 0x10_1000)];
        let err = place_ramdisk(&config, 0x1000, &kernel, u64::MAX).unwrap_err();
        assert_eq!(err.field(), Some(RAMDISK_ADDR_FIELD));
        assert!(err.to_string().contains("overlaps the kernel"), "{err}");
        // Low memory is the ramdisk's if the config says so: the boot data moves.
        config.image_config.ramdisk_load_gpa = Some(GuestPhysAddr::new(0x9_0000));
        let at = place_ramdisk(&config, 0x1000, &[], u64::MAX).unwrap();
        assert_eq!(at, GuestPhysAddr::new(0x9_0000));
    }
}
