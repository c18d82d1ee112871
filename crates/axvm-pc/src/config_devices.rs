//! What a config's device rows give the guest's PC platform, read the same by every host
//! (and by the firmware tables, which must describe exactly those devices): which
//! `emu_devices` rows are virtio-mmio devices, and whether the VM has an HPET.

use axvm::memory::merge_pass_through;
use axvm::{AxVMConfig, EmulatedDeviceConfig, EmulatedDeviceType};

use crate::layout::{HPET_ADDRESS, HPET_PAGE_SIZE};

/// Whether an `emu_devices` row of this type is a virtio-mmio device.
///
/// ```
/// use axvm::EmulatedDeviceType;
/// assert!(axvm_pc::config_devices::is_virtio(EmulatedDeviceType::VirtioConsole));
/// assert!(!axvm_pc::config_devices::is_virtio(EmulatedDeviceType::Dummy));
/// ```
pub fn is_virtio(emu_type: EmulatedDeviceType) -> bool {
    matches!(
        emu_type,
        EmulatedDeviceType::VirtioBlk
            | EmulatedDeviceType::VirtioConsole
            | EmulatedDeviceType::VirtioNet
    )
}

/// The `emu_devices` rows that are virtio devices, with their indices (for field names).
pub fn virtio_rows(config: &AxVMConfig) -> impl Iterator<Item = (usize, &EmulatedDeviceConfig)> {
    config
        .emu_devices
        .iter()
        .enumerate()
        .filter(|(_, row)| is_virtio(row.emu_type))
}

/// Whether the VM `config` describes has an HPET: when it passes the HPET's page (and no
/// more) through at its own address, as ArceOS hypervisor configs for x86 do. The ACPI
/// `HPET` table and the DSDT's `\_SB.HPET` are written exactly then; VMs that do not ask keep
/// the platform they had, so a kernel's clock choice never changes behind a config's back.
/// (The KVM host emulates the HPET then: its `emulated_hpet` is this.)
pub fn has_hpet(config: &AxVMConfig) -> bool {
    let Ok(ranges) = merge_pass_through(&config.pass_through_devices) else {
        return false;
    };
    ranges.iter().any(|range| {
        range.gpa.as_u64() == HPET_ADDRESS
            && range.hpa.as_u64() == HPET_ADDRESS
            && range.size <= HPET_PAGE_SIZE
    })
}
