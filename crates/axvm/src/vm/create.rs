//! Creating a VM: validate the config, map memory and pass-through devices, add emulated
//! devices, create vCPUs. On any failure everything already obtained is given back.

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, AtomicUsize};

use super::{AxVM, VMStatus};
use crate::device::AxVmDevices;
use crate::memory::{map_region, merge_pass_through, release_memory, GuestMemory, GuestRegion};
use crate::vcpu::AxArchVCpu;
use crate::{AxVMConfig, AxVMError, AxVMHal, AxVMResult, MappingFlags, ValidConfig};

impl<H: AxVMHal> AxVM<H> {
    /// Creates the VM that `config` describes on host `hal`.
    ///
    /// `devices` holds the platform devices the host provides (console, exit device, ...);
    /// the config's `emu_devices` are added to them. The config is validated first, so a
    /// bad config touches no host resource.
    pub fn new(config: AxVMConfig, hal: H, devices: AxVmDevices) -> AxVMResult<Arc<Self>> {
        Self::new_validated(config.into_valid()?, hal, devices)
    }

    /// [`new`](Self::new) for a config the host validated already (a [`ValidConfig`]
    /// cannot exist otherwise), so that it is not validated twice.
    pub fn new_validated(
        config: ValidConfig,
        hal: H,
        mut devices: AxVmDevices,
    ) -> AxVMResult<Arc<Self>> {
        let config = config.into_inner();
        devices.add_emulated(&config.emu_devices)?;
        let regions = map_all_regions(&hal, &config)?;
        let vm = Self {
            vcpus: Vec::new(),
            devices,
            memory: GuestMemory::new(regions),
            status: AtomicU8::new(VMStatus::Created as u8),
            active_runners: AtomicUsize::new(0),
            exit_status: spin::Once::new(),
            observer: spin::Once::new(),
            unclaimed_log: super::unclaimed_log::UnclaimedLog::new(config.cpu_num),
            hal,
            config,
        };
        // From here on, dropping `vm` releases the memory.
        let mut vm = vm;
        vm.map_pass_through()?;
        vm.vcpus = vm.create_vcpus()?;
        log::info!(
            "VM {} ({}) created: {} vCPU(s), {} memory region(s), {} device range(s)",
            vm.id(),
            vm.config.name,
            vm.vcpus.len(),
            vm.memory.regions().len(),
            vm.devices.ranges().count()
        );
        Ok(Arc::new(vm))
    }

    fn map_pass_through(&self) -> AxVMResult {
        let ranges = merge_pass_through(&self.config.pass_through_devices)?;
        for range in ranges {
            if let Some(ram) = self.memory.region_of(range.gpa) {
                // Debug only: a config's front end warns about it with the entry named
                // (`axvm check` and `axvm run` do).
                log::debug!(
                    "pass-through {} at {} lies in RAM region {}..{}; RAM takes precedence",
                    range.names,
                    range.gpa,
                    ram.gpa(),
                    ram.end()
                );
            }
            let flags = MappingFlags::READ | MappingFlags::WRITE | MappingFlags::DEVICE;
            self.hal
                .map_passthrough(range.gpa, range.hpa, range.size, flags)
                .map_err(|cause| {
                    let message = format!(
                        "{} (guest {}, host {}, {:#x} bytes): {cause}",
                        range.names, range.gpa, range.hpa, range.size
                    );
                    AxVMError::host_failed("map a pass-through device", message, cause)
                })?;
        }
        Ok(())
    }

    fn create_vcpus(&self) -> AxVMResult<Vec<spin::Mutex<H::VCpu>>> {
        (0..self.config.cpu_num)
            .map(|vcpu_id| {
                let affinity = self
                    .config
                    .phys_cpu_sets
                    .as_ref()
                    .and_then(|sets| sets.get(vcpu_id).copied());
                let entry = if vcpu_id == 0 {
                    self.config.bsp_entry()
                } else {
                    self.config.ap_entry()
                };
                let mut vcpu = self
                    .hal
                    .create_vcpu(vcpu_id, affinity)
                    .map_err(|cause| AxVMError::vcpu_failed(vcpu_id, cause))?;
                vcpu.set_entry(entry)
                    .map_err(|cause| AxVMError::vcpu_failed(vcpu_id, cause))?;
                Ok(spin::Mutex::new(vcpu))
            })
            .collect()
    }
}

/// Maps every configured region; on failure gives back the ones already mapped.
fn map_all_regions<H: AxVMHal>(hal: &H, config: &AxVMConfig) -> AxVMResult<Vec<GuestRegion>> {
    let mut regions = Vec::with_capacity(config.memory_regions.len());
    for (index, region_config) in config.memory_regions.iter().enumerate() {
        match map_region(hal, index, region_config) {
            Ok(region) => regions.push(region),
            Err(err) => {
                for region in &regions {
                    release_memory(hal, region.hva, &region.config, region.outcome);
                }
                return Err(err);
            }
        }
    }
    Ok(regions)
}
