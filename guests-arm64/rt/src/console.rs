//! A polled PL011 UART console and the `print!`/`println!` macros.
//!
//! No lock serialises vCPUs: a spinlock needs exclusive accesses (or LSE
//! atomics), which are not dependable on memory the MMU-off guest sees as
//! Device memory. The guests print from one vCPU at a time by design instead
//! (the demo's boot vCPU waits for the other's signal before printing again).

use core::fmt::{self, Write};

/// Guest-physical base of the PL011 (the arm64 contract; QEMU virt's too).
pub const PL011_BASE: usize = 0x0900_0000;
/// Data register: a write transmits its low byte.
const UARTDR: usize = PL011_BASE;
/// Flag register.
const UARTFR: usize = PL011_BASE + 0x18;
/// UARTFR bit: the transmit FIFO is full.
const FR_TXFF: u32 = 1 << 5;

/// Writes one byte, waiting while the transmit FIFO is full.
pub fn putb(byte: u8) {
    // SAFETY: the PL011's data and flag registers; reading FR and writing DR only
    // transmit the byte.
    unsafe {
        while core::ptr::read_volatile(UARTFR as *const u32) & FR_TXFF != 0 {}
        core::ptr::write_volatile(UARTDR as *mut u32, u32::from(byte));
    }
}

/// A [`fmt::Write`] sink for the PL011.
pub struct Uart;

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(putb);
        Ok(())
    }
}

/// Implementation of [`print!`](crate::print).
#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    // Uart::write_str never fails, so neither does this.
    let _ = Uart.write_fmt(args);
}

/// Prints to the PL011 console, like `std::print!`.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the PL011 console, like `std::println!`.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints `FAIL: <message>` and ends the VM with exit status `status`: how a
/// guest reports a failed check, one status per check.
#[macro_export]
macro_rules! fail {
    ($status:expr, $($arg:tt)*) => {{
        $crate::println!("FAIL: {}", format_args!($($arg)*));
        $crate::exit($status)
    }};
}
