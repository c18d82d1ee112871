//! The register semantics, access by access, with time passed in.

use super::*;

const ALL: u64 = u64::MAX;
const LOW: u64 = 0xffff_ffff;
const HIGH: u64 = !LOW;
const MS: u64 = 1_000_000;

fn timer(index: u64, register: u64) -> u64 {
    TIMER_BASE + index * TIMER_STRIDE + register
}

fn read(regs: &mut Registers, offset: u64, now: u64) -> u64 {
    regs.read(offset, now).0
}

fn write(regs: &mut Registers, offset: u64, value: u64, now: u64) -> Effects {
    regs.write(offset, (ALL, value), now)
}

/// An enabled HPET, legacy replacement as `legacy`, started at time 0.
fn enabled(legacy: bool) -> Registers {
    let mut regs = Registers::default();
    let config = ENABLE_CNF | if legacy { LEG_RT_CNF } else { 0 };
    write(&mut regs, CONFIG_REG, config, 0);
    regs
}

fn pulses(effects: Effects) -> Vec<u32> {
    (0..32)
        .filter(|gsi| effects.pulses & 1 << gsi != 0)
        .collect()
}

#[test]
fn capabilities_say_3_timers_64_bits_legacy_capable_at_100_mhz() {
    let mut regs = Registers::default();
    let caps = read(&mut regs, CAPABILITIES_REG, 0);
    assert_eq!(caps & 0xff, 1, "revision");
    assert_eq!((caps >> 8 & 0x1f) + 1, 3, "timers");
    assert_ne!(caps & 1 << 13, 0, "COUNT_SIZE_CAP: a 64-bit counter");
    assert_ne!(caps & 1 << 15, 0, "LEG_RT_CAP: legacy replacement routing");
    assert_eq!(caps >> 32, 10_000_000, "femtoseconds per tick");
    assert_eq!(caps, 0x0098_9680_8086_a201);
    // Read-only.
    write(&mut regs, CAPABILITIES_REG, 0, 0);
    assert_eq!(read(&mut regs, CAPABILITIES_REG, 0), caps);
}

#[test]
fn the_counter_runs_only_while_enabled_and_can_be_set_while_halted() {
    let mut regs = Registers::default();
    assert_eq!(read(&mut regs, COUNTER_REG, 50 * MS), 0);
    write(&mut regs, COUNTER_REG, 0x1_0000_0000, 50 * MS);
    assert_eq!(read(&mut regs, COUNTER_REG, 60 * MS), 0x1_0000_0000);
    write(&mut regs, CONFIG_REG, ENABLE_CNF, 100 * MS);
    // 1 ms = 100,000 ticks at 100 MHz.
    assert_eq!(
        read(&mut regs, COUNTER_REG, 101 * MS),
        0x1_0000_0000 + 100_000
    );
    write(&mut regs, CONFIG_REG, 0, 102 * MS);
    assert_eq!(
        read(&mut regs, COUNTER_REG, 500 * MS),
        0x1_0000_0000 + 200_000
    );
    // The low half alone, as a 32-bit write does.
    regs.write(COUNTER_REG, (LOW, 5), 500 * MS);
    assert_eq!(read(&mut regs, COUNTER_REG, 500 * MS), 0x1_0000_0005);
    regs.write(COUNTER_REG, (HIGH, 7 << 32), 500 * MS);
    assert_eq!(read(&mut regs, COUNTER_REG, 500 * MS), 0x7_0000_0005);
}

#[test]
fn only_defined_config_bits_stick() {
    let mut regs = Registers::default();
    write(&mut regs, CONFIG_REG, ALL, 0);
    assert_eq!(read(&mut regs, CONFIG_REG, 0), ENABLE_CNF | LEG_RT_CNF);
    write(&mut regs, timer(1, TIMER_CONFIG), ALL, 0);
    let config = read(&mut regs, timer(1, TIMER_CONFIG), 0);
    assert_eq!(config >> 32, u64::from(ROUTE_CAPABILITY));
    assert_eq!(config & 1 << 14, 0, "no FSB delivery");
    assert_eq!(config & 1 << 15, 0, "no FSB capability");
    assert_ne!(config & (TN_PERIODIC_CAP | TN_SIZE_CAP), 0);
    // FSB route: reads 0.
    write(&mut regs, timer(1, TIMER_FSB_ROUTE), ALL, 0);
    assert_eq!(read(&mut regs, timer(1, TIMER_FSB_ROUTE), 0), 0);
}

#[test]
fn legacy_replacement_routes_timer_0_to_irq_0_and_timer_1_to_irq_8_and_stops_the_pit() {
    let mut regs = Registers::default();
    let effects = write(&mut regs, CONFIG_REG, ENABLE_CNF | LEG_RT_CNF, 0);
    assert_eq!(effects.pit_output, Some(false));
    assert_eq!(regs.route(0), Some(0));
    assert_eq!(regs.route(1), Some(8));
    assert_eq!(
        regs.route(2),
        None,
        "timer 2 keeps its own route (0: not capable)"
    );
    let effects = write(&mut regs, CONFIG_REG, ENABLE_CNF, 0);
    assert_eq!(effects.pit_output, Some(true));
    assert_eq!(write(&mut regs, CONFIG_REG, 0, 0).pit_output, None);
}

#[test]
fn routes_outside_the_capability_give_no_interrupt() {
    let mut regs = enabled(false);
    for (pin, gsi) in [(2, Some(0)), (8, Some(8)), (16, Some(16)), (23, Some(23))] {
        write(&mut regs, timer(2, TIMER_CONFIG), pin << 9, 0);
        assert_eq!(regs.route(2), gsi, "pin {pin}");
    }
    for pin in [0, 1, 3, 9, 15, 24, 31] {
        write(&mut regs, timer(2, TIMER_CONFIG), pin << 9, 0);
        assert_eq!(regs.route(2), None, "pin {pin}");
    }
}

#[test]
fn a_one_shot_fires_once_when_the_counter_crosses_its_comparator() {
    let mut regs = enabled(true);
    write(&mut regs, timer(0, TIMER_CONFIG), TN_INT_ENB, 0);
    write(&mut regs, timer(0, TIMER_COMPARATOR), 100_000, 0);
    assert_eq!(regs.next_deadline(0), Some(MS));
    assert_eq!(regs.catch_up(MS - 10), Effects::default());
    assert_eq!(pulses(regs.catch_up(MS)), [0]);
    assert_eq!(regs.catch_up(5 * MS), Effects::default(), "once");
    assert!(
        regs.next_deadline(5 * MS) > Some(u64::MAX / 2),
        "not before a wrap"
    );
    assert_eq!(read(&mut regs, timer(0, TIMER_COMPARATOR), 5 * MS), 100_000);
}

#[test]
fn a_periodic_timer_accumulates_its_period() {
    let mut regs = enabled(true);
    // Linux's and NimbOS's sequence: VAL_SET, then accumulator, then period.
    let config = TN_INT_ENB | TN_PERIODIC | TN_VAL_SET;
    write(&mut regs, timer(0, TIMER_CONFIG), config, 0);
    write(&mut regs, timer(0, TIMER_COMPARATOR), 100_000, 0);
    assert_eq!(read(&mut regs, timer(0, TIMER_CONFIG), 0) & TN_VAL_SET, 0);
    write(&mut regs, timer(0, TIMER_COMPARATOR), 1_000_000, 0);
    assert_eq!(read(&mut regs, timer(0, TIMER_COMPARATOR), 0), 100_000);
    assert_eq!(pulses(regs.catch_up(MS)), [0]);
    assert_eq!(read(&mut regs, timer(0, TIMER_COMPARATOR), MS), 1_100_000);
    assert_eq!(regs.next_deadline(MS), Some(10 * MS));
    assert_eq!(regs.catch_up(10 * MS), Effects::default());
    assert_eq!(pulses(regs.catch_up(11 * MS)), [0]);
    // Three periods missed at once: one interrupt, the comparator past the counter.
    assert_eq!(pulses(regs.catch_up(45 * MS)), [0]);
    assert_eq!(
        read(&mut regs, timer(0, TIMER_COMPARATOR), 45 * MS),
        5_100_000
    );
}

#[test]
fn a_periodic_timer_without_val_set_keeps_its_accumulator() {
    let mut regs = enabled(false);
    write(&mut regs, timer(2, TIMER_CONFIG), TN_PERIODIC, 0);
    write(&mut regs, timer(2, TIMER_COMPARATOR), 500, 0);
    assert_eq!(read(&mut regs, timer(2, TIMER_COMPARATOR), 0), u64::MAX);
}

#[test]
fn thirty_two_bit_mode_truncates_and_matches_the_low_half() {
    let mut regs = Registers::default();
    write(&mut regs, COUNTER_REG, 0x5_ffff_ff00, 0);
    write(&mut regs, timer(1, TIMER_CONFIG), TN_32BIT | TN_INT_ENB, 0);
    assert_eq!(
        read(&mut regs, timer(1, TIMER_COMPARATOR), 0),
        0xffff_ffff,
        "truncated on entering 32-bit mode"
    );
    write(&mut regs, timer(1, TIMER_COMPARATOR), 0x1234_0000_0010, 0);
    assert_eq!(read(&mut regs, timer(1, TIMER_COMPARATOR), 0), 0x10);
    write(&mut regs, CONFIG_REG, ENABLE_CNF | LEG_RT_CNF, 0);
    // From 0x5_ffff_ff00 to 0x6_0000_0010: 0x110 ticks.
    assert_eq!(regs.next_deadline(0), Some(0x110 * NS_PER_TICK));
    assert_eq!(pulses(regs.catch_up(0x110 * NS_PER_TICK)), [8]);
}

#[test]
fn level_interrupts_set_status_and_hold_the_line_until_cleared() {
    let mut regs = enabled(false);
    let config = TN_LEVEL | TN_INT_ENB | 8 << 9;
    write(&mut regs, timer(2, TIMER_CONFIG), config, 0);
    write(&mut regs, timer(2, TIMER_COMPARATOR), 1000, 0);
    assert_eq!(regs.catch_up(20 * MS), Effects::default(), "no pulse");
    assert_eq!(read(&mut regs, STATUS_REG, 20 * MS), 0b100);
    assert_eq!(regs.asserted_lines(), 1 << 8);
    // Writing 0s, or 1s elsewhere, clears nothing.
    write(&mut regs, STATUS_REG, 0b011, 20 * MS);
    assert_eq!(regs.asserted_lines(), 1 << 8);
    write(&mut regs, STATUS_REG, 0b100, 20 * MS);
    assert_eq!(
        (read(&mut regs, STATUS_REG, 20 * MS), regs.asserted_lines()),
        (0, 0)
    );
}

#[test]
fn edge_interrupts_leave_no_status_and_disabling_drops_level_ones() {
    let mut regs = enabled(false);
    write(&mut regs, timer(2, TIMER_CONFIG), TN_INT_ENB | 16 << 9, 0);
    write(&mut regs, timer(2, TIMER_COMPARATOR), 1000, 0);
    assert_eq!(pulses(regs.catch_up(MS)), [16]);
    assert_eq!(read(&mut regs, STATUS_REG, MS), 0);
    // Level now, fired again at a new comparator, then the timer's interrupt disabled.
    write(
        &mut regs,
        timer(2, TIMER_CONFIG),
        TN_LEVEL | TN_INT_ENB | 16 << 9,
        MS,
    );
    write(&mut regs, timer(2, TIMER_COMPARATOR), 200_000, MS);
    regs.catch_up(3 * MS);
    assert_eq!(regs.asserted_lines(), 1 << 16);
    write(
        &mut regs,
        timer(2, TIMER_CONFIG),
        TN_LEVEL | 16 << 9,
        3 * MS,
    );
    assert_eq!(regs.asserted_lines(), 0);
    // And stopping the counter drops the status too.
    write(
        &mut regs,
        timer(2, TIMER_CONFIG),
        TN_LEVEL | TN_INT_ENB | 16 << 9,
        3 * MS,
    );
    write(&mut regs, timer(2, TIMER_COMPARATOR), 400_000, 3 * MS);
    regs.catch_up(5 * MS);
    assert_eq!(regs.asserted_lines(), 1 << 16);
    write(&mut regs, CONFIG_REG, 0, 5 * MS);
    assert_eq!((regs.asserted_lines(), regs.status), (0, 0));
}

#[test]
fn disabled_timers_do_not_interrupt_and_halted_counters_never_match() {
    let mut regs = Registers::default();
    write(&mut regs, timer(0, TIMER_CONFIG), TN_INT_ENB, 0);
    write(&mut regs, timer(0, TIMER_COMPARATOR), 10, 0);
    assert_eq!(regs.next_deadline(0), None);
    assert_eq!(regs.catch_up(u64::MAX), Effects::default());
    write(&mut regs, CONFIG_REG, ENABLE_CNF, 0);
    write(&mut regs, timer(0, TIMER_CONFIG), 0, 0);
    assert_eq!(regs.next_deadline(0), None);
    assert_eq!(regs.catch_up(MS), Effects::default());
}

#[test]
fn unknown_and_reserved_offsets_read_zero_and_ignore_writes() {
    let mut regs = Registers::default();
    for offset in [
        0x8,
        0x18,
        0x28,
        0xe8,
        0xf8,
        timer(0, 0x18),
        timer(3, 0),
        0x3f8,
        !7,
    ] {
        write(&mut regs, offset, ALL, 0);
        assert_eq!(read(&mut regs, offset, 0), 0, "{offset:#x}");
    }
    assert_eq!(read(&mut regs, CONFIG_REG, 0), 0);
}
