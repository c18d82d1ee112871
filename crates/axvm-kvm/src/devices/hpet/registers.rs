//! The HPET's register file as a state machine of time: every operation takes the host
//! time (nanoseconds since the device started) and returns what the interrupt lines must
//! do, so the semantics are tested without threads, clocks or KVM.
//!
//! Timers fire by *crossing*: `checked` is the main counter value up to which comparator
//! matches were handled, and a timer fires when its next match lies in
//! `(checked, counter]`. Every access and every wake-up of the timer thread first catches up
//! to the present, so a match is never missed however late the thread wakes, and a match is
//! handled once: a periodic timer's comparator then moves past the counter by whole periods
//! (several missed periods give one interrupt, as a guest that masked interrupts for that
//! long would see), a one-shot timer's stays (its next match is after the counter wraps: 2^32
//! ticks, 43 s, in 32-bit mode; never in 64-bit mode).

use crate::platform::pc::layout::{RTC_IRQ, TIMER_IOAPIC_PIN, TIMER_IRQ};

/// The HPET's identity (timer count, period, capabilities register), shared with the ACPI
/// `HPET` table that describes it (`axvm_pc::acpi`), so the two cannot disagree.
pub use axvm_pc::acpi::{
    HPET_CAPABILITIES as CAPABILITIES, HPET_PERIOD_FS as PERIOD_FS, HPET_TIMERS as TIMERS,
};
/// Nanoseconds per counter tick.
pub const NS_PER_TICK: u64 = PERIOD_FS / 1_000_000;

/// Register offsets.
pub const CAPABILITIES_REG: u64 = 0x000;
/// General configuration.
pub const CONFIG_REG: u64 = 0x010;
/// General interrupt status.
pub const STATUS_REG: u64 = 0x020;
/// Main counter.
pub const COUNTER_REG: u64 = 0x0f0;
/// Timer n's registers are at `TIMER_BASE + n * TIMER_STRIDE`.
pub const TIMER_BASE: u64 = 0x100;
/// The distance between two timers' register blocks.
pub const TIMER_STRIDE: u64 = 0x20;
/// Within a timer block: configuration and capabilities.
pub const TIMER_CONFIG: u64 = 0x0;
/// Within a timer block: comparator.
pub const TIMER_COMPARATOR: u64 = 0x8;
/// Within a timer block: FSB interrupt route (FSB delivery is not offered: reads 0).
pub const TIMER_FSB_ROUTE: u64 = 0x10;

/// GEN_CONF: ENABLE_CNF, the main counter runs and timers may interrupt.
pub const ENABLE_CNF: u64 = 1 << 0;
/// GEN_CONF: LEG_RT_CNF, timer 0 drives IRQ 0 and timer 1 IRQ 8 (and the PIT is silenced).
pub const LEG_RT_CNF: u64 = 1 << 1;

/// Tn_CONF: Tn_INT_TYPE_CNF, level-triggered (1) or edge-triggered (0).
pub const TN_LEVEL: u64 = 1 << 1;
/// Tn_CONF: Tn_INT_ENB_CNF, the timer may interrupt.
pub const TN_INT_ENB: u64 = 1 << 2;
/// Tn_CONF: Tn_TYPE_CNF, periodic (1) or one-shot (0).
pub const TN_PERIODIC: u64 = 1 << 3;
/// Tn_CONF: Tn_PER_INT_CAP (read-only 1: every timer can be periodic).
pub const TN_PERIODIC_CAP: u64 = 1 << 4;
/// Tn_CONF: Tn_SIZE_CAP (read-only 1: 64-bit comparators).
pub const TN_SIZE_CAP: u64 = 1 << 5;
/// Tn_CONF: Tn_VAL_SET_CNF, the next comparator write sets a periodic timer's accumulator.
pub const TN_VAL_SET: u64 = 1 << 6;
/// Tn_CONF: Tn_32MODE_CNF, the timer works on the counter's low 32 bits.
pub const TN_32BIT: u64 = 1 << 8;
/// Tn_CONF: Tn_INT_ROUTE_CNF, the IOAPIC input (bits 9-13).
const TN_ROUTE_SHIFT: u32 = 9;
const TN_ROUTE_MASK: u64 = 0x1f << TN_ROUTE_SHIFT;
/// Tn_CONF bits the guest can write (FSB_EN stays 0: no FSB delivery).
const TN_WRITABLE: u64 =
    TN_LEVEL | TN_INT_ENB | TN_PERIODIC | TN_VAL_SET | TN_32BIT | TN_ROUTE_MASK;
/// Tn_INT_ROUTE_CAP: the IOAPIC inputs a timer may use, as QEMU's q35 offers them: 2, 8 and
/// 16-23.
pub const ROUTE_CAPABILITY: u32 = 1 << 2 | 1 << 8 | 0xff << 16;

/// The KVM GSI that drives IOAPIC input `pin` in axvm's PC routing: the timer's pin 2 is
/// reached through IRQ 0 (see `platform::pc::layout`, "Interrupt wiring"), others directly.
pub fn gsi_of_ioapic_pin(pin: u32) -> u32 {
    if pin == u32::from(TIMER_IOAPIC_PIN) {
        u32::from(TIMER_IRQ)
    } else {
        pin
    }
}

/// What the interrupt lines must do after an operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// GSIs to pulse (edge-triggered interrupts), one bit each.
    pub pulses: u32,
    /// The PIT's interrupt output: `Some(false)` when legacy replacement starts,
    /// `Some(true)` when it ends.
    pub pit_output: Option<bool>,
}

/// One comparator.
#[derive(Clone, Copy, Debug)]
struct Timer {
    /// Tn_CONF's writable bits.
    config: u64,
    /// The value the counter is compared against (the accumulator of a periodic timer).
    comparator: u64,
    /// A periodic timer's increment: the last value written to the comparator.
    period: u64,
}

impl Default for Timer {
    fn default() -> Self {
        // The spec's reset values: comparators all ones, every mode bit 0.
        Self {
            config: 0,
            comparator: u64::MAX,
            period: 0,
        }
    }
}

impl Timer {
    fn has(&self, bit: u64) -> bool {
        self.config & bit != 0
    }

    /// How many ticks after counter value `from` this timer next matches (at least 1).
    fn ticks_to_match(&self, from: u64) -> u64 {
        if self.has(TN_32BIT) {
            match (self.comparator as u32).wrapping_sub(from as u32) {
                0 => 1 << 32,
                ticks => u64::from(ticks),
            }
        } else {
            match self.comparator.wrapping_sub(from) {
                0 => u64::MAX,
                ticks => ticks,
            }
        }
    }

    /// The register's width as a mask.
    fn width_mask(&self) -> u64 {
        if self.has(TN_32BIT) {
            u64::from(u32::MAX)
        } else {
            u64::MAX
        }
    }
}

/// The HPET's state (see the module documentation).
#[derive(Debug, Default)]
pub struct Registers {
    config: u64,
    /// Level-triggered interrupt status bits, one per timer.
    status: u64,
    /// The main counter's value at `since_ns`.
    counter_base: u64,
    /// When the counter had `counter_base` (it has it still when halted).
    since_ns: u64,
    /// The counter value up to which matches were handled.
    checked: u64,
    timers: [Timer; TIMERS],
}

impl Registers {
    fn enabled(&self) -> bool {
        self.config & ENABLE_CNF != 0
    }

    /// The main counter at `now_ns`.
    pub fn counter(&self, now_ns: u64) -> u64 {
        if !self.enabled() {
            return self.counter_base;
        }
        let ticks = now_ns.saturating_sub(self.since_ns) / NS_PER_TICK;
        self.counter_base.wrapping_add(ticks)
    }

    /// Handles every match up to `now_ns`: interrupts of enabled timers, periodic
    /// comparators moved on.
    pub fn catch_up(&mut self, now_ns: u64) -> Effects {
        let mut effects = Effects::default();
        if !self.enabled() {
            return effects;
        }
        let counter = self.counter(now_ns);
        let elapsed = counter.wrapping_sub(self.checked);
        for index in 0..TIMERS {
            let timer = self.timers[index];
            let ticks = timer.ticks_to_match(self.checked);
            if ticks > elapsed {
                continue;
            }
            let matched = self.checked.wrapping_add(ticks);
            if timer.has(TN_PERIODIC) && timer.period & timer.width_mask() != 0 {
                let period = timer.period & timer.width_mask();
                let periods = (elapsed - ticks) / period + 1;
                let next = matched.wrapping_add(periods.wrapping_mul(period));
                self.timers[index].comparator = next & timer.width_mask();
            }
            self.fire(index, &mut effects);
        }
        self.checked = counter;
        effects
    }

    /// Raises timer `index`'s interrupt, if it may interrupt and has a line.
    fn fire(&mut self, index: usize, effects: &mut Effects) {
        let timer = self.timers[index];
        if !timer.has(TN_INT_ENB) {
            return;
        }
        let Some(gsi) = self.route(index) else {
            log::debug!("HPET: timer {index} fired, but its route is not one it can use");
            return;
        };
        if timer.has(TN_LEVEL) {
            self.status |= 1 << index;
        } else {
            effects.pulses |= 1 << gsi;
        }
    }

    /// The GSI timer `index` interrupts on: IRQ 0 or 8 under legacy replacement (timers 0
    /// and 1), otherwise its route, if the capability allows it.
    pub fn route(&self, index: usize) -> Option<u32> {
        if self.config & LEG_RT_CNF != 0 && index < 2 {
            let irq = [TIMER_IRQ, RTC_IRQ][index];
            return Some(irq.into());
        }
        let pin = ((self.timers.get(index)?.config & TN_ROUTE_MASK) >> TN_ROUTE_SHIFT) as u32;
        (ROUTE_CAPABILITY & 1 << pin != 0).then(|| gsi_of_ioapic_pin(pin))
    }

    /// The GSIs held high: each active level-triggered timer's.
    pub fn asserted_lines(&self) -> u32 {
        if !self.enabled() {
            return 0;
        }
        (0..TIMERS)
            .filter(|&index| self.status & 1 << index != 0)
            .filter_map(|index| self.route(index))
            .fold(0, |lines, gsi| lines | 1 << gsi)
    }

    /// Nanoseconds from `now_ns` until the next interrupt of an enabled timer; `None`
    /// when no timer can interrupt.
    pub fn next_deadline(&self, now_ns: u64) -> Option<u64> {
        if !self.enabled() {
            return None;
        }
        let elapsed = self.counter(now_ns).wrapping_sub(self.checked);
        let ticks = self
            .timers
            .iter()
            .filter(|timer| timer.has(TN_INT_ENB))
            .map(|timer| timer.ticks_to_match(self.checked).saturating_sub(elapsed))
            .min()?;
        // The counter started its current tick somewhere in the last NS_PER_TICK.
        let into_tick = now_ns.saturating_sub(self.since_ns) % NS_PER_TICK;
        Some(ticks.saturating_mul(NS_PER_TICK).saturating_sub(into_tick))
    }

    /// Reads the 64-bit register at `offset` (8-byte aligned).
    pub fn read(&mut self, offset: u64, now_ns: u64) -> (u64, Effects) {
        let effects = self.catch_up(now_ns);
        let value = match offset {
            CAPABILITIES_REG => CAPABILITIES,
            CONFIG_REG => self.config,
            STATUS_REG => self.status,
            COUNTER_REG => self.counter(now_ns),
            _ => match timer_register(offset) {
                Some((index, TIMER_CONFIG)) => {
                    self.timers[index].config
                        | TN_PERIODIC_CAP
                        | TN_SIZE_CAP
                        | u64::from(ROUTE_CAPABILITY) << 32
                }
                Some((index, TIMER_COMPARATOR)) => self.timers[index].comparator,
                // No FSB delivery: the route reads 0; the rest is reserved.
                Some((_, TIMER_FSB_ROUTE)) | Some(_) | None => 0,
            },
        };
        (value, effects)
    }

    /// Writes `bits` to the bytes `mask` selects of the 64-bit register at `offset`.
    pub fn write(&mut self, offset: u64, (mask, bits): (u64, u64), now_ns: u64) -> Effects {
        let mut effects = self.catch_up(now_ns);
        let bits = bits & mask;
        match offset {
            CONFIG_REG => effects.pit_output = self.write_config(mask, bits, now_ns),
            STATUS_REG => self.status &= !bits,
            COUNTER_REG => {
                let value = self.counter(now_ns) & !mask | bits;
                self.counter_base = value;
                self.since_ns = now_ns;
                self.checked = value;
            }
            _ => match timer_register(offset) {
                Some((index, TIMER_CONFIG)) => self.write_timer_config(index, mask, bits),
                Some((index, TIMER_COMPARATOR)) => self.write_comparator(index, mask, bits),
                _ => {}
            },
        }
        effects
    }

    /// GEN_CONF: starting the counter makes it count from its halted value; stopping it
    /// freezes it and drops level interrupts (as QEMU's). Returns the PIT's new output when
    /// legacy replacement starts or ends.
    fn write_config(&mut self, mask: u64, bits: u64, now_ns: u64) -> Option<bool> {
        let old = self.config;
        let new = (old & !mask | bits) & (ENABLE_CNF | LEG_RT_CNF);
        if (old ^ new) & ENABLE_CNF != 0 {
            self.counter_base = self.counter(now_ns);
            self.since_ns = now_ns;
            self.checked = self.counter_base;
            if new & ENABLE_CNF == 0 {
                self.status = 0;
            }
        }
        self.config = new;
        ((old ^ new) & LEG_RT_CNF != 0).then_some(new & LEG_RT_CNF == 0)
    }

    /// Tn_CONF: entering 32-bit mode truncates the comparator and period; an edge-triggered
    /// or disabled timer has no status bit.
    fn write_timer_config(&mut self, index: usize, mask: u64, bits: u64) {
        let timer = &mut self.timers[index];
        let old = timer.config;
        timer.config = (old & !mask | bits) & TN_WRITABLE;
        if timer.config & !old & TN_32BIT != 0 {
            timer.comparator &= u64::from(u32::MAX);
            timer.period &= u64::from(u32::MAX);
        }
        if !timer.has(TN_LEVEL) || !timer.has(TN_INT_ENB) {
            self.status &= !(1 << index);
        }
    }

    /// Tn_COMPARATOR: sets a one-shot timer's comparator; a periodic timer's period, and
    /// its accumulator too after VAL_SET. Either way VAL_SET is spent.
    fn write_comparator(&mut self, index: usize, mask: u64, bits: u64) {
        let timer = &mut self.timers[index];
        let width = timer.width_mask();
        if !timer.has(TN_PERIODIC) || timer.has(TN_VAL_SET) {
            timer.comparator = (timer.comparator & !mask | bits) & width;
        }
        timer.period = (timer.period & !mask | bits) & width;
        timer.config &= !TN_VAL_SET;
    }
}

/// The timer and the register within its block of a register `offset`.
fn timer_register(offset: u64) -> Option<(usize, u64)> {
    let relative = offset.checked_sub(TIMER_BASE)?;
    let index = usize::try_from(relative / TIMER_STRIDE).ok()?;
    (index < TIMERS).then_some((index, relative % TIMER_STRIDE))
}

#[cfg(test)]
mod tests;
