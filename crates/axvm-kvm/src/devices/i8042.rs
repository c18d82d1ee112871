//! The i8042 keyboard controller (ports 0x60 and 0x64) of a PC with no keyboard and no
//! mouse plugged in: axvm's own model (`i8042/controller.rs`), since vm-superio's answers
//! only the reset command and reads zero from both ports.
//!
//! ACPI kernels are told there is no 8042 and do not look; firmware and kernels that probe
//! anyway (`acpi=off`, SeaBIOS) get every answer at once: the self-test passes, the
//! configuration byte reads back, interface tests pass, and bytes for the keyboard or mouse
//! time out, so no guest polls the status port waiting for a reply that never comes. The
//! controller's CPU reset line (command 0xfe, or the output port's bit 0) stops the VM with
//! exit status 0.

mod controller;

use std::sync::{Mutex, MutexGuard, PoisonError};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

use super::StopNote;
use controller::{Controller, Effect};

/// The data port: the output buffer (read) and command data or device bytes (write).
pub const I8042_DATA_PORT: u16 = 0x60;
/// The command port: the status register (read) and controller commands (write).
pub const I8042_COMMAND_PORT: u16 = 0x64;

/// The command port's range, second in [`I8042::address_ranges`] (the data port is first).
const COMMAND_RANGE: usize = 1;

/// The keyboard controller; a reset request stops the VM with exit status 0.
#[derive(Default)]
pub struct I8042 {
    controller: Mutex<Controller>,
    /// Where a reset says that it stopped the VM.
    note: StopNote,
}

impl I8042 {
    /// A controller whose reset is told to `note`.
    pub fn noting(note: StopNote) -> Self {
        Self {
            note,
            ..Self::default()
        }
    }

    fn controller(&self) -> MutexGuard<'_, Controller> {
        self.controller
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl BaseDeviceOps for I8042 {
    fn name(&self) -> &str {
        "i8042 keyboard controller"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![
            DeviceRange::port(I8042_DATA_PORT, 1),
            DeviceRange::port(I8042_COMMAND_PORT, 1),
        ]
    }

    fn handle_read(&self, at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        let mut controller = self.controller();
        let value = if at.range == COMMAND_RANGE {
            controller.status()
        } else {
            controller.read_data()
        };
        Ok(u64::from(value))
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let mut controller = self.controller();
        let effect = if at.range == COMMAND_RANGE {
            controller.write_command(value as u8)
        } else {
            controller.write_data(value as u8)
        };
        match effect {
            Effect::Reset => {
                self.note
                    .set("the guest reset the machine through the i8042 keyboard controller");
                Ok(WriteOutcome::StopVm { exit_status: 0 })
            }
            Effect::None => Ok(WriteOutcome::Done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axvm_pc::PortAccess;

    const DATA: u64 = I8042_DATA_PORT as u64;
    const COMMAND: u64 = I8042_COMMAND_PORT as u64;

    fn write(i8042: &I8042, port: u64, value: u8) -> WriteOutcome {
        i8042
            .write_port(port, AccessWidth::Byte, value.into())
            .expect("the i8042 accepts every write")
    }

    fn read(i8042: &I8042, port: u64) -> u8 {
        i8042
            .read_port(port, AccessWidth::Byte)
            .expect("the i8042 answers every read") as u8
    }

    #[test]
    fn reset_command_stops_the_vm_with_status_0() {
        let i8042 = I8042::default();
        assert_eq!(
            write(&i8042, COMMAND, 0xfe),
            WriteOutcome::StopVm { exit_status: 0 }
        );
    }

    #[test]
    fn writing_the_output_port_with_bit_0_clear_resets() {
        let i8042 = I8042::default();
        assert_eq!(write(&i8042, COMMAND, 0xd1), WriteOutcome::Done);
        assert_eq!(
            write(&i8042, DATA, 0x02),
            WriteOutcome::StopVm { exit_status: 0 }
        );
    }

    #[test]
    fn linux_controller_probe_gets_its_answers_through_the_ports() {
        let i8042 = I8042::default();
        // i8042_controller_check / _selftest / _init, in Linux's order.
        assert_eq!(read(&i8042, COMMAND) & 0x01, 0, "nothing to flush");
        write(&i8042, COMMAND, 0xaa);
        assert_eq!(read(&i8042, COMMAND) & 0x0d, 0x0d, "OBF, SYS, A2");
        assert_eq!(read(&i8042, DATA), 0x55);
        write(&i8042, COMMAND, 0x20);
        assert_eq!(read(&i8042, COMMAND) & 0x01, 0x01);
        let ctr = read(&i8042, DATA);
        write(&i8042, COMMAND, 0x60);
        write(&i8042, DATA, ctr | 0x03);
        write(&i8042, COMMAND, 0x20);
        assert_eq!(read(&i8042, DATA), ctr | 0x03);
        assert_eq!(read(&i8042, COMMAND) & 0x01, 0, "every reply read");
    }
}
