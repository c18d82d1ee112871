//! The i8042 keyboard controller (ports 0x60 and 0x64), emulated by vm-superio, for the one
//! thing guests use it for on a VM: writing 0xfe to port 0x64 resets the machine.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};
use vm_superio::{I8042Device, Trigger};

const DATA_PORT: u16 = 0x60;
const COMMAND_PORT: u16 = 0x64;

/// Remembers that the guest asked for a reset.
#[derive(Clone, Default)]
struct ResetRequest(Arc<AtomicBool>);

impl Trigger for ResetRequest {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        self.0.store(true, Ordering::Relaxed);
        Ok(())
    }
}

/// The keyboard controller; a reset request stops the VM with exit status 0.
pub struct I8042 {
    reset: ResetRequest,
    controller: Mutex<I8042Device<ResetRequest>>,
}

impl Default for I8042 {
    fn default() -> Self {
        let reset = ResetRequest::default();
        Self {
            controller: Mutex::new(I8042Device::new(reset.clone())),
            reset,
        }
    }
}

impl I8042 {
    fn controller(&self) -> std::sync::MutexGuard<'_, I8042Device<ResetRequest>> {
        self.controller
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
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
            DeviceRange::port(DATA_PORT, 1),
            DeviceRange::port(COMMAND_PORT, 1),
        ]
    }

    fn handle_read(&self, addr: u64, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(u64::from(
            self.controller().read((addr - u64::from(DATA_PORT)) as u8),
        ))
    }

    fn handle_write(
        &self,
        addr: u64,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let offset = (addr - u64::from(DATA_PORT)) as u8;
        let _ = self.controller().write(offset, value as u8);
        if self.reset.0.swap(false, Ordering::Relaxed) {
            log::info!("guest reset the machine through the i8042 keyboard controller");
            return Ok(WriteOutcome::StopVm { exit_status: 0 });
        }
        Ok(WriteOutcome::Done)
    }
}
