//! [`PortAccess`]: reaching a device by port number, the way the device manager does.

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceSpace, WriteOutcome};
use axvm::AccessWidth;

/// Accesses a device by port number: each access goes to the range and offset that the
/// device manager would compute from the device's own `address_ranges`. For device tests
/// and fuzzing, which speak in ports as guests do.
///
/// ```
/// use axvm::AccessWidth;
/// use axvm_pc::{ExitPort, PortAccess};
///
/// let outcome = ExitPort.write_port(0xf4, AccessWidth::Byte, 3).unwrap();
/// assert_eq!(outcome, axvm::device::WriteOutcome::StopVm { exit_status: 3 });
/// ```
pub trait PortAccess {
    /// Reads `port` as the guest's `IN` would reach the device.
    ///
    /// # Panics
    /// When the device claims no such port: a test's mistake, not a guest's.
    fn read_port(&self, port: u64, width: AccessWidth) -> Result<u64, DeviceError>;

    /// Writes `port` as the guest's `OUT` would reach the device.
    ///
    /// # Panics
    /// When the device claims no such port.
    fn write_port(
        &self,
        port: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError>;
}

impl<D: BaseDeviceOps + ?Sized> PortAccess for D {
    fn read_port(&self, port: u64, width: AccessWidth) -> Result<u64, DeviceError> {
        self.handle_read(offset_of(self, port), width)
    }

    fn write_port(
        &self,
        port: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        self.handle_write(offset_of(self, port), width, value)
    }
}

fn offset_of<D: BaseDeviceOps + ?Sized>(device: &D, port: u64) -> DeviceOffset {
    let ranges = device.address_ranges();
    let (index, range) = ranges
        .iter()
        .enumerate()
        .find(|(_, range)| range.contains(DeviceSpace::Port, port))
        .unwrap_or_else(|| panic!("{} does not claim port {port:#x}", device.name()));
    DeviceOffset::new(index, port - range.base)
}
