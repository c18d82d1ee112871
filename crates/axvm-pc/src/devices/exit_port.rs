//! The exit device (port 0xf4, like QEMU's `isa-debug-exit`): a guest writes a status and
//! the VM ends with it. Test guests use it to report pass or fail.
//!
//! The status is one byte. A 1-byte write gives its value as is. A wider write (the device
//! spans four ports, so `out dx, ax` and `out dx, eax` land too) gives its value when that
//! fits in a byte, and 255 when it does not: truncating would turn 0x100 into 0, a failing
//! guest into a passing one. So a status is 0 only when the guest wrote 0. (QEMU reports
//! `(value << 1) | 1` instead, never 0; axvm keeps the written value, as its guests and
//! tests expect.)

use alloc::vec;
use alloc::vec::Vec;

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

/// The exit device's port.
pub const EXIT_PORT: u16 = 0xf4;

/// The status of a wider write whose value does not fit in a byte.
pub const SATURATED_STATUS: u8 = u8::MAX;

/// Ends the VM with the status the guest writes.
#[derive(Default)]
pub struct ExitPort;

/// The exit status a write of `value`, `width` wide, asks for (see the module documentation).
pub fn exit_status(width: AccessWidth, value: u64) -> u8 {
    let bits = 8 * width.size() as u32;
    let value = value & u64::MAX.checked_shr(64 - bits).unwrap_or(u64::MAX);
    u8::try_from(value).unwrap_or(SATURATED_STATUS)
}

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
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        Ok(WriteOutcome::StopVm {
            exit_status: exit_status(width, value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PortAccess;

    const PORT: u64 = EXIT_PORT as u64;

    fn status(width: AccessWidth, value: u64) -> u8 {
        match ExitPort.write_port(PORT, width, value).unwrap() {
            WriteOutcome::StopVm { exit_status } => exit_status,
            other => panic!("a write of {value:#x} did not stop the VM: {other:?}"),
        }
    }

    #[test]
    fn a_byte_write_is_the_status() {
        for value in [0, 1, 42, 0xff] {
            assert_eq!(status(AccessWidth::Byte, value), value as u8);
        }
    }

    #[test]
    fn a_wider_write_that_does_not_fit_a_byte_saturates_never_to_0() {
        assert_eq!(status(AccessWidth::Word, 0x100), SATURATED_STATUS);
        assert_eq!(status(AccessWidth::Word, 0xff00), SATURATED_STATUS);
        assert_eq!(status(AccessWidth::Dword, 0x1_0000), SATURATED_STATUS);
        assert_eq!(status(AccessWidth::Dword, 0x8000_0000), SATURATED_STATUS);
        // Values that fit stay as written, 0 included.
        assert_eq!(status(AccessWidth::Word, 0x2a), 42);
        assert_eq!(status(AccessWidth::Dword, 0), 0);
        assert_eq!(status(AccessWidth::Dword, 0xff), 0xff);
    }

    #[test]
    fn bits_beyond_the_access_width_are_ignored() {
        // Whatever sits above the access in the value register is not the guest's.
        assert_eq!(status(AccessWidth::Byte, 0x1234_0007), 7);
        assert_eq!(status(AccessWidth::Word, 0xdead_0000), 0);
    }
}
