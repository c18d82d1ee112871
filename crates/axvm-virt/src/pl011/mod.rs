//! The console: an ARM PrimeCell PL011 UART at [`PL011_BASE`], interrupting on SPI 1,
//! as QEMU's virt board has one. Linux binds its `amba-pl011` driver to it by its
//! PrimeCell ID (`console=ttyAMA0`, or `earlycon=pl011,0x9000000`).
//!
//! The host gives it two callbacks: where transmitted bytes go, and how to set the level
//! of the UART's interrupt line (the host drives the in-kernel GIC's SPI). Received bytes
//! come from the host through [`Pl011::push_input`], as many as the receive FIFO has room
//! for (16 bytes with the guest's FIFOs on, 1 with them off, as on the real UART); a host
//! that wants to hear when the guest has read them all adds [`Pl011::with_rx_drained`].
//! Transmitting never waits: the transmit FIFO always reads empty (FR.TXFE set, TXFF
//! clear), and the transmit interrupt is raised after every byte, as in QEMU's model.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use axvm::device::{BaseDeviceOps, DeviceOffset};
//! use axvm::AccessWidth;
//! use axvm_virt::Pl011;
//!
//! let printed = Arc::new(Mutex::new(Vec::new()));
//! let sink = printed.clone();
//! let uart = Pl011::new(
//!     Box::new(move |bytes: &[u8]| sink.lock().unwrap().extend_from_slice(bytes)),
//!     Box::new(|_level: bool| {}),
//! );
//! uart.handle_write(DeviceOffset::first(0), AccessWidth::Byte, u64::from(b'A')).unwrap();
//! assert_eq!(*printed.lock().unwrap(), b"A");
//! ```

pub mod regs;
#[cfg(test)]
mod tests;

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};
use spin::Mutex;

use crate::layout::{PL011_BASE, PL011_SIZE};
use regs::Pl011State;

/// Where the bytes the guest transmits go; called with each byte as it is written.
pub type Pl011Output = Box<dyn FnMut(&[u8]) + Send>;

/// Sets the UART's interrupt line: called with the new level each time it changes
/// (`(RIS & IMSC) != 0`). Called while the UART's state is locked, so that levels arrive
/// in order: it must not call back into the [`Pl011`].
pub type Pl011Irq = Box<dyn Fn(bool) + Send + Sync>;

/// Told when the guest has read the receive FIFO empty, so a host feeding input can offer
/// more (see [`Pl011::with_rx_drained`]). Called after the UART's state is unlocked.
pub type Pl011RxDrained = Box<dyn Fn() + Send + Sync>;

/// A PL011 UART shared by the VM's vCPUs and the host's input thread.
pub struct Pl011 {
    state: Mutex<Pl011State>,
    /// The line level the host was last told.
    level: Mutex<bool>,
    output: Mutex<Pl011Output>,
    irq: Pl011Irq,
    rx_drained: Option<Pl011RxDrained>,
}

impl Pl011 {
    /// A UART in its reset state (interrupts masked, line low) sending what the guest
    /// transmits to `output` and its interrupt level to `irq`.
    pub fn new(output: Pl011Output, irq: Pl011Irq) -> Self {
        Self {
            state: Mutex::new(Pl011State::default()),
            level: Mutex::new(false),
            output: Mutex::new(output),
            irq,
            rx_drained: None,
        }
    }

    /// The same UART, also calling `drained` each time a guest read leaves the receive
    /// FIFO empty: the moment to [`push_input`](Pl011::push_input) what did not fit, so
    /// an input thread can wait for it instead of polling [`Pl011::rx_room`].
    pub fn with_rx_drained(mut self, drained: Pl011RxDrained) -> Self {
        self.rx_drained = Some(drained);
        self
    }

    /// Queues received `bytes` in the receive FIFO, as many as fit (16 with the guest's
    /// FIFOs enabled, else 1), and raises the receive interrupt. Returns how many were
    /// taken; the host offers the rest again once the guest has read some
    /// ([`Pl011::rx_room`]).
    pub fn push_input(&self, bytes: &[u8]) -> usize {
        let mut state = self.state.lock();
        let taken = state.push_input(bytes);
        self.update_line(&state);
        taken
    }

    /// How many bytes [`Pl011::push_input`] would take now.
    pub fn rx_room(&self) -> usize {
        self.state.lock().rx_room()
    }

    /// Tells the host when the line's level has changed.
    fn update_line(&self, state: &Pl011State) {
        let level = state.line_level();
        let mut told = self.level.lock();
        if *told != level {
            *told = level;
            (self.irq)(level);
        }
    }
}

/// The 32-bit register an access at `offset` goes to, and the bit position of the
/// access's first byte inside it: accesses of every width are register accesses.
fn register_of(offset: u64) -> (u64, u32) {
    (offset & !3, ((offset & 3) * 8) as u32)
}

impl BaseDeviceOps for Pl011 {
    fn name(&self) -> &str {
        "pl011"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Console
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::mmio(PL011_BASE, PL011_SIZE)]
    }

    fn handle_read(&self, at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        let (reg, shift) = register_of(at.offset);
        let mut state = self.state.lock();
        let waiting = state.rx_len();
        let value = state.read(reg);
        self.update_line(&state);
        let drained = waiting > 0 && state.rx_len() == 0;
        drop(state);
        if let (true, Some(notify)) = (drained, &self.rx_drained) {
            notify();
        }
        Ok(u64::from(value >> shift))
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let (reg, shift) = register_of(at.offset);
        let mut state = self.state.lock();
        let transmitted = state.write(reg, (value << shift) as u32);
        if let Some(byte) = transmitted {
            (self.output.lock())(&[byte]);
        }
        self.update_line(&state);
        Ok(WriteOutcome::Done)
    }
}
