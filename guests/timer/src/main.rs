//! axvm's timer guest: the i8254 PIT ticks at 100 Hz through the IOAPIC, and the ticks are
//! counted against the CMOS real-time clock's seconds.
//!
//! vCPU 0 loads the IDT, masks the 8259 PICs, enables its local APIC and routes IOAPIC pin
//! 2 — where ISA IRQ 0, the PIT, arrives on a PC (the MADT's interrupt source override for
//! IRQ 0 says so) — to [`TICK_VECTOR`]. It programs PIT channel 0 for 100 Hz and sleeps in
//! `hlt` with interrupts on between ticks. It waits for the RTC seconds register to change,
//! counts ticks until it changes again and prints `timer: <n> ticks in one RTC second`,
//! then `timer: rate OK` and exits 0 when n is within 25% of 100 (the host is emulated and
//! shared, so the bound is loose). Failures print `FAIL: ...` and exit with the statuses
//! below.
//!
//! Two more interrupt sources only serve the diagnosis: IOAPIC pin 0 goes to
//! [`PIN0_VECTOR`] (a VMM that wires GSI 0 to pin 0, as KVM's default routing does, is
//! caught by name), and the local APIC timer fires [`WATCHDOG_VECTOR`] now and then, so a
//! missing tick source ends in a FAIL rather than a `hlt` that never returns.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use rt::cpu::{halt_forever, pause, rdtsc};
use rt::interrupts::{self, ioapic, lapic, pic, InterruptFrame};
use rt::io::{inb, outb};
use rt::{exit, println};

rt::entry!(main);

/// The tick rate asked of the PIT.
const HZ: u32 = 100;
/// The PIT's input clock, in Hz.
const PIT_INPUT_HZ: u32 = 1_193_182;
/// PIT ports: channel 0's counter and the mode/command register.
const PIT_CHANNEL0: u16 = 0x40;
const PIT_COMMAND: u16 = 0x43;
/// Command: channel 0, access low byte then high byte, mode 2 (rate generator), binary.
const PIT_CHANNEL0_RATE_GENERATOR: u8 = 0x34;

/// The IOAPIC input the PIT's ISA IRQ 0 arrives on (GSI 2).
const PIT_IOAPIC_PIN: u8 = 2;
/// Vector of the PIT ticks on pin 2.
const TICK_VECTOR: u8 = 0x30;
/// Vector of IOAPIC pin 0, which must stay silent.
const PIN0_VECTOR: u8 = 0x31;
/// Vector of the local APIC timer watchdog.
const WATCHDOG_VECTOR: u8 = 0x32;
/// Watchdog period: 16,000,000 ticks of bus clock / 16, 0.256 s at KVM's 1 GHz APIC bus.
const WATCHDOG_COUNT: u32 = 16_000_000;

/// CMOS ports and registers.
const CMOS_INDEX: u16 = 0x70;
const CMOS_DATA: u16 = 0x71;
const RTC_SECONDS: u8 = 0x00;
const RTC_STATUS_A: u8 = 0x0a;
/// Status A bit 7: an update is in progress, the time registers are not to be read.
const RTC_UPDATE_IN_PROGRESS: u8 = 0x80;
/// How many reads of status A to wait for an update to end (it lasts under 2 ms).
const UIP_POLLS: u32 = 100_000;

/// How long to wait for any one tick, in TSC ticks: 2^32, over a second at 3 GHz, where a
/// tick is due every 10 ms. Time rather than wake-ups, as the watchdog's rate is a guess.
const TICK_TIMEOUT_TSC: u64 = 1 << 32;
/// How many ticks to wait for the RTC seconds to change, twice over: 3 s at 100 Hz.
const MAX_TICKS_PER_SECOND: u32 = 3 * HZ;
/// The accepted rate: 100 Hz ± 25%.
const MIN_RATE: u32 = HZ * 3 / 4;
const MAX_RATE: u32 = HZ * 5 / 4;

/// Exit statuses.
const STATUS_NO_TICKS: u8 = 1;
const STATUS_WRONG_PIN: u8 = 2;
const STATUS_RTC_STUCK: u8 = 3;
const STATUS_TICKS_STOPPED: u8 = 4;
const STATUS_RATE: u8 = 5;

static TICKS: AtomicU32 = AtomicU32::new(0);
static PIN0_INTERRUPTS: AtomicU32 = AtomicU32::new(0);
static WATCHDOG_INTERRUPTS: AtomicU32 = AtomicU32::new(0);

fn on_tick(_: &InterruptFrame) {
    TICKS.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
}

fn on_pin0(_: &InterruptFrame) {
    PIN0_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
}

fn on_watchdog(_: &InterruptFrame) {
    WATCHDOG_INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
}

fn main(vcpu_id: u32) -> ! {
    if vcpu_id != 0 {
        halt_forever();
    }
    interrupts::set_handler(TICK_VECTOR, on_tick);
    interrupts::set_handler(PIN0_VECTOR, on_pin0);
    interrupts::set_handler(WATCHDOG_VECTOR, on_watchdog);
    interrupts::load_idt();
    pic::mask_all();
    lapic::enable();
    let apic_id = lapic::id() as u8;
    ioapic::route(PIT_IOAPIC_PIN, TICK_VECTOR, apic_id);
    ioapic::route(0, PIN0_VECTOR, apic_id);
    lapic::start_periodic_timer(WATCHDOG_VECTOR, lapic::TIMER_DIVIDE_BY_16, WATCHDOG_COUNT);
    start_pit(HZ);
    println!(
        "timer: PIT channel 0 at {HZ} Hz, IRQ 0 on IOAPIC pin {PIT_IOAPIC_PIN} -> vector {TICK_VECTOR:#x}"
    );

    if !next_tick() {
        check_pin0();
        println!(
            "FAIL: no PIT interrupt on IOAPIC pin {PIT_IOAPIC_PIN} (APIC timer interrupts meanwhile: {})",
            WATCHDOG_INTERRUPTS.load(Ordering::Relaxed)
        );
        exit(STATUS_NO_TICKS);
    }

    // Start counting at a change of the seconds register, so the count spans one second.
    let first = rtc_seconds();
    let mut waited = 0;
    while rtc_seconds() == first {
        tick_or_fail();
        waited += 1;
        if waited > MAX_TICKS_PER_SECOND {
            println!(
                "FAIL: the RTC seconds register (CMOS 0x00) stayed {first:#x} for {MAX_TICKS_PER_SECOND} ticks"
            );
            exit(STATUS_RTC_STUCK);
        }
    }
    let second = rtc_seconds();
    let start = TICKS.load(Ordering::Relaxed);
    loop {
        tick_or_fail();
        if rtc_seconds() != second {
            break;
        }
        if TICKS.load(Ordering::Relaxed) - start > MAX_TICKS_PER_SECOND {
            println!(
                "FAIL: the RTC seconds register (CMOS 0x00) stayed {second:#x} for {MAX_TICKS_PER_SECOND} ticks"
            );
            exit(STATUS_RTC_STUCK);
        }
    }
    let ticks = TICKS.load(Ordering::Relaxed) - start;
    println!("timer: {ticks} ticks in one RTC second");
    check_pin0();
    if !(MIN_RATE..=MAX_RATE).contains(&ticks) {
        println!("FAIL: PIT rate expected {MIN_RATE}..={MAX_RATE} Hz got {ticks}");
        exit(STATUS_RATE);
    }
    println!("timer: rate OK");
    exit(0)
}

/// Programs PIT channel 0 as a rate generator at `hz`.
fn start_pit(hz: u32) {
    let divisor = (PIT_INPUT_HZ + hz / 2) / hz;
    // SAFETY: PIT programming only affects the timer interrupt.
    unsafe {
        outb(PIT_COMMAND, PIT_CHANNEL0_RATE_GENERATOR);
        outb(PIT_CHANNEL0, divisor as u8);
        outb(PIT_CHANNEL0, (divisor >> 8) as u8);
    }
}

/// Halts until the next PIT tick has been handled; false if none came in time.
fn next_tick() -> bool {
    let seen = TICKS.load(Ordering::Relaxed);
    let start = rdtsc();
    loop {
        interrupts::wait();
        if TICKS.load(Ordering::Relaxed) != seen {
            return true;
        }
        if rdtsc().wrapping_sub(start) > TICK_TIMEOUT_TSC {
            return false;
        }
    }
}

fn tick_or_fail() {
    if !next_tick() {
        println!(
            "FAIL: PIT interrupts stopped after {} ticks",
            TICKS.load(Ordering::Relaxed)
        );
        exit(STATUS_TICKS_STOPPED);
    }
}

/// Fails if IOAPIC pin 0 received anything: the PIT wired to the wrong pin.
fn check_pin0() {
    let stray = PIN0_INTERRUPTS.load(Ordering::Relaxed);
    if stray != 0 {
        println!(
            "FAIL: IOAPIC pin 0 received {stray} interrupts: ISA IRQ 0 (the PIT) must arrive on pin {PIT_IOAPIC_PIN}, as the MADT's interrupt source override says"
        );
        exit(STATUS_WRONG_PIN);
    }
}

fn cmos_read(register: u8) -> u8 {
    // SAFETY: selecting and reading a CMOS register has no side effect.
    unsafe {
        outb(CMOS_INDEX, register);
        inb(CMOS_DATA)
    }
}

/// The RTC seconds register (BCD or binary: only changes matter here), read once no update
/// is in progress.
fn rtc_seconds() -> u8 {
    for _ in 0..UIP_POLLS {
        if cmos_read(RTC_STATUS_A) & RTC_UPDATE_IN_PROGRESS == 0 {
            break;
        }
        pause();
    }
    cmos_read(RTC_SECONDS)
}
