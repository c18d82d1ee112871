//! axvm's exit device, the arm64 counterpart of the PC's exit port: 4 KiB of MMIO at
//! [`EXIT_DEVICE_BASE`]. A write of any width at offset 0
//! stops the VM with the low 8 bits of the value as its exit status; test guests report
//! pass (0) or fail (non-zero) this way. Reads return 0 and writes elsewhere are ignored,
//! so a guest probing the page changes nothing.

use alloc::vec;
use alloc::vec::Vec;

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

use crate::layout::{EXIT_DEVICE_BASE, EXIT_DEVICE_SIZE};

/// The offset whose writes stop the VM.
pub const EXIT_STATUS_OFFSET: u64 = 0;

/// Stops the VM with the status the guest writes at offset 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct ExitDevice;

impl BaseDeviceOps for ExitDevice {
    fn name(&self) -> &str {
        "axvm-exit"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::mmio(EXIT_DEVICE_BASE, EXIT_DEVICE_SIZE)]
    }

    fn handle_read(&self, _at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(0)
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        if at.offset != EXIT_STATUS_OFFSET {
            return Ok(WriteOutcome::Done);
        }
        Ok(WriteOutcome::StopVm {
            exit_status: value as u8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(offset: u64, width: AccessWidth, value: u64) -> WriteOutcome {
        ExitDevice
            .handle_write(DeviceOffset::first(offset), width, value)
            .unwrap()
    }

    #[test]
    fn a_write_at_offset_0_stops_with_the_low_byte_at_every_width() {
        for width in [
            AccessWidth::Byte,
            AccessWidth::Word,
            AccessWidth::Dword,
            AccessWidth::Qword,
        ] {
            assert_eq!(write(0, width, 0), WriteOutcome::StopVm { exit_status: 0 });
            assert_eq!(write(0, width, 7), WriteOutcome::StopVm { exit_status: 7 });
        }
        assert_eq!(
            write(0, AccessWidth::Qword, 0x1234_5678_9abc_de01),
            WriteOutcome::StopVm { exit_status: 1 }
        );
    }

    #[test]
    fn other_offsets_are_ignored_and_reads_are_0() {
        assert_eq!(write(4, AccessWidth::Dword, 1), WriteOutcome::Done);
        assert_eq!(write(0xfff, AccessWidth::Byte, 1), WriteOutcome::Done);
        let read = ExitDevice.handle_read(DeviceOffset::first(0), AccessWidth::Qword);
        assert_eq!(read, Ok(0));
    }

    #[test]
    fn it_claims_its_page() {
        let device = ExitDevice;
        assert_eq!(device.name(), "axvm-exit");
        assert_eq!(
            device.address_ranges(),
            vec![DeviceRange::mmio(0x0910_0000, 0x1000)]
        );
    }
}
