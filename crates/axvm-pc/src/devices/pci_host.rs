//! PCI configuration mechanism #1 (ports 0xcf8 address, 0xcfc-0xcff data) with one device:
//! an i440FX host bridge at 00:00.0, as on QEMU's default PC. Operating systems probe PCI
//! through these ports; an empty bus answers all-ones, as real hardware does.

use core::sync::atomic::{AtomicU32, Ordering};

use alloc::vec;
use alloc::vec::Vec;

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
const ENABLE: u32 = 1 << 31;
/// The address register's and the data window's places in [`PciHost::address_ranges`].
const ADDRESS_RANGE: usize = 0;
const DATA_RANGE: usize = 2;

/// Config space of the host bridge, dword by dword: vendor 0x8086 device 0x1237 (i440FX),
/// revision 2, class 06/00/00 (host bridge), header type 0.
const HOST_BRIDGE: [u32; 4] = [0x1237_8086, 0x0000_0000, 0x0600_0002, 0x0000_0000];

/// The PCI configuration ports.
#[derive(Default)]
pub struct PciHost {
    address: AtomicU32,
}

impl PciHost {
    /// The dword at `offset` (register aligned) of the selected function, or all-ones when
    /// the address is disabled or names an absent function.
    fn selected_dword(&self) -> u32 {
        let address = self.address.load(Ordering::Relaxed);
        let bus_device_function = (address >> 8) & 0xffff;
        let register = ((address & 0xfc) >> 2) as usize;
        if address & ENABLE == 0 || bus_device_function != 0 {
            return u32::MAX;
        }
        HOST_BRIDGE.get(register).copied().unwrap_or(0)
    }
}

impl BaseDeviceOps for PciHost {
    fn name(&self) -> &str {
        "PCI host bridge"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        // 0xcf9 inside the address register's dword is the reset control register, a
        // separate device: only 32-bit accesses reach the address register, and KVM
        // reports those at 0xcf8, so the byte at 0xcf9 is never ours.
        vec![
            DeviceRange::port(CONFIG_ADDRESS, 1),
            DeviceRange::port(CONFIG_ADDRESS + 2, 2),
            DeviceRange::port(CONFIG_DATA, 4),
        ]
    }

    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        if at.range == DATA_RANGE {
            // The offset is below 4: the data range is four ports.
            let shift = 8 * at.offset as u32;
            return Ok(width.truncate(u64::from(self.selected_dword() >> shift)));
        }
        // The address register is a 32-bit register; narrower reads see no PCI register.
        Ok(
            if at.range == ADDRESS_RANGE && width == AccessWidth::Dword {
                u64::from(self.address.load(Ordering::Relaxed))
            } else {
                width.mask()
            },
        )
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        if at.range == ADDRESS_RANGE && width == AccessWidth::Dword {
            self.address.store(value as u32, Ordering::Relaxed);
        }
        // The host bridge's registers are read-only here; writes to data are dropped.
        Ok(WriteOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PortAccess;

    const ADDRESS: u64 = CONFIG_ADDRESS as u64;
    const DATA: u64 = CONFIG_DATA as u64;

    #[test]
    fn leaves_port_0xcf9_to_the_reset_control_register() {
        let ranges = PciHost::default().address_ranges();
        assert!(ranges.iter().all(|r| !r.contains(r.space, 0xcf9)));
        assert!(ranges.iter().any(|r| r.contains(r.space, ADDRESS)));
    }

    #[test]
    fn dword_address_then_data_reads_the_host_bridge() {
        let pci = PciHost::default();
        pci.write_port(ADDRESS, AccessWidth::Dword, u64::from(ENABLE))
            .unwrap();
        assert_eq!(
            pci.read_port(ADDRESS, AccessWidth::Dword).unwrap(),
            u64::from(ENABLE)
        );
        assert_eq!(
            pci.read_port(DATA, AccessWidth::Dword).unwrap(),
            0x1237_8086
        );
        assert_eq!(pci.read_port(DATA + 2, AccessWidth::Word).unwrap(), 0x1237);
        // Function 00:01.0 is absent.
        pci.write_port(ADDRESS, AccessWidth::Dword, u64::from(ENABLE | 1 << 8))
            .unwrap();
        assert_eq!(
            pci.read_port(DATA, AccessWidth::Dword).unwrap(),
            0xffff_ffff
        );
    }
}
