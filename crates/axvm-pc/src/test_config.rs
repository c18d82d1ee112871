//! A config helper for the crate's unit tests.

use axvm::{AxVMConfig, GuestPhysAddr, MappingFlags, VmMemConfig, VmMemMappingType};

/// A config with `cpus` vCPUs and the memory `regions` (gpa, size, flags).
pub(crate) fn config(cpus: usize, regions: &[(u64, u64, u64)]) -> AxVMConfig {
    let mut config = AxVMConfig::new("devices", cpus);
    for &(gpa, size, flags) in regions {
        config.memory_regions.push(VmMemConfig {
            gpa: GuestPhysAddr::new(gpa),
            size,
            flags: MappingFlags::from_bits(flags).expect("valid flags"),
            map_type: VmMemMappingType::MapAlloc,
        });
    }
    config
}
