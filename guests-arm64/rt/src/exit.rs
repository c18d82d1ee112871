//! Ending the VM: the axvm exit device, with PSCI as the fallback where there
//! is none (QEMU `-M virt`), and the panic handler.
//!
//! axvm's exit device (4 KiB at [`EXIT_DEVICE`]) stops the VM with the low 8
//! bits of any write at offset 0 as the exit status. QEMU's virt board maps
//! nothing there, and a store to an unmapped address takes a synchronous
//! external abort. The vector table recognises the abort of *the* store in
//! `axvm_exit_write` and calls [`no_exit_device`], which powers off with PSCI
//! SYSTEM_OFF for status 0 (QEMU then exits 0, as axvm reports 0) and, for a
//! failure, prints the status and asks PSCI SYSTEM_RESET instead, so that a
//! failed guest never looks like one that powered off (QEMU `-no-reboot` then
//! exits too; the printed line carries the status).

use core::arch::global_asm;
use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU8, Ordering};

use crate::console::Uart;
use crate::psci;

/// Guest-physical address of axvm's exit device (the arm64 contract).
pub const EXIT_DEVICE: usize = 0x0910_0000;

/// The exit status of a guest that panicked.
pub const PANIC_STATUS: u8 = 101;

/// The status the last [`exit`] call wrote, for [`no_exit_device`].
static PENDING_STATUS: AtomicU8 = AtomicU8::new(0);

extern "C" {
    /// Writes `status` (32-bit store) to the exit device; see the asm below.
    fn axvm_exit_write(status: u32);
    /// The address of the store instruction in `axvm_exit_write`.
    static axvm_exit_store: u8;
}

// One 32-bit store, at a known address, so that the vector table can tell its abort apart.
global_asm!(
    ".section .text.axvm_exit, \"ax\"",
    ".global axvm_exit_write",
    ".global axvm_exit_store",
    "axvm_exit_write:",
    "    mov x9, #{device}",
    "axvm_exit_store:",
    "    str w0, [x9]",
    "    ret",
    device = const EXIT_DEVICE,
);

/// The address of the exit device store, which the vector table compares with
/// ELR_EL1.
pub(crate) fn exit_store_address() -> u64 {
    core::ptr::addr_of!(axvm_exit_store) as u64
}

/// Ends the VM with `status` (0 = success) by writing it to the exit device;
/// where there is none, see the module doc. Should the write neither stop the
/// VM nor fault, this vCPU waits in `wfi` for ever.
pub fn exit(status: u8) -> ! {
    PENDING_STATUS.store(status, Ordering::Relaxed);
    // SAFETY: the exit device has no effect other than ending the VM.
    unsafe { axvm_exit_write(u32::from(status)) };
    park()
}

/// No exit device answered the write of [`exit`]: status 0 powers off (PSCI
/// SYSTEM_OFF), any other prints itself and resets (PSCI SYSTEM_RESET).
pub(crate) fn no_exit_device() -> ! {
    let status = PENDING_STATUS.load(Ordering::Relaxed);
    if status == 0 {
        psci::system_off()
    }
    let _ = writeln!(
        Uart,
        "axvm-rt: exit status {status} (no exit device at {EXIT_DEVICE:#x}): PSCI SYSTEM_RESET"
    );
    psci::system_reset()
}

/// Waits for ever with interrupts as they are.
pub fn park() -> ! {
    loop {
        // SAFETY: `wfi` only waits.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

/// Reports the panic on the console and exits with [`PANIC_STATUS`], so that
/// a bug in a guest fails the test that runs it instead of hanging it.
#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let _ = writeln!(Uart, "\nguest panic: {info}");
    exit(PANIC_STATUS)
}
