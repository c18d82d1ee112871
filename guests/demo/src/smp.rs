//! The two-vCPU handshake: the AP (which started at the same entry as the
//! BSP) waits to be released, prints, and reports back.

use core::sync::atomic::{AtomicBool, Ordering};

use rt::cpu::{halt_forever, pause, rdtsc};
use rt::println;

/// Set by the BSP once its own line is out, so the two lines come in order.
static RELEASE_AP: AtomicBool = AtomicBool::new(false);
/// Set by the AP after printing.
static AP_DONE: AtomicBool = AtomicBool::new(false);

/// How long the BSP waits for the AP, in TSC ticks: 2^33, i.e. about 3 s at
/// 3 GHz. Measured in time rather than loop iterations because one iteration
/// takes ~4 µs where KVM emulates every guest instruction (nested hosts) and
/// well under 100 ns natively. With only one vCPU configured this timeout is
/// what ends the run, with `FAIL: AP did not start`.
const AP_TIMEOUT_TSC: u64 = 1 << 33;
/// Backstop in case the TSC does not advance: ~3 minutes when emulated.
const AP_TIMEOUT_SPINS: u32 = 50_000_000;

/// Exit status when the AP never reports back.
const STATUS_NO_AP: u8 = 3;

/// The AP's whole life: wait, print, report, halt.
pub fn ap() -> ! {
    while !RELEASE_AP.load(Ordering::Acquire) {
        pause();
    }
    println!("axvm demo guest: hello from vCPU 1 (AP)");
    AP_DONE.store(true, Ordering::Release);
    halt_forever()
}

/// Lets the AP run and waits (bounded) until it has printed.
pub fn release_ap_and_wait() {
    RELEASE_AP.store(true, Ordering::Release);
    let start = rdtsc();
    let mut spins: u32 = 0;
    while !AP_DONE.load(Ordering::Acquire) {
        if rdtsc().wrapping_sub(start) > AP_TIMEOUT_TSC || spins == AP_TIMEOUT_SPINS {
            println!("FAIL: AP did not start");
            rt::exit(STATUS_NO_AP);
        }
        spins += 1;
        pause();
    }
}
