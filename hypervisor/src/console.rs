//! The kernel's console: the physical COM1 UART (16550 at port 0x3f8), polled.
//!
//! `print!`/`println!` write text as it is; `hv_println!` prefixes each line with
//! [`PREFIX`] (`axvm-hv: `) so a script can tell the hypervisor's messages from a guest's
//! output, which shares the same serial line. A lock keeps the lines of different CPUs whole;
//! the exception and panic reports bypass it ([`emergency_writer`]), since the CPU that fails
//! may hold it.

use core::fmt::{self, Write};

use spin::Mutex;

use crate::cpu;

/// COM1's I/O base.
const COM1: u16 = 0x3f8;
/// Line status register offset and its "transmit holding register empty" bit.
const LSR: u16 = 5;
const LSR_THRE: u8 = 1 << 5;
/// What every hypervisor line starts with.
pub const PREFIX: &str = "axvm-hv: ";

/// The UART itself: stateless, every write polls the line status.
pub struct Uart;

impl Uart {
    fn put(&mut self, byte: u8) {
        // SAFETY: COM1's registers; polling LSR and writing THR have no other effect.
        unsafe {
            while cpu::inb(COM1 + LSR) & LSR_THRE == 0 {
                core::hint::spin_loop();
            }
            cpu::outb(COM1, byte);
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                self.put(b'\r');
            }
            self.put(byte);
        }
        Ok(())
    }
}

static CONSOLE: Mutex<Uart> = Mutex::new(Uart);

/// Programs COM1 for 115200 baud, 8N1, FIFOs on, no interrupts (QEMU ignores the rate, real
/// UARTs do not).
pub fn init() {
    let setup: [(u16, u8); 7] = [
        (1, 0x00), // IER: no interrupts
        (3, 0x80), // LCR: divisor latch access
        (0, 0x01), // divisor low: 115200 baud
        (1, 0x00), // divisor high
        (3, 0x03), // LCR: 8 bits, no parity, one stop bit
        (2, 0xc7), // FCR: FIFOs on and cleared
        (4, 0x03), // MCR: DTR, RTS
    ];
    for (offset, value) in setup {
        // SAFETY: COM1's configuration registers, written once at boot.
        unsafe { cpu::outb(COM1 + offset, value) };
    }
}

/// Writes raw bytes (a guest's console output, say) under the console lock, unchanged.
pub fn write_bytes(bytes: &[u8]) {
    let mut uart = CONSOLE.lock();
    for &byte in bytes {
        uart.put(byte);
    }
}

/// Formats `args` under the console lock, with [`PREFIX`] in front when `prefixed`.
pub fn write_fmt(prefixed: bool, args: fmt::Arguments) {
    let mut uart = CONSOLE.lock();
    if prefixed {
        let _ = uart.write_str(PREFIX);
    }
    let _ = uart.write_fmt(args);
}

/// A writer that ignores the console lock, for the exception and panic reports: the failing
/// CPU may hold the lock, and the machine stops right after anyway.
pub fn emergency_writer() -> Uart {
    Uart
}

/// Prints to the console, as it is.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::write_fmt(false, format_args!($($arg)*)) };
}

/// Prints a line to the console, as it is.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::write_fmt(false, format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints one hypervisor line: `axvm-hv: ` and the message.
#[macro_export]
macro_rules! hv_println {
    ($($arg:tt)*) => { $crate::console::write_fmt(true, format_args!("{}\n", format_args!($($arg)*))) };
}

/// Sends the `log` crate's records (the axvm core logs through it) to the console as
/// `axvm-hv: LEVEL target: message` lines.
struct ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }

    fn log(&self, record: &log::Record) {
        hv_println!(
            "{:<5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs the console logger at `level` (Info unless the command line says otherwise).
pub fn init_logger(level: log::LevelFilter) {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
