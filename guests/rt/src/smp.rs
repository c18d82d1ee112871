//! Starting application processors: the local APIC's interrupt command
//! register (xAPIC, memory-mapped) and the INIT-SIPI-SIPI sequence.
//!
//! Under the Multiboot and PVH protocols only the bootstrap processor runs at
//! boot; the others wait for INIT and a start-up IPI (SIPI), whose vector
//! names the 4 KiB page below 1 MiB where they begin in real mode. Together
//! with [`crate::boot32::install_ap_trampoline`], which puts code there that
//! reaches the guest's `ap()` in long mode:
//!
//! ```ignore
//! let vector = unsafe { rt::boot32::install_ap_trampoline(0x8000) };
//! for apic_id in aps { rt::smp::start_ap(apic_id, vector, &tsc); }
//! ```

use crate::io::{mmio_read, mmio_write};
use crate::time::Tsc;

/// The local APIC's default physical base (identity-mapped, uncached, by
/// [`crate::boot32`]).
pub const LAPIC_BASE: usize = 0xfee0_0000;
/// Local APIC ID register; the ID is in bits 31:24.
const LAPIC_ID: usize = 0x20;
/// Spurious-interrupt vector register; bit 8 enables the APIC in software.
const LAPIC_SVR: usize = 0xf0;
const SVR_ENABLE: u32 = 1 << 8;
/// Interrupt command register, low and high halves. Writing the low half
/// sends the IPI; the destination (bits 31:24 of the high half) goes first.
const LAPIC_ICR_LOW: usize = 0x300;
const LAPIC_ICR_HIGH: usize = 0x310;
/// ICR: delivery status (1 = not yet accepted).
const ICR_PENDING: u32 = 1 << 12;
/// ICR: level assert (required for INIT and SIPI).
const ICR_ASSERT: u32 = 1 << 14;
/// ICR delivery modes.
const ICR_INIT: u32 = 0b101 << 8;
const ICR_STARTUP: u32 = 0b110 << 8;

/// The wait after INIT, and after each SIPI, that the MP specification
/// gives (10 ms, 200 µs).
const INIT_DELAY_US: u64 = 10_000;
const SIPI_DELAY_US: u64 = 200;
/// How long an IPI may stay pending before [`start_ap`] gives up on it.
const IPI_TIMEOUT_US: u64 = 100_000;

fn read(reg: usize) -> u32 {
    // SAFETY: an aligned 32-bit read of a local APIC register, which has
    // no side effect.
    unsafe { mmio_read::<u32>(LAPIC_BASE + reg) }
}

fn write(reg: usize, value: u32) {
    // SAFETY: aligned 32-bit write of a local APIC register; callers write
    // only the SVR and ICR.
    unsafe { mmio_write::<u32>(LAPIC_BASE + reg, value) }
}

/// This CPU's local APIC ID, from the APIC itself.
pub fn lapic_id() -> u32 {
    read(LAPIC_ID) >> 24
}

/// Sets the software-enable bit of this CPU's local APIC (keeping the
/// spurious vector), so IPIs are sent whatever state firmware left it in.
/// Interrupts stay off.
pub fn enable_lapic() {
    let svr = read(LAPIC_SVR);
    write(LAPIC_SVR, svr | SVR_ENABLE | 0xff);
}

/// Sends the IPI `command` (ICR low) to the APIC `dest` and waits until the
/// APIC has accepted it. Returns `false` if it stayed pending.
fn send_ipi(dest: u32, command: u32, tsc: &Tsc) -> bool {
    write(LAPIC_ICR_HIGH, dest << 24);
    write(LAPIC_ICR_LOW, command);
    let deadline = tsc.deadline_us(IPI_TIMEOUT_US);
    while read(LAPIC_ICR_LOW) & ICR_PENDING != 0 {
        if tsc.passed(deadline) {
            return false;
        }
    }
    true
}

/// Starts the AP with local APIC ID `apic_id` at the page of SIPI `vector`:
/// INIT, 10 ms, SIPI, 200 µs, SIPI, 200 µs (a second SIPI is ignored by an
/// AP that already runs). Returns `false` if an IPI was never accepted.
pub fn start_ap(apic_id: u32, vector: u8, tsc: &Tsc) -> bool {
    if !send_ipi(apic_id, ICR_INIT | ICR_ASSERT, tsc) {
        return false;
    }
    tsc.delay_us(INIT_DELAY_US);
    for _ in 0..2 {
        if !send_ipi(apic_id, ICR_STARTUP | ICR_ASSERT | u32::from(vector), tsc) {
            return false;
        }
        tsc.delay_us(SIPI_DELAY_US);
    }
    true
}
