//! Ending the whole machine through QEMU's `isa-debug-exit` device.

use crate::cpu;

/// Where `scripts/svm-run.sh` puts `isa-debug-exit` (`iobase=0xf4`): the same exit port the
/// guests use, so a guest's status can be passed straight through.
pub const EXIT_PORT: u16 = 0xf4;

/// Exits QEMU: it ends with status `(status << 1) | 1`, which `scripts/svm-run.sh` maps back to
/// `status`. Without the device (another machine, real hardware) the CPU halts instead.
pub fn exit(status: u8) -> ! {
    // SAFETY: writing the exit port only ends QEMU; on a machine without it the write is ignored.
    unsafe { cpu::outb(EXIT_PORT, status) };
    cpu::halt_forever()
}
