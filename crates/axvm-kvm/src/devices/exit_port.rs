//! The exit device (port 0xf4, like QEMU's `isa-debug-exit`): a guest writes a status byte
//! and the VM ends with that status. Test guests use it to report pass or fail.

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

/// The exit device's port.
pub const EXIT_PORT: u16 = 0xf4;

/// Ends the VM with the byte the guest writes.
#[derive(Default)]
pub struct ExitPort;

impl BaseDeviceOps for ExitPort {
    fn name(&self) -> &str {
        "exit device"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        // Four ports, as QEMU's isa-debug-exit with iosize=4, so 32-bit writes land too.
        vec![DeviceRange::port(EXIT_PORT, 4)]
    }

    fn handle_read(&self, _at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(0)
    }

    fn handle_write(
        &self,
        _at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        Ok(WriteOutcome::StopVm {
            exit_status: value as u8,
        })
    }
}
