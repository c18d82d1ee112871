//! The COM1 16550 UART (ports 0x3f8-0x3ff), emulated by vm-superio; its output is the
//! guest's console.

use std::io::Write;
use std::sync::Mutex;

use axvm::device::{BaseDeviceOps, DeviceError, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};
use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};

/// COM1's I/O base.
pub const COM1_BASE: u16 = 0x3f8;

/// The interrupt line, until an interrupt controller is wired to it: raising it does nothing.
pub struct NoInterrupt;

impl Trigger for NoInterrupt {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        Ok(())
    }
}

/// A 16550 UART at COM1 whose transmitter writes to `W`.
pub struct SerialConsole<W: Write + Send> {
    uart: Mutex<Serial<NoInterrupt, NoEvents, W>>,
}

impl<W: Write + Send> SerialConsole<W> {
    /// A UART that sends what the guest transmits to `out`.
    pub fn new(out: W) -> Self {
        Self {
            uart: Mutex::new(Serial::new(NoInterrupt, out)),
        }
    }

    fn uart(&self) -> std::sync::MutexGuard<'_, Serial<NoInterrupt, NoEvents, W>> {
        self.uart
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn register_offset(addr: u64) -> u8 {
    (addr - u64::from(COM1_BASE)) as u8
}

impl<W: Write + Send> BaseDeviceOps for SerialConsole<W> {
    fn name(&self) -> &str {
        "serial (COM1)"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Console
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(COM1_BASE, 8)]
    }

    fn handle_read(&self, addr: u64, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(u64::from(self.uart().read(register_offset(addr))))
    }

    fn handle_write(
        &self,
        addr: u64,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        self.uart()
            .write(register_offset(addr), value as u8)
            .map_err(|err| DeviceError {
                device: self.name().into(),
                message: format!("cannot write the console output: {err:?}"),
            })?;
        Ok(WriteOutcome::Done)
    }
}
