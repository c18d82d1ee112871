//! Small builders for VM configs, so each test shows only what it is about.

use std::sync::Arc;

use axvm::device::{AxVmDevices, BaseDeviceOps, UnclaimedAccessPolicy};
use axvm::{
    AxVM, AxVMConfig, EmulatedDeviceConfig, EmulatedDeviceType, GuestPhysAddr, HostPhysAddr,
    MappingFlags, PassThroughDeviceConfig, VmMemConfig, VmMemMappingType,
};

use super::TestHal;

/// Where the test VMs' RAM starts and how big it is.
pub const RAM_BASE: u64 = 0;
pub const RAM_SIZE: u64 = 0x10_0000;
/// Where the test VMs start.
pub const ENTRY: u64 = 0x8000;

/// READ | WRITE | EXECUTE.
pub fn rwx() -> MappingFlags {
    MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE
}

pub fn gpa(addr: u64) -> GuestPhysAddr {
    GuestPhysAddr::new(addr)
}

/// A memory region.
pub fn region(gpa: u64, size: u64, flags: MappingFlags, map_type: VmMemMappingType) -> VmMemConfig {
    VmMemConfig {
        gpa: GuestPhysAddr::new(gpa),
        size,
        flags,
        map_type,
    }
}

/// A read-write-execute MapAlloc region.
pub fn ram(gpa: u64, size: u64) -> VmMemConfig {
    region(gpa, size, rwx(), VmMemMappingType::MapAlloc)
}

/// A valid config: `cpu_num` vCPUs, 1 MiB of RAM at 0, entry at 0x8000.
pub fn config(cpu_num: usize) -> AxVMConfig {
    config_with_regions(cpu_num, vec![ram(RAM_BASE, RAM_SIZE)])
}

/// A config with these memory regions, and the entry in the first one.
pub fn config_with_regions(cpu_num: usize, regions: Vec<VmMemConfig>) -> AxVMConfig {
    let mut config = AxVMConfig::new("test-vm", cpu_num);
    config.id = 7;
    let entry = regions.first().map_or(ENTRY, |r| {
        r.gpa.as_u64().wrapping_add(ENTRY.min(r.size / 2))
    });
    config.cpu_config.bsp_entry = GuestPhysAddr::new(entry);
    config.cpu_config.ap_entry = GuestPhysAddr::new(entry);
    config.memory_regions = regions;
    config
}

/// An `emu_devices` entry.
pub fn emu(
    name: &str,
    base: u64,
    length: u64,
    emu_type: EmulatedDeviceType,
) -> EmulatedDeviceConfig {
    EmulatedDeviceConfig {
        name: name.into(),
        base_gpa: GuestPhysAddr::new(base),
        length,
        irq_id: 0,
        emu_type,
        cfg_list: Vec::new(),
        backend: None,
    }
}

/// A `passthrough_devices` entry.
pub fn passthrough(name: &str, gpa: u64, hpa: u64, length: u64) -> PassThroughDeviceConfig {
    PassThroughDeviceConfig {
        name: name.into(),
        base_gpa: GuestPhysAddr::new(gpa),
        base_hpa: HostPhysAddr::new(hpa),
        length,
        irq_id: 0,
    }
}

/// A device set holding `devices`, with `policy` for unclaimed accesses.
pub fn device_set(
    policy: UnclaimedAccessPolicy,
    devices: Vec<Arc<dyn BaseDeviceOps>>,
) -> AxVmDevices {
    let mut set = AxVmDevices::new(policy);
    for device in devices {
        set.add(device).expect("test devices do not overlap");
    }
    set
}

/// Creates the VM, panicking with axvm's message if it refuses.
pub fn new_vm(config: AxVMConfig, hal: &TestHal, devices: AxVmDevices) -> Arc<AxVM<TestHal>> {
    AxVM::new(config, hal.clone(), devices).unwrap_or_else(|e| panic!("AxVM::new: {e}"))
}

/// Creates and boots the VM.
pub fn booted_vm(config: AxVMConfig, hal: &TestHal, devices: AxVmDevices) -> Arc<AxVM<TestHal>> {
    let vm = new_vm(config, hal, devices);
    vm.boot().unwrap_or_else(|e| panic!("boot: {e}"));
    vm
}
