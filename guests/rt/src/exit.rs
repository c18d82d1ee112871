//! Ending the VM, and the panic handler.

use core::fmt::Write;
use core::panic::PanicInfo;

use crate::console::Uart;
use crate::cpu::halt_forever;
use crate::io::outb;

/// Writing a byte here asks the VMM to stop the VM with that byte as the exit
/// status (the port of QEMU's `isa-debug-exit` device).
pub const EXIT_PORT: u16 = 0xf4;

/// Ends the VM with `status` (0 = success). If the VMM does not stop the
/// vCPU on the write, this vCPU halts forever instead of running on.
pub fn exit(status: u8) -> ! {
    // SAFETY: the exit port has no effect other than ending the VM.
    unsafe { outb(EXIT_PORT, status) };
    halt_forever()
}

/// Reports the panic on the console and exits with status 0xff, so a bug in
/// a guest fails the test that runs it instead of hanging it.
#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    // Lock-free writer: the panic may have happened inside `print!`.
    let _ = writeln!(Uart, "\nguest panic: {info}");
    exit(0xff)
}
