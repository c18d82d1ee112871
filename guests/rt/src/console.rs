//! A polled 16550 UART console on COM1, and the `print!`/`println!` macros.
//!
//! The guests report everything through this port, and the integration tests
//! match on the lines it produces, so output of one `print!` from one vCPU is
//! never interleaved with another vCPU's.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use crate::cpu::pause;
use crate::io::{inb, outb};

/// COM1's base I/O port: the transmit holding register.
pub const COM1: u16 = 0x3f8;
/// Line status register, `COM1 + 5`.
const LSR: u16 = COM1 + 5;
/// LSR bit: transmit holding register empty, i.e. the UART takes a byte.
const LSR_THRE: u8 = 0x20;

/// Serialises whole `print!` calls between vCPUs.
static LOCK: AtomicBool = AtomicBool::new(false);

/// Writes one byte to COM1, waiting until the UART can take it (a real 16550
/// drops bytes written while THRE is clear; an emulated one usually never
/// clears it, so this costs one extra port read per byte).
pub fn putb(byte: u8) {
    // SAFETY: COM1 is the console port; reading LSR and writing THR have no
    // effect beyond transmitting the byte.
    unsafe {
        while inb(LSR) & LSR_THRE == 0 {
            pause();
        }
        outb(COM1, byte);
    }
}

/// A [`fmt::Write`] sink for COM1 that takes no lock, for the panic handler
/// (which may run while this vCPU holds the console lock).
pub struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(putb);
        Ok(())
    }
}

/// Implementation of [`print!`](crate::print): formats under the console
/// lock.
#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    while LOCK
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        pause();
    }
    // Uart::write_str never fails, so neither does this.
    let _ = Uart.write_fmt(args);
    LOCK.store(false, Ordering::Release);
}

/// Prints to the COM1 console, like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the COM1 console, like `std::println!`. The line is
/// written as one unit even when several vCPUs print at once.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints `FAIL: <message>` and ends the VM with exit status `status`: how a guest reports a
/// failed check (see the guests' README), one status per check so the VMM's exit status
/// names it.
#[macro_export]
macro_rules! fail {
    ($status:expr, $($arg:tt)*) => {{
        $crate::println!("FAIL: {}", format_args!($($arg)*));
        $crate::exit($status)
    }};
}
