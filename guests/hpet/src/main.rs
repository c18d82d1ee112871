//! axvm's HPET guest: uses the HPET the way kernels built for QEMU's q35 do (NimbOS
//! calibrates its clocks from it, Linux takes timer interrupts from it), then powers off
//! through QEMU's ACPI PM port, as ArceOS and NimbOS do. Booted through PVH, it runs the
//! same under axvm (with the HPET passed through, which axvm emulates) and under QEMU
//! `-M q35` (`scripts/qemu-compat.sh` compares the two).
//!
//! Output (the first line always starts `hpet: `):
//!
//! ```text
//! hpet: ACPI HPET table: registers at 0xfed00000, 3 comparators, legacy replacement capable
//! hpet: rev 1, 3 timers, 64-bit counter, legacy replacement capable, period 10000000 fs
//! hpet: halted counter reads back what was written
//! hpet: counter agrees with the ACPI PM timer within 5% over 100 ms
//! hpet: timer 0 periodic every 10 ms on IRQ 0 (IOAPIC pin 2), PIT silenced: 20 periods, none early
//! hpet: timer 1 one-shot on IRQ 8 (IOAPIC pin 8): one interrupt, not before its deadline
//! hpet: timer 2 level-triggered, 32-bit: status bit set at its deadline, cleared by writing 1
//! hpet: all checks passed
//! hpet: powering off: 0x2000 (SLP_EN, SLP_TYP 0) to PM1a_CNT at port 0x604
//! ```
//!
//! and the VM powers off (axvm: exit status 0; QEMU: exits 0). A failed check prints
//! `FAIL: ...` and exits with its own status ([`status`]) on port 0xf4. Every HPET access
//! is 32 bits wide, as Linux's driver makes them and every QEMU version takes them.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};

use rt::interrupts::{self, ioapic, lapic, pic, InterruptFrame};
use rt::io::{inl, mmio_read, mmio_write, outb, outw};
use rt::{acpi, fail, println};

/// Exit statuses, one per failed check.
pub mod status {
    /// No RSDP, or no valid `HPET` table.
    pub const TABLE: u8 = 2;
    /// The capabilities register: no period, no legacy replacement, fewer than 3 timers.
    pub const CAPABILITIES: u8 = 3;
    /// A halted counter did not hold what was written.
    pub const HALTED: u8 = 4;
    /// The counter's rate disagrees with the PM timer's.
    pub const RATE: u8 = 5;
    /// Timer 0's periodic interrupts did not come, or not at its period.
    pub const PERIODIC: u8 = 6;
    /// Timer 1's one-shot interrupt did not come once, after its deadline.
    pub const ONE_SHOT: u8 = 7;
    /// Timer 2's level status bit.
    pub const LEVEL: u8 = 8;
    /// The VM still runs after the power-off write.
    pub const POWER_OFF: u8 = 9;
    /// Started at the ELF entry in long mode: the VMM ignored the PVH note.
    pub const NOT_PVH: u8 = 0x7e;
}

/// Where the HPET must be (the PC's address, which the table must name).
const HPET_BASE: usize = 0xfed0_0000;
/// Registers (offsets from the base).
const GCAP_ID: usize = 0x000;
const GEN_CONF: usize = 0x010;
const GINTR_STA: usize = 0x020;
const MAIN_COUNTER: usize = 0x0f0;
const fn timer_config(n: usize) -> usize {
    0x100 + 0x20 * n
}
const fn timer_comparator(n: usize) -> usize {
    0x108 + 0x20 * n
}
/// GEN_CONF bits.
const ENABLE_CNF: u32 = 1 << 0;
const LEG_RT_CNF: u32 = 1 << 1;
/// Tn_CONF bits.
const TN_LEVEL: u32 = 1 << 1;
const TN_INT_ENB: u32 = 1 << 2;
const TN_PERIODIC: u32 = 1 << 3;
const TN_VAL_SET: u32 = 1 << 6;
const TN_32BIT: u32 = 1 << 8;
const TN_ROUTE_SHIFT: u32 = 9;

/// The ACPI PM timer (QEMU q35's and axvm's PM block at 0x600), 3.579545 MHz; only its
/// low 24 bits are used, so a 24-bit timer works too.
const PM_TIMER_PORT: u16 = 0x608;
const PM_TIMER_HZ: u64 = 3_579_545;
const PM_TIMER_MASK: u32 = 0xff_ffff;
/// PM1a_CNT, and what powers QEMU's q35 off: SLP_EN with SLP_TYP 0.
const PM1A_CNT_PORT: u16 = 0x604;
const POWER_OFF: u16 = 0x2000;

/// The PIT, programmed to interrupt at 1 kHz on IRQ 0 before legacy replacement.
const PIT_CHANNEL0: u16 = 0x40;
const PIT_COMMAND: u16 = 0x43;
const PIT_1KHZ_DIVISOR: u16 = 1193;

/// IOAPIC inputs and vectors.
const IRQ0_PIN: u8 = 2;
const IRQ8_PIN: u8 = 8;
const LEVEL_PIN: u32 = 20;
const TIMER0_VECTOR: u8 = 0x30;
const TIMER1_VECTOR: u8 = 0x31;
const WATCHDOG_VECTOR: u8 = 0x32;
/// A local APIC timer that wakes `hlt` now and then, so a missing interrupt ends in a FAIL.
const WATCHDOG_COUNT: u32 = 4_000_000;

/// Counter ticks per millisecond at the nominal 100 MHz (checked against the PM timer).
const TICKS_PER_MS: u32 = 100_000;
/// Timer 0's period: 10 ms.
const PERIOD: u32 = 10 * TICKS_PER_MS;
/// How far ahead a one-shot comparator is set: a comparator the counter has already passed
/// matches only after the counter wraps (as on hardware), so the deadline must leave room for
/// the register writes that arm it, each an exit that takes a few ms on a nested host under
/// load.
const ARMING_MARGIN: u32 = 50 * TICKS_PER_MS;
/// Periodic interrupts counted.
const MEASURED_PERIODS: u32 = 20;

static TIMER0_TICKS: AtomicU32 = AtomicU32::new(0);
/// The counter's low half at the last timer 0 interrupt.
static TIMER0_LAST: AtomicU32 = AtomicU32::new(0);
static TIMER1_TICKS: AtomicU32 = AtomicU32::new(0);
static TIMER1_AT: AtomicU32 = AtomicU32::new(0);

rt::entry32!(bsp, ap);
rt::pvh_note!();
rt::entry!(not_pvh);

fn not_pvh(vcpu_id: u32) -> ! {
    if vcpu_id == 0 {
        println!("hpet: FAIL: started in 64-bit mode at the ELF entry: the VMM did not boot it through the PVH note");
        rt::exit(status::NOT_PVH);
    }
    rt::cpu::halt_forever()
}

fn ap(_apic_id: u32) -> ! {
    rt::cpu::halt_forever()
}

fn read(offset: usize) -> u32 {
    // SAFETY: the HPET's register block is identity-mapped device memory; 32-bit aligned.
    unsafe { mmio_read::<u32>(HPET_BASE + offset) }
}

fn write(offset: usize, value: u32) {
    // SAFETY: as for `read`.
    unsafe { mmio_write::<u32>(HPET_BASE + offset, value) }
}

/// The main counter's low half, what 32-bit timers compare against.
fn counter() -> u32 {
    read(MAIN_COUNTER)
}

/// Whether the 32-bit counter value `now` is at or past `deadline` (within 2^31 ticks).
fn reached(now: u32, deadline: u32) -> bool {
    now.wrapping_sub(deadline) < 1 << 31
}

fn on_timer0(_: &InterruptFrame) {
    TIMER0_LAST.store(counter(), Ordering::Relaxed);
    TIMER0_TICKS.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
}

fn on_timer1(_: &InterruptFrame) {
    TIMER1_AT.store(counter(), Ordering::Relaxed);
    TIMER1_TICKS.fetch_add(1, Ordering::Relaxed);
    lapic::eoi();
}

fn on_watchdog(_: &InterruptFrame) {
    lapic::eoi();
}

fn bsp(_eax: u32, _ebx: u32) -> ! {
    check_table();
    check_capabilities();
    check_halted_counter();
    write(GEN_CONF, ENABLE_CNF);
    check_rate();
    setup_interrupts();
    check_periodic();
    check_one_shot();
    check_level();
    write(GEN_CONF, 0);
    lapic::stop_timer();
    println!("hpet: all checks passed");
    println!("hpet: powering off: {POWER_OFF:#x} (SLP_EN, SLP_TYP 0) to PM1a_CNT at port {PM1A_CNT_PORT:#x}");
    // SAFETY: PM1a_CNT: this write turns the machine off.
    unsafe { outw(PM1A_CNT_PORT, POWER_OFF) };
    let start = counter();
    while !reached(counter(), start.wrapping_add(100 * TICKS_PER_MS)) {
        rt::cpu::pause();
    }
    fail!(
        status::POWER_OFF,
        "still running 100 ms after writing {POWER_OFF:#x} to port {PM1A_CNT_PORT:#x}"
    )
}

/// The ACPI `HPET` table: where the registers are, how many comparators.
fn check_table() {
    let Some(rsdp) = acpi::find_rsdp() else {
        fail!(status::TABLE, "no RSDP in 0xe0000-0xfffff");
    };
    let table = match acpi::find_table(&rsdp, b"HPET") {
        Ok(table) => table,
        Err(why) => fail!(status::TABLE, "no ACPI HPET table: {why}"),
    };
    // SAFETY: inside the table `find_table` validated (56 bytes).
    let (id, base) = unsafe {
        (
            core::ptr::read_unaligned((table + 36) as *const u32),
            core::ptr::read_unaligned((table + 44) as *const u64),
        )
    };
    let comparators = (id >> 8 & 0x1f) + 1;
    let legacy = if id & 1 << 15 != 0 {
        "capable"
    } else {
        "not capable"
    };
    println!(
        "hpet: ACPI HPET table: registers at {base:#x}, {comparators} comparators, legacy replacement {legacy}"
    );
    if base != HPET_BASE as u64 {
        fail!(
            status::TABLE,
            "HPET base expected {HPET_BASE:#x} got {base:#x}"
        );
    }
}

/// GCAP_ID: what NimbOS reads (and divides by).
fn check_capabilities() {
    let low = read(GCAP_ID);
    let period_fs = read(GCAP_ID + 4);
    let timers = (low >> 8 & 0x1f) + 1;
    let bits = if low & 1 << 13 != 0 { 64 } else { 32 };
    let legacy = low & 1 << 15 != 0;
    println!(
        "hpet: rev {}, {timers} timers, {bits}-bit counter, legacy replacement {}, period {period_fs} fs",
        low & 0xff,
        if legacy { "capable" } else { "not capable" }
    );
    if period_fs == 0 || timers < 3 || !legacy {
        fail!(
            status::CAPABILITIES,
            "an HPET with a period, 3 timers and legacy replacement expected"
        );
    }
}

/// A halted counter holds what is written to it.
fn check_halted_counter() {
    write(GEN_CONF, 0);
    write(MAIN_COUNTER, 0x1234);
    write(MAIN_COUNTER + 4, 0);
    let first = (read(MAIN_COUNTER + 4), read(MAIN_COUNTER));
    let again = (read(MAIN_COUNTER + 4), read(MAIN_COUNTER));
    if first != (0, 0x1234) || again != first {
        fail!(
            status::HALTED,
            "halted counter expected 0x1234 twice got {first:x?} then {again:x?}"
        );
    }
    println!("hpet: halted counter reads back what was written");
}

/// The PM timer's low 24 bits.
fn pm_timer() -> u32 {
    // SAFETY: reading the PM timer has no side effect.
    unsafe { inl(PM_TIMER_PORT) & PM_TIMER_MASK }
}

/// Counts 100 ms of the ACPI PM timer and the counter ticks meanwhile: 10,000,000 at
/// 100 MHz, within 5%. The host may deschedule the vCPU between two reads, so the best of
/// five tries counts, as NimbOS calibrates.
fn check_rate() {
    let nominal = u64::from(TICKS_PER_MS) * 1000;
    let mut closest = 0u64;
    for _ in 0..5 {
        let hz = measure_rate();
        if hz.abs_diff(nominal) < closest.abs_diff(nominal) {
            closest = hz;
        }
        if hz.abs_diff(nominal) <= nominal / 20 {
            println!("hpet: counter agrees with the ACPI PM timer within 5% over 100 ms");
            return;
        }
    }
    fail!(
        status::RATE,
        "counter at {closest} Hz against the PM timer at best, {nominal} Hz expected"
    );
}

/// The counter's rate over 100 ms of the PM timer, in Hz.
fn measure_rate() -> u64 {
    let window = PM_TIMER_HZ / 10;
    let (mut pm_elapsed, mut last) = (0u64, pm_timer());
    let start = counter();
    while pm_elapsed < window {
        let now = pm_timer();
        pm_elapsed += u64::from(now.wrapping_sub(last) & PM_TIMER_MASK);
        last = now;
    }
    let ticks = u64::from(counter().wrapping_sub(start));
    ticks * PM_TIMER_HZ / pm_elapsed
}

fn setup_interrupts() {
    interrupts::set_handler(TIMER0_VECTOR, on_timer0);
    interrupts::set_handler(TIMER1_VECTOR, on_timer1);
    interrupts::set_handler(WATCHDOG_VECTOR, on_watchdog);
    interrupts::load_idt();
    pic::mask_all();
    lapic::enable();
    let apic_id = lapic::id() as u8;
    ioapic::route(IRQ0_PIN, TIMER0_VECTOR, apic_id);
    ioapic::route(IRQ8_PIN, TIMER1_VECTOR, apic_id);
    ioapic::mask(LEVEL_PIN as u8);
    lapic::start_periodic_timer(WATCHDOG_VECTOR, lapic::TIMER_DIVIDE_BY_16, WATCHDOG_COUNT);
}

/// Halts until `done()` or until the counter reaches `deadline`; whether `done()`.
fn wait_until(deadline: u32, done: impl Fn() -> bool) -> bool {
    while !done() {
        if reached(counter(), deadline) {
            return done();
        }
        interrupts::wait();
    }
    true
}

/// Timer 0, periodic at 10 ms under legacy replacement: IRQ 0, IOAPIC pin 2. The PIT,
/// running at 1 kHz on the same IRQ, must be silenced by legacy replacement, as on QEMU.
///
/// Each interrupt answers at least one period of the comparator's grid (late ones may
/// answer several), so the 21st interrupt cannot come before 20 periods: one PIT interrupt
/// latched before legacy replacement started may be among them. A busy host makes them
/// late, never early; a PIT still on IRQ 0 makes them ten times as frequent.
fn check_periodic() {
    // SAFETY: the PIT's channel 0 only drives IRQ 0.
    unsafe {
        outb(PIT_COMMAND, 0x34); // channel 0, lobyte/hibyte, rate generator
        outb(PIT_CHANNEL0, PIT_1KHZ_DIVISOR as u8);
        outb(PIT_CHANNEL0, (PIT_1KHZ_DIVISOR >> 8) as u8);
    }
    write(GEN_CONF, ENABLE_CNF | LEG_RT_CNF);
    // A PIT tick raised just before legacy replacement silenced the PIT may still be on its
    // way: let it land (timer 0 is not armed yet), then count from zero.
    let settled = counter().wrapping_add(5 * TICKS_PER_MS);
    wait_until(settled, || false);
    TIMER0_TICKS.store(0, Ordering::Relaxed);
    // Linux's sequence: VAL_SET, the first deadline, then the period.
    write(
        timer_config(0),
        TN_INT_ENB | TN_PERIODIC | TN_VAL_SET | TN_32BIT,
    );
    let armed = counter();
    write(timer_comparator(0), armed.wrapping_add(PERIOD));
    write(timer_comparator(0), PERIOD);
    let wanted = MEASURED_PERIODS + 1;
    // Ten times as long as they take: a busy host may deliver them late, never early.
    let deadline = counter().wrapping_add(10 * wanted * PERIOD);
    let got = wait_until(deadline, || TIMER0_TICKS.load(Ordering::Relaxed) >= wanted);
    write(timer_config(0), 0);
    let ticks = TIMER0_TICKS.load(Ordering::Relaxed);
    if !got {
        fail!(
            status::PERIODIC,
            "{ticks} timer 0 interrupts on IOAPIC pin {IRQ0_PIN} in {} ms, {wanted} expected",
            10 * wanted * 10
        );
    }
    let measured = TIMER0_LAST.load(Ordering::Relaxed).wrapping_sub(armed);
    let least = MEASURED_PERIODS * PERIOD;
    if measured < least {
        fail!(
            status::PERIODIC,
            "{wanted} interrupts came {} ms after arming, at least {} ms expected (a PIT still driving IRQ 0?)",
            measured / TICKS_PER_MS,
            least / TICKS_PER_MS
        );
    }
    println!(
        "hpet: timer 0 periodic every 10 ms on IRQ 0 (IOAPIC pin {IRQ0_PIN}), PIT silenced: {MEASURED_PERIODS} periods, none early"
    );
}

/// Timer 1, one-shot [`ARMING_MARGIN`] ahead under legacy replacement: IRQ 8, IOAPIC pin 8; exactly one
/// interrupt, at or after the deadline.
fn check_one_shot() {
    // The comparator first, then the interrupt enabled: QEMU fires at once a timer enabled
    // with a comparator 2^31 or more ticks away.
    write(timer_config(1), TN_32BIT);
    let deadline = counter().wrapping_add(ARMING_MARGIN);
    write(timer_comparator(1), deadline);
    write(timer_config(1), TN_INT_ENB | TN_32BIT);
    let got = wait_until(deadline.wrapping_add(200 * TICKS_PER_MS), || {
        TIMER1_TICKS.load(Ordering::Relaxed) >= 1
    });
    if !got {
        fail!(
            status::ONE_SHOT,
            "no timer 1 interrupt on IOAPIC pin {IRQ8_PIN} within 200 ms of its deadline"
        );
    }
    let at = TIMER1_AT.load(Ordering::Relaxed);
    if !reached(at, deadline) {
        fail!(
            status::ONE_SHOT,
            "timer 1 interrupted at {at:#x}, before its deadline {deadline:#x}"
        );
    }
    // Another 30 ms: a one-shot fires once.
    let later = counter().wrapping_add(30 * TICKS_PER_MS);
    wait_until(later, || false);
    write(timer_config(1), 0);
    let ticks = TIMER1_TICKS.load(Ordering::Relaxed);
    if ticks != 1 {
        fail!(
            status::ONE_SHOT,
            "timer 1 one-shot interrupted {ticks} times"
        );
    }
    println!(
        "hpet: timer 1 one-shot on IRQ 8 (IOAPIC pin {IRQ8_PIN}): one interrupt, not before its deadline"
    );
}

/// Timer 2, level-triggered, 32-bit, routed to a masked IOAPIC input: its status bit is
/// set once its deadline passes and cleared by writing 1 to it.
fn check_level() {
    let route_capability = read(timer_config(2) + 4);
    if route_capability & 1 << LEVEL_PIN == 0 {
        fail!(
            status::LEVEL,
            "timer 2 cannot use IOAPIC pin {LEVEL_PIN}: route capability {route_capability:#x}"
        );
    }
    let config = TN_LEVEL | TN_32BIT | LEVEL_PIN << TN_ROUTE_SHIFT;
    write(timer_config(2), config);
    if read(timer_comparator(2) + 4) != 0 {
        fail!(status::LEVEL, "a 32-bit timer's comparator has a high half");
    }
    let deadline = counter().wrapping_add(ARMING_MARGIN);
    write(timer_comparator(2), deadline);
    write(timer_config(2), config | TN_INT_ENB);
    let timeout = deadline.wrapping_add(200 * TICKS_PER_MS);
    while read(GINTR_STA) & 1 << 2 == 0 {
        if reached(counter(), timeout) {
            fail!(
                status::LEVEL,
                "timer 2's status bit not set 200 ms after its deadline"
            );
        }
        rt::cpu::pause();
    }
    if !reached(counter(), deadline) {
        fail!(
            status::LEVEL,
            "timer 2's status bit set before its deadline"
        );
    }
    write(GINTR_STA, 1 << 2);
    let status = read(GINTR_STA);
    write(timer_config(2), 0);
    if status & 1 << 2 != 0 {
        fail!(
            status::LEVEL,
            "writing 1 left timer 2's status bit set: {status:#x}"
        );
    }
    println!(
        "hpet: timer 2 level-triggered, 32-bit: status bit set at its deadline, cleared by writing 1"
    );
}
