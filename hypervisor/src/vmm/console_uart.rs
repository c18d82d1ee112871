//! The guest's COM1: a 16550 UART at ports 0x3f8-0x3ff whose transmitter writes to this
//! machine's console, so a guest's serial output appears as QEMU's serial output.
//!
//! Transmit only, without interrupts: the guests poll the line status register for an
//! empty transmitter before each byte, and this UART's transmitter is always empty. The
//! other registers hold what the guest writes, so drivers that probe them (the scratch
//! register, the line control register) find a UART. Input is not delivered (nothing reads
//! the physical COM1 for a guest yet).

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

use super::inject::LineTrigger;
use crate::console;

/// COM1's first port.
const COM1: u16 = 0x3f8;
/// Register offsets.
const DATA: u64 = 0;
const INTERRUPT_ENABLE: u64 = 1;
const INTERRUPT_ID: u64 = 2;
const LINE_CONTROL: u64 = 3;
const MODEM_CONTROL: u64 = 4;
const LINE_STATUS: u64 = 5;
const MODEM_STATUS: u64 = 6;
const SCRATCH: u64 = 7;
/// Line control bit 7: the data and interrupt-enable ports reach the divisor latch.
const DIVISOR_LATCH_ACCESS: u8 = 1 << 7;
/// Line status: transmitter holding register empty, transmitter empty.
const TRANSMITTER_IDLE: u8 = 0x60;
/// Interrupt identification: no interrupt pending.
const NO_INTERRUPT: u8 = 0x01;
/// Modem status: carrier detect, data set ready, clear to send (a cable attached).
const MODEM_READY: u8 = 0xb0;

/// COM1, transmitting to the hypervisor's console.
#[derive(Default)]
pub struct ConsoleUart {
    /// Sees every byte transmitted (the console-line injection trigger).
    watcher: Option<Arc<LineTrigger>>,
    interrupt_enable: AtomicU8,
    line_control: AtomicU8,
    modem_control: AtomicU8,
    scratch: AtomicU8,
    divisor: [AtomicU8; 2],
}

impl ConsoleUart {
    /// COM1 whose output `watcher` also sees.
    pub fn watched_by(watcher: Option<Arc<LineTrigger>>) -> Self {
        Self {
            watcher,
            ..Self::default()
        }
    }

    fn divisor_latched(&self) -> bool {
        self.line_control.load(Ordering::Relaxed) & DIVISOR_LATCH_ACCESS != 0
    }

    /// The register a write at `offset` stores into, if it stores at all.
    fn storage(&self, offset: u64) -> Option<&AtomicU8> {
        match offset {
            DATA | INTERRUPT_ENABLE if self.divisor_latched() => self.divisor.get(offset as usize),
            INTERRUPT_ENABLE => Some(&self.interrupt_enable),
            LINE_CONTROL => Some(&self.line_control),
            MODEM_CONTROL => Some(&self.modem_control),
            SCRATCH => Some(&self.scratch),
            _ => None,
        }
    }
}

impl BaseDeviceOps for ConsoleUart {
    fn name(&self) -> &str {
        "COM1 (hypervisor console)"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Console
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(COM1, 8)]
    }

    fn handle_read(&self, at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        let value = match at.offset {
            INTERRUPT_ID => NO_INTERRUPT,
            LINE_STATUS => TRANSMITTER_IDLE,
            MODEM_STATUS => MODEM_READY,
            DATA if !self.divisor_latched() => 0,
            offset => self
                .storage(offset)
                .map_or(0, |register| register.load(Ordering::Relaxed)),
        };
        Ok(u64::from(value))
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let byte = value as u8;
        if at.offset == DATA && !self.divisor_latched() {
            console::write_bytes(&[byte]);
            if let Some(watcher) = &self.watcher {
                watcher.feed(byte);
            }
        } else if let Some(register) = self.storage(at.offset) {
            register.store(byte, Ordering::Relaxed);
        }
        Ok(WriteOutcome::Done)
    }
}
