//! Giving each configured memory region its host memory, per its mapping type.

use alloc::format;
use alloc::string::String;
use core::fmt;

use crate::{
    AxVMError, AxVMHal, AxVMResult, GuestPhysAddr, HostPhysAddr, HostVirtAddr, MappingFlags,
    VmMemConfig, VmMemMappingType,
};

/// How a region actually got its host memory; shown by `axvm check` and logged at creation,
/// because "where did my MapIdentical memory go" is a question users ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionOutcome {
    /// Allocated anywhere (MapAlloc).
    Allocated,
    /// Allocated at the host-physical address equal to the GPA (MapIdentical).
    Identical,
    /// MapIdentical asked for, but the host could not allocate there: allocated anywhere.
    IdenticalFallback,
    /// Host memory reserved beforehand, mapped at the same address (MapReserved).
    Reserved,
}

impl fmt::Display for RegionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Allocated => "allocated",
            Self::Identical => "allocated at its identical host-physical address",
            Self::IdenticalFallback => {
                "allocated elsewhere (the host cannot allocate at the identical address)"
            }
            Self::Reserved => "reserved host memory, mapped in place",
        })
    }
}

/// A region of guest RAM and the host memory behind it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestRegion {
    /// The configured region.
    pub config: VmMemConfig,
    /// Where axvm reaches it.
    pub hva: HostVirtAddr,
    /// How it was obtained.
    pub outcome: RegionOutcome,
}

impl GuestRegion {
    /// Guest-physical start.
    pub fn gpa(&self) -> GuestPhysAddr {
        self.config.gpa
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.config.size
    }

    /// First address after the region.
    pub fn end(&self) -> GuestPhysAddr {
        self.config.end()
    }

    /// What the guest may do with it.
    pub fn flags(&self) -> MappingFlags {
        self.config.flags
    }

    /// Whether the guest may write it (a region without WRITE behaves as ROM).
    pub fn is_writable(&self) -> bool {
        self.config.flags.contains(MappingFlags::WRITE)
    }
}

/// Obtains host memory for `config` (the region at `index` of the config) and maps it.
pub(crate) fn map_region<H: AxVMHal>(
    hal: &H,
    index: usize,
    config: &VmMemConfig,
) -> AxVMResult<GuestRegion> {
    let (hva, outcome) = obtain_memory(hal, index, config)?;
    if let Err(cause) = hal.map_guest_memory(config.gpa, hva, config.size, config.flags) {
        release_memory(hal, hva, config, outcome);
        return Err(AxVMError::host_failed(
            "map guest memory",
            // The host's reason says what to change (the KVM host names its slot limit,
            // address width or the missing READ flag); the region is named here.
            format!(
                "kernel.memory_regions[{index}] ({:#x} bytes at {}, up to {}, {}): {cause}",
                config.size,
                config.gpa,
                config.end(),
                config.map_type
            ),
            cause,
        ));
    }
    log::info!(
        "memory region [{index}] {}..{} {} {}: {outcome}",
        config.gpa,
        config.end(),
        config.flags,
        config.map_type
    );
    Ok(GuestRegion {
        config: *config,
        hva,
        outcome,
    })
}

fn obtain_memory<H: AxVMHal>(
    hal: &H,
    index: usize,
    config: &VmMemConfig,
) -> AxVMResult<(HostVirtAddr, RegionOutcome)> {
    let identical = HostPhysAddr::new(config.gpa.as_u64());
    let describe = || {
        format!(
            "kernel.memory_regions[{index}] ({:#x} bytes at {})",
            config.size, config.gpa
        )
    };
    match config.map_type {
        VmMemMappingType::MapIdentical => {
            if hal.alloc_memory_region_at(identical, config.size) {
                let Some(hva) = hal.phys_to_virt(identical) else {
                    // Give the allocation back: the caller only releases what it got.
                    hal.dealloc_memory_region_at(identical, config.size);
                    return Err(AxVMError::host_refused(
                        "reach identical memory",
                        format!(
                            "{}: the host allocated it but cannot map it for axvm",
                            describe()
                        ),
                    ));
                };
                return Ok((hva, RegionOutcome::Identical));
            }
            // Debug only: the region's outcome is logged at info below, and a config's front
            // end warns about the fallback with the region named (`axvm check`, `axvm run`).
            log::debug!(
                "{}: MapIdentical memory cannot be allocated at host-physical {identical}; using memory elsewhere (guest-physical addresses are unchanged, host-physical ones differ)",
                describe()
            );
            alloc_anywhere(hal, config, describe).map(|hva| (hva, RegionOutcome::IdenticalFallback))
        }
        VmMemMappingType::MapAlloc => {
            alloc_anywhere(hal, config, describe).map(|hva| (hva, RegionOutcome::Allocated))
        }
        VmMemMappingType::MapReserved => {
            let hva = hal.phys_to_virt(identical).ok_or_else(|| {
                AxVMError::host_refused(
                    "map reserved memory",
                    format!("{}: MapReserved needs host-physical memory at {identical} that this host cannot reach; use map_type 0 (MapAlloc)", describe()),
                )
            })?;
            Ok((hva, RegionOutcome::Reserved))
        }
    }
}

fn alloc_anywhere<H: AxVMHal>(
    hal: &H,
    config: &VmMemConfig,
    describe: impl Fn() -> String,
) -> AxVMResult<HostVirtAddr> {
    hal.alloc_memory_region(config.size).map_err(|cause| {
        let message = format!(
            "{}: {cause}; make the region smaller or free host memory",
            describe()
        );
        AxVMError::host_failed("allocate guest memory", message, cause)
    })
}

/// Gives back the host memory of a region obtained by [`map_region`].
pub(crate) fn release_memory<H: AxVMHal>(
    hal: &H,
    hva: HostVirtAddr,
    config: &VmMemConfig,
    outcome: RegionOutcome,
) {
    match outcome {
        RegionOutcome::Allocated | RegionOutcome::IdenticalFallback => {
            hal.dealloc_memory_region(hva, config.size)
        }
        RegionOutcome::Identical => {
            hal.dealloc_memory_region_at(HostPhysAddr::new(config.gpa.as_u64()), config.size)
        }
        RegionOutcome::Reserved => {}
    }
}
