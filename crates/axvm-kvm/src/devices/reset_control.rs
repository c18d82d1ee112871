//! The reset control register at port 0xcf9 (Intel chipsets since the PIIX): the reset
//! method kernels try first on a PC, and the register the ACPI FADT's `RESET_REG` names,
//! so an ACPI reboot lands here. A reset ends the VM with status 0, like the i8042 reset, and
//! leaves a [`StopNote`] saying so (`axvm run` prints it).

use std::sync::atomic::{AtomicU8, Ordering};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

use super::StopNote;

/// The reset control register's port (the FADT's `RESET_REG`, an I/O-space byte).
pub const RESET_CONTROL_PORT: u16 = 0xcf9;
/// The value that resets the machine (the FADT's `RESET_VALUE`): "system reset" (bit 1) with
/// "reset CPU" (bit 2), the hard reset Linux and Windows write.
#[cfg(test)]
pub const RESET_VALUE: u8 = 0x06;
/// The bit whose setting starts the reset; the other bits only choose its kind.
const RESET_CPU: u8 = 0x04;

/// The reset control register.
#[derive(Default)]
pub struct ResetControl {
    /// The last value written without [`RESET_CPU`]: the reset kind a later reset would use,
    /// which reads return.
    kind: AtomicU8,
    /// Where a reset says that it stopped the VM.
    note: StopNote,
}

impl ResetControl {
    /// The register, telling a reset to `note`.
    pub fn noting(note: StopNote) -> Self {
        Self {
            note,
            ..Self::default()
        }
    }
}

impl BaseDeviceOps for ResetControl {
    fn name(&self) -> &str {
        "reset control register"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(RESET_CONTROL_PORT, 1)]
    }

    fn handle_read(&self, _at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(u64::from(self.kind.load(Ordering::Relaxed)))
    }

    fn handle_write(
        &self,
        _at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let value = value as u8;
        if value & RESET_CPU != 0 {
            self.note
                .set("the guest reset the machine through port 0xcf9");
            return Ok(WriteOutcome::StopVm { exit_status: 0 });
        }
        self.kind.store(value, Ordering::Relaxed);
        Ok(WriteOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axvm_pc::PortAccess;

    const PORT: u64 = RESET_CONTROL_PORT as u64;

    #[test]
    fn the_reset_value_stops_the_vm_with_status_0() {
        let reset = ResetControl::default();
        assert_eq!(
            reset
                .write_port(PORT, AccessWidth::Byte, RESET_VALUE.into())
                .unwrap(),
            WriteOutcome::StopVm { exit_status: 0 }
        );
        // A soft reset (bit 2 alone) resets too.
        assert_eq!(
            reset.write_port(PORT, AccessWidth::Byte, 0x04).unwrap(),
            WriteOutcome::StopVm { exit_status: 0 }
        );
    }

    #[test]
    fn a_reset_leaves_a_note_saying_so() {
        let note = StopNote::default();
        let reset = ResetControl::noting(note.clone());
        reset.write_port(PORT, AccessWidth::Byte, 0x02).unwrap();
        assert_eq!(note.get(), None, "choosing the reset kind is no reset");
        reset
            .write_port(PORT, AccessWidth::Byte, RESET_VALUE.into())
            .unwrap();
        assert_eq!(
            note.get(),
            Some("the guest reset the machine through port 0xcf9")
        );
    }

    #[test]
    fn writes_without_bit_2_only_choose_the_reset_kind() {
        let reset = ResetControl::default();
        assert_eq!(reset.read_port(PORT, AccessWidth::Byte).unwrap(), 0);
        for kind in [0x02, 0x0a, 0x00] {
            assert_eq!(
                reset.write_port(PORT, AccessWidth::Byte, kind).unwrap(),
                WriteOutcome::Done
            );
            assert_eq!(reset.read_port(PORT, AccessWidth::Byte).unwrap(), kind);
        }
    }
}
