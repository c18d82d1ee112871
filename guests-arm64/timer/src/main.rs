//! axvm's arm64 timer guest: takes the virtual timer's PPI (INTID 27) through
//! the GICv3 ten times, re-arming it for 10 ms in each interrupt, and checks
//! with the virtual counter that the ten periods took at least 100 ms and at most 1 s. Prints
//! `axvm arm64 timer guest: 10 ticks in <n> us` and exits 0; failures print
//! `FAIL: ...` and exit non-zero (2: no interrupt within a second).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use rt::timer::{self, VIRTUAL_TIMER_INTID};
use rt::{fail, gic, println};

rt::entry!(main);

/// Interrupts to take.
const TICKS: u32 = 10;
/// The timer's period.
const PERIOD_MICROS: u64 = 10_000;

/// Timer interrupts taken so far. Written only by the IRQ handler (one vCPU).
static TAKEN: AtomicU32 = AtomicU32::new(0);
/// The period in counter ticks, for the handler.
static PERIOD: AtomicU64 = AtomicU64::new(0);
/// The first INTID other than the timer's that was signalled, or 0.
static STRAY: AtomicU32 = AtomicU32::new(0);

fn main(_dtb: usize) -> ! {
    if let Err(e) = gic::init_for_ppi(VIRTUAL_TIMER_INTID) {
        fail!(3, "GICv3 set-up: {e:?}");
    }
    rt::vectors::set_irq_handler(on_irq);
    let period = timer::ticks_in_micros(PERIOD_MICROS);
    let Ok(period_tval) = u32::try_from(period) else {
        fail!(
            5,
            "10 ms is {period} counter ticks: more than CNTV_TVAL holds"
        )
    };
    PERIOD.store(period, Ordering::Relaxed);
    let second = timer::frequency();
    let start = timer::counter();
    timer::arm(period_tval);
    gic::enable_irqs();
    wait_for_ticks(start, second);
    gic::disable_irqs();
    let elapsed = timer::counter() - start;
    check_elapsed(elapsed, period * u64::from(TICKS), second);
    rt::exit(0)
}

/// Waits until [`TICKS`] interrupts were taken; fails with status 2 when a
/// second of the counter passes without one.
fn wait_for_ticks(start: u64, second: u64) {
    let (mut seen, mut since) = (0, start);
    loop {
        let stray = STRAY.load(Ordering::Relaxed);
        if stray != 0 {
            fail!(
                4,
                "interrupt {stray} signalled; only the virtual timer's (27) is enabled"
            );
        }
        let taken = TAKEN.load(Ordering::Relaxed);
        let now = timer::counter();
        if taken >= TICKS {
            return;
        }
        if taken != seen {
            (seen, since) = (taken, now);
        } else if now - since > second {
            fail!(
                2,
                "no virtual timer interrupt within 1 s (after {taken} of {TICKS})"
            );
        }
    }
}

/// The elapsed counter ticks: never fewer than the ten periods (a timer interrupt cannot
/// come early), and at most ten times as many (a timer that slow is broken, not slow: under
/// nested emulation the periods take ~50% longer, from the time each interrupt takes).
fn check_elapsed(elapsed: u64, expected: u64, second: u64) {
    let micros = elapsed * 1_000_000 / second;
    println!("axvm arm64 timer guest: {TICKS} ticks in {micros} us");
    if elapsed < expected || elapsed > expected * 10 {
        let wanted = expected * 1_000_000 / second;
        fail!(
            6,
            "{TICKS} ticks took {micros} us, expected {wanted} us to 10 times that"
        );
    }
}

/// Counts a timer interrupt and re-arms the timer, or stops it after the last.
fn on_irq(intid: u32) {
    if intid != VIRTUAL_TIMER_INTID {
        STRAY.store(intid, Ordering::Relaxed);
        return;
    }
    let taken = TAKEN.load(Ordering::Relaxed) + 1;
    TAKEN.store(taken, Ordering::Relaxed);
    if taken < TICKS {
        timer::arm(PERIOD.load(Ordering::Relaxed) as u32);
    } else {
        timer::stop();
    }
}
