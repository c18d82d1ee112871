//! The COM1 16550 UART (ports 0x3f8-0x3ff), emulated by vm-superio; its output is the
//! guest's console. Its interrupt is ISA IRQ 4, raised through a KVM irqfd where the host
//! has an in-kernel irqchip, so interrupt-driven drivers (Linux's 8250) transmit. What the
//! host sends the guest goes into its receive FIFO ([`ReceiveFifo`], fed by a
//! [`ConsoleInput`](super::ConsoleInput) thread).
//!
//! **Back-pressure.** vm-superio's UART writes each byte out at once and always reports its
//! transmitter empty. Here the bytes go to the VM's [`SharedConsole`], whose buffer is
//! bounded, so this wrapper makes a full console look like a busy UART:
//! - the line status register reads with "transmitter holding register empty" and
//!   "transmitter empty" (THRE, TEMT) clear while the console has no room for a FIFO load
//!   ([`TX_FIFO_BYTES`]), so a polling driver waits in the guest, as on a slow line;
//! - when room appears, the console thread calls back ([`SerialConsole::watch_room`]) and
//!   the THRE interrupt is raised again (if the guest enabled it), so an interrupt-driven
//!   driver (Linux's 8250 checks LSR in its handler and sends nothing while THRE is clear)
//!   goes on. The interrupt vm-superio raises after every byte still comes while full;
//!   finding THRE clear, such a driver waits for the next one;
//! - a byte written while the console is completely full is dropped and counted, like an
//!   overrun on real hardware: only a driver that ignores THRE loses output.
//!
//! So a stalled stdout holds up the guest's printing, never a vCPU thread.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::console_input::{FifoRoom, ReceiveFifo};
use super::SharedConsole;

/// The room a console must have for COM1 to report its transmitter empty: the 16550A's
/// transmit FIFO, which a driver fills whole on each THRE interrupt (Linux's 8250 does).
pub const TX_FIFO_BYTES: usize = 16;

/// The line status register's offset, and its transmitter bits (THRE, TEMT).
const LSR: u8 = 5;
const LSR_TRANSMITTER_EMPTY: u8 = 0x60;
/// The interrupt enable register's offset, and the line control register's (whose bit 7,
/// DLAB, turns offset 1 into the divisor latch).
const IER: u8 = 1;
const LCR: u8 = 3;
const LCR_DLAB: u8 = 0x80;

/// Where a UART's transmitter sends bytes: a writer that can tell whether it would take a
/// FIFO load now.
pub trait Transmitter: Write + Send {
    /// Whether `len` more bytes would be taken now (always, for a plain writer).
    fn has_room(&self, len: usize) -> bool {
        let _ = len;
        true
    }
}

/// A plain buffer always has room (device tests).
impl Transmitter for Vec<u8> {}

impl Transmitter for SharedConsole {
    fn has_room(&self, len: usize) -> bool {
        SharedConsole::has_room(self, len)
    }
}

/// COM1's I/O base.
pub const COM1_BASE: u16 = 0x3f8;
/// COM1's ISA interrupt line (and GSI).
pub const COM1_IRQ: u32 = crate::platform::pc::layout::COM1_IRQ as u32;

/// The interrupt line of a host without an interrupt controller: raising it does nothing,
/// and guests poll the line status register instead.
pub struct NoInterrupt;

impl Trigger for NoInterrupt {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        Ok(())
    }
}

/// An interrupt line backed by an eventfd registered as a KVM irqfd: each trigger pulses
/// the line in the kernel's irqchip (see [`KvmHal::irq_line`](crate::KvmHal::irq_line)).
pub struct IrqLine(EventFd);

impl IrqLine {
    /// The line that `event` raises.
    pub fn new(event: EventFd) -> Self {
        Self(event)
    }
}

impl Trigger for IrqLine {
    type E = std::io::Error;
    fn trigger(&self) -> Result<(), Self::E> {
        self.0.write(1)
    }
}

/// A 16550 UART at COM1 whose transmitter writes to `W` and whose interrupt is `T`.
pub struct SerialConsole<W: Transmitter, T: Trigger = NoInterrupt> {
    uart: Mutex<Serial<T, FifoRoom, W>>,
    /// Told by the UART when the guest read the receive FIFO empty.
    room: FifoRoom,
}

impl<W: Transmitter> SerialConsole<W> {
    /// A UART without an interrupt that sends what the guest transmits to `out`.
    pub fn new(out: W) -> Self {
        Self::with_interrupt(out, NoInterrupt)
    }
}

impl<W: Transmitter, T: Trigger> SerialConsole<W, T> {
    /// A UART that sends what the guest transmits to `out` and raises `interrupt`.
    pub fn with_interrupt(out: W, interrupt: T) -> Self {
        let room = FifoRoom::default();
        Self {
            uart: Mutex::new(Serial::with_events(interrupt, room.clone(), out)),
            room,
        }
    }

    fn uart(&self) -> std::sync::MutexGuard<'_, Serial<T, FifoRoom, W>> {
        self.uart
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads register `offset`, with the transmitter busy while the console is full.
    fn read_register(&self, offset: u8) -> u8 {
        let mut uart = self.uart();
        let value = uart.read(offset);
        if offset == LSR && !uart.writer().has_room(TX_FIFO_BYTES) {
            value & !LSR_TRANSMITTER_EMPTY
        } else {
            value
        }
    }

    /// Raises the THRE interrupt again, if the guest enabled it: rewriting IER with its own
    /// value does that in vm-superio, as it does on a 16550. Skipped while DLAB is set
    /// (offset 1 is then the divisor): the guest writes IER once it is done, which raises
    /// the interrupt anyway.
    fn transmitter_ready(&self) {
        let mut uart = self.uart();
        if uart.read(LCR) & LCR_DLAB != 0 {
            return;
        }
        let enabled = uart.read(IER);
        if let Err(err) = uart.write(IER, enabled) {
            log::warn!("COM1: cannot raise the transmitter interrupt: {err:?}");
        }
    }
}

impl<T: Trigger + Send + 'static> SerialConsole<SharedConsole, T> {
    /// Has the console call back when it has room again after COM1 found it full, to raise
    /// the THRE interrupt (see the module documentation). The console holds the UART weakly.
    pub fn watch_room(this: &Arc<Self>) {
        let uart = Arc::downgrade(this);
        // Cloned out first: the UART's lock is not held while the listener is added (the
        // console thread takes the two locks the other way round).
        let console = this.uart().writer().clone();
        console.on_room(Box::new(move || {
            if let Some(uart) = uart.upgrade() {
                uart.transmitter_ready();
            }
        }));
    }
}

impl<W: Transmitter, T: Trigger + Send> ReceiveFifo for SerialConsole<W, T> {
    /// Queues what fits, sets "data ready" and raises the receive interrupt if the guest
    /// enabled it. Counted from the FIFO's room, so bytes queued before a failed interrupt
    /// (which is logged) still count as taken.
    fn receive(&self, bytes: &[u8]) -> usize {
        let mut uart = self.uart();
        let room_before = uart.fifo_capacity();
        if let Err(err) = uart.enqueue_raw_bytes(bytes) {
            if !matches!(err, vm_superio::serial::Error::FullFifo) {
                log::warn!("COM1: {}", describe_uart_error(&err));
            }
        }
        room_before.saturating_sub(uart.fifo_capacity())
    }

    fn room(&self) -> FifoRoom {
        self.room.clone()
    }
}

impl<W: Transmitter, T: Trigger + Send> BaseDeviceOps for SerialConsole<W, T> {
    fn name(&self) -> &str {
        "serial (COM1)"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Console
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(COM1_BASE, 8)]
    }

    /// The offset in the 8-port range is the UART register's number.
    fn handle_read(&self, at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(u64::from(self.read_register(at.offset as u8)))
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        self.uart()
            .write(at.offset as u8, value as u8)
            .map_err(|err| DeviceError {
                device: self.name().into(),
                message: describe_uart_error(&err),
            })?;
        Ok(WriteOutcome::Done)
    }
}

/// A UART error in words (its Debug form, `IOError(Os { code: 32, .. })`, shows Rust's
/// internals, not what failed).
fn describe_uart_error<E: std::fmt::Debug>(err: &vm_superio::serial::Error<E>) -> String {
    use vm_superio::serial::Error;
    match err {
        Error::IOError(err) => format!(
            "cannot write the console output: {}",
            super::console::describe_write_error(err)
        ),
        // The trigger is generic: its error has only a Debug form (an eventfd never fails).
        Error::Trigger(err) => format!("cannot raise IRQ 4: {err:?}"),
        Error::FullFifo => "the receive FIFO is full".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axvm_pc::PortAccess;
    use vmm_sys_util::eventfd::EFD_NONBLOCK;

    const IER: u64 = COM1_BASE as u64 + 1;
    const THR_EMPTY: u64 = 0x02;

    /// A console whose reader went away.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::from_raw_os_error(libc::EPIPE))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Transmitter for ClosedPipe {}

    #[test]
    fn a_failed_console_write_is_said_in_words() {
        let uart = SerialConsole::new(ClosedPipe);
        let err = uart
            .write_port(COM1_BASE as u64, AccessWidth::Byte, u64::from(b'x'))
            .unwrap_err();
        assert_eq!(
            err.message,
            "cannot write the console output: its reader went away (broken pipe)"
        );
    }

    #[test]
    fn enabling_thr_empty_interrupts_raises_the_line() {
        let event = EventFd::new(EFD_NONBLOCK).unwrap();
        let uart =
            SerialConsole::with_interrupt(Vec::new(), IrqLine::new(event.try_clone().unwrap()));
        assert!(event.read().is_err(), "raised before anything was enabled");
        uart.write_port(IER, AccessWidth::Byte, THR_EMPTY).unwrap();
        assert_eq!(event.read().unwrap(), 1);
    }

    #[test]
    fn each_transmitted_byte_raises_the_line_again() {
        let event = EventFd::new(EFD_NONBLOCK).unwrap();
        let uart =
            SerialConsole::with_interrupt(Vec::new(), IrqLine::new(event.try_clone().unwrap()));
        uart.write_port(IER, AccessWidth::Byte, THR_EMPTY).unwrap();
        // The guest's handler reads IIR, which acknowledges THR empty; the next byte sent
        // empties the holding register again and raises a new interrupt.
        let iir = uart
            .read_port(COM1_BASE as u64 + 2, AccessWidth::Byte)
            .unwrap();
        assert_eq!(iir & 0x0f, 0x02, "IIR {iir:#x} does not report THR empty");
        assert_eq!(event.read().unwrap(), 1);
        uart.write_port(COM1_BASE.into(), AccessWidth::Byte, u64::from(b'x'))
            .unwrap();
        assert_eq!(event.read().unwrap(), 1);
    }

    #[test]
    fn received_bytes_are_read_from_the_data_port_and_raise_the_line() {
        const LSR: u64 = COM1_BASE as u64 + 5;
        const DATA_READY: u64 = 0x01;
        let event = EventFd::new(EFD_NONBLOCK).unwrap();
        let uart =
            SerialConsole::with_interrupt(Vec::new(), IrqLine::new(event.try_clone().unwrap()));
        uart.write_port(IER, AccessWidth::Byte, 0x01).unwrap(); // received data available
        assert!(event.read().is_err(), "raised before any byte arrived");
        let room = uart.room();
        assert_eq!(uart.receive(b"hi"), 2);
        assert_eq!(event.read().unwrap(), 1);
        let lsr = uart.read_port(LSR, AccessWidth::Byte).unwrap();
        assert_eq!(lsr & DATA_READY, DATA_READY);
        let data = COM1_BASE.into();
        assert_eq!(
            uart.read_port(data, AccessWidth::Byte).unwrap(),
            u64::from(b'h')
        );
        assert_eq!(room.emptied(), 0);
        assert_eq!(
            uart.read_port(data, AccessWidth::Byte).unwrap(),
            u64::from(b'i')
        );
        assert_eq!(
            room.emptied(),
            1,
            "reading the last byte tells the input thread"
        );
        assert_eq!(
            uart.read_port(LSR, AccessWidth::Byte).unwrap() & DATA_READY,
            0
        );
    }

    #[test]
    fn a_full_receive_fifo_takes_what_fits() {
        let uart = SerialConsole::new(Vec::new());
        assert_eq!(uart.receive(&[b'x'; 100]), 64);
        assert_eq!(uart.receive(b"y"), 0);
    }

    /// COM1 on a console of `capacity` bytes whose writer is stuck in its first write until
    /// the returned sender is dropped; "0" is that write. Its interrupt is `event`.
    fn com1_on_a_stalled_console(
        capacity: usize,
        event: &EventFd,
    ) -> (
        std::sync::mpsc::Sender<()>,
        crate::devices::ConsoleThread,
        Arc<SerialConsole<SharedConsole, IrqLine>>,
    ) {
        let (release, stalled) = std::sync::mpsc::channel::<()>();
        let writer = crate::devices::console::tests::Blocking(stalled);
        let thread =
            crate::devices::ConsoleThread::with_capacity(Box::new(writer), capacity, None).unwrap();
        let uart = Arc::new(SerialConsole::with_interrupt(
            thread.console(),
            IrqLine::new(event.try_clone().unwrap()),
        ));
        SerialConsole::watch_room(&uart);
        (release, thread, uart)
    }

    const LSR: u64 = COM1_BASE as u64 + 5;
    const TRANSMITTER_EMPTY: u64 = 0x60;

    #[test]
    fn a_full_console_makes_the_line_status_say_the_transmitter_is_busy() {
        let event = EventFd::new(EFD_NONBLOCK).unwrap();
        // The buffer holds two FIFO loads.
        let (release, thread, uart) = com1_on_a_stalled_console(2 * TX_FIFO_BYTES, &event);
        let data = u64::from(COM1_BASE);
        assert_eq!(
            uart.read_port(LSR, AccessWidth::Byte).unwrap() & TRANSMITTER_EMPTY,
            TRANSMITTER_EMPTY
        );
        // A polling driver: sends while THRE says so. The writer is stuck, so the buffer
        // fills and THRE clears before it is full: nothing is dropped.
        let mut sent = 0u64;
        while uart.read_port(LSR, AccessWidth::Byte).unwrap() & TRANSMITTER_EMPTY != 0 {
            uart.write_port(data, AccessWidth::Byte, u64::from(b'a'))
                .unwrap();
            sent += 1;
            assert!(sent <= 4 * TX_FIFO_BYTES as u64, "THRE never cleared");
        }
        assert!(
            sent > TX_FIFO_BYTES as u64,
            "THRE cleared after {sent} bytes"
        );
        let end = thread
            .console()
            .drain_with_patience(std::time::Duration::from_millis(20));
        assert_eq!(end.dropped, 0, "{end:?}");
        assert_eq!(end.unwritten, sent, "{end:?}");
        drop(release);
        // The writer took everything: the transmitter is empty again.
        assert_eq!(thread.drain().unwritten, 0);
        assert_eq!(
            uart.read_port(LSR, AccessWidth::Byte).unwrap() & TRANSMITTER_EMPTY,
            TRANSMITTER_EMPTY
        );
    }

    #[test]
    fn room_in_the_console_raises_the_thr_empty_interrupt_again() {
        let event = EventFd::new(EFD_NONBLOCK).unwrap();
        let (release, thread, uart) = com1_on_a_stalled_console(TX_FIFO_BYTES, &event);
        uart.write_port(IER, AccessWidth::Byte, THR_EMPTY).unwrap();
        let data = u64::from(COM1_BASE);
        // Sends until the transmitter is busy (the writer is stuck, so that comes).
        for sent in 0.. {
            if uart.read_port(LSR, AccessWidth::Byte).unwrap() & TRANSMITTER_EMPTY == 0 {
                break;
            }
            assert!(sent <= 4 * TX_FIFO_BYTES, "THRE never cleared");
            uart.write_port(data, AccessWidth::Byte, u64::from(b'b'))
                .unwrap();
        }
        // The handler: reads IIR (acknowledging THRE) and LSR, finds the transmitter busy
        // and sends nothing; the line is quiet from here.
        uart.read_port(COM1_BASE as u64 + 2, AccessWidth::Byte)
            .unwrap();
        let _ = event.read();
        drop(release);
        // The writer takes the buffer: the console calls back and the line is raised. A
        // generous bound, only so that a missing interrupt fails instead of hanging.
        let start = std::time::Instant::now();
        while event.read().is_err() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "no THRE interrupt after room appeared"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let iir = uart
            .read_port(COM1_BASE as u64 + 2, AccessWidth::Byte)
            .unwrap();
        assert_eq!(iir & 0x0f, 0x02, "IIR {iir:#x} does not report THR empty");
        thread.drain();
    }

    #[test]
    fn without_an_irqchip_the_uart_still_transmits() {
        let uart = SerialConsole::new(Vec::new());
        uart.write_port(IER, AccessWidth::Byte, THR_EMPTY).unwrap();
        uart.write_port(COM1_BASE.into(), AccessWidth::Byte, u64::from(b'x'))
            .unwrap();
        // Line status: THR empty and transmitter empty, so polling drivers go on.
        let lsr = uart
            .read_port(COM1_BASE as u64 + 5, AccessWidth::Byte)
            .unwrap();
        assert_eq!(lsr & 0x60, 0x60);
    }
}
