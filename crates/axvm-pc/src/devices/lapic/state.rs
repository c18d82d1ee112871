//! One local APIC's registers: identification, task priority, the spurious-vector register,
//! the interrupt request and in-service bitmaps, the LVT entries and the timer.
//!
//! Time is passed in (nanoseconds of the host's monotonic clock), so this is plain data
//! that unit tests drive with any clock they like. The APIC bus runs at 1 GHz, as KVM's
//! does: a timer tick of divide-by-1 is one nanosecond, so the same guest programs the same
//! periods under either host.

/// Register offsets in the APIC page (each register is 32 bits at a 16-byte boundary).
pub mod reg {
    /// Local APIC ID (bits 31:24).
    pub const ID: u64 = 0x20;
    /// Version and the number of LVT entries.
    pub const VERSION: u64 = 0x30;
    /// Task priority.
    pub const TPR: u64 = 0x80;
    /// Arbitration priority.
    pub const APR: u64 = 0x90;
    /// Processor priority (read-only).
    pub const PPR: u64 = 0xa0;
    /// End of interrupt (write-only).
    pub const EOI: u64 = 0xb0;
    /// Logical destination.
    pub const LDR: u64 = 0xd0;
    /// Destination format.
    pub const DFR: u64 = 0xe0;
    /// Spurious-interrupt vector; bit 8 enables the APIC in software.
    pub const SVR: u64 = 0xf0;
    /// In-service register, eight 32-bit words.
    pub const ISR: u64 = 0x100;
    /// Trigger mode register, eight words (all edge here: reads as zero).
    pub const TMR: u64 = 0x180;
    /// Interrupt request register, eight words.
    pub const IRR: u64 = 0x200;
    /// Error status.
    pub const ESR: u64 = 0x280;
    /// Interrupt command, low half (writing it sends the IPI).
    pub const ICR_LOW: u64 = 0x300;
    /// Interrupt command, high half (destination in bits 31:24).
    pub const ICR_HIGH: u64 = 0x310;
    /// LVT timer.
    pub const LVT_TIMER: u64 = 0x320;
    /// LVT thermal sensor.
    pub const LVT_THERMAL: u64 = 0x330;
    /// LVT performance counter.
    pub const LVT_PERF: u64 = 0x340;
    /// LVT LINT0.
    pub const LVT_LINT0: u64 = 0x350;
    /// LVT LINT1.
    pub const LVT_LINT1: u64 = 0x360;
    /// LVT error.
    pub const LVT_ERROR: u64 = 0x370;
    /// Timer initial count.
    pub const TIMER_INITIAL: u64 = 0x380;
    /// Timer current count (read-only).
    pub const TIMER_CURRENT: u64 = 0x390;
    /// Timer divide configuration.
    pub const TIMER_DIVIDE: u64 = 0x3e0;
}

/// The version register: an integrated APIC (0x14) with six LVT entries (max LVT 5), as
/// KVM reports.
pub const VERSION: u32 = 0x0005_0014;
/// SVR bit 8: software enable.
pub const SVR_ENABLE: u32 = 1 << 8;
/// LVT bit 16: masked.
pub const LVT_MASKED: u32 = 1 << 16;
/// LVT timer mode field (bits 18:17).
const TIMER_MODE_SHIFT: u32 = 17;
const TIMER_MODE_PERIODIC: u32 = 1;
/// Nanoseconds per APIC bus tick (a 1 GHz bus, as KVM's).
const BUS_TICK_NANOS: u64 = 1;

/// The LVT registers, in offset order from [`reg::LVT_TIMER`].
const LVT_COUNT: usize = 6;

/// One local APIC.
#[derive(Clone, Debug)]
pub struct ApicState {
    id: u8,
    tpr: u32,
    ldr: u32,
    dfr: u32,
    svr: u32,
    irr: [u32; 8],
    isr: [u32; 8],
    lvt: [u32; LVT_COUNT],
    icr_high: u32,
    divide: u32,
    initial_count: u32,
    /// When the timer's current period started, if it runs.
    period_start: Option<u64>,
}

impl ApicState {
    /// The state after reset of the APIC with ID `id`: software-disabled, every LVT
    /// masked, nothing pending.
    pub fn new(id: u8) -> Self {
        Self {
            id,
            tpr: 0,
            ldr: 0,
            dfr: u32::MAX,
            svr: 0xff,
            irr: [0; 8],
            isr: [0; 8],
            lvt: [LVT_MASKED; LVT_COUNT],
            icr_high: 0,
            divide: 0,
            initial_count: 0,
            period_start: None,
        }
    }

    /// The APIC ID.
    pub fn id(&self) -> u8 {
        self.id
    }

    /// Whether the guest has software-enabled it (SVR bit 8).
    pub fn enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// The destination of the next IPI (ICR high, bits 31:24).
    pub fn icr_destination(&self) -> u8 {
        (self.icr_high >> 24) as u8
    }

    /// Whether this APIC is addressed by logical destination `mask` (flat model: its LDR's
    /// bits 31:24 share a bit with the mask).
    pub fn matches_logical(&self, mask: u8) -> bool {
        (self.ldr >> 24) as u8 & mask != 0
    }

    /// Reads register `offset` (16-byte aligned) at time `now`.
    pub fn read(&self, offset: u64, now: u64) -> u32 {
        match offset {
            reg::ID => u32::from(self.id) << 24,
            reg::VERSION => VERSION,
            reg::TPR => self.tpr,
            reg::PPR => self.ppr(),
            reg::LDR => self.ldr,
            reg::DFR => self.dfr,
            reg::SVR => self.svr,
            reg::ICR_HIGH => self.icr_high,
            reg::TIMER_INITIAL => self.initial_count,
            reg::TIMER_CURRENT => self.current_count(now),
            reg::TIMER_DIVIDE => self.divide,
            _ => {
                if let Some(index) = word_index(offset, reg::ISR) {
                    self.isr[index]
                } else if let Some(index) = word_index(offset, reg::IRR) {
                    self.irr[index]
                } else if let Some(index) = lvt_index(offset) {
                    self.lvt[index]
                } else {
                    // APR, ESR, TMR, ICR low (delivery is immediate: never pending), and
                    // the reserved offsets.
                    0
                }
            }
        }
    }

    /// Writes register `offset` (16-byte aligned) at time `now`. EOI and ICR low are the
    /// caller's (they act beyond this APIC); writing them here does nothing.
    pub fn write(&mut self, offset: u64, value: u32, now: u64) {
        match offset {
            reg::TPR => self.tpr = value & 0xff,
            reg::LDR => self.ldr = value & 0xff00_0000,
            reg::DFR => self.dfr = value | 0x0fff_ffff,
            reg::SVR => {
                self.svr = value & 0x3ff;
                if !self.enabled() {
                    // Software-disabling masks every LVT entry.
                    for entry in &mut self.lvt {
                        *entry |= LVT_MASKED;
                    }
                }
            }
            reg::ICR_HIGH => self.icr_high = value & 0xff00_0000,
            reg::TIMER_INITIAL => {
                self.initial_count = value;
                self.period_start = (value != 0).then_some(now);
            }
            reg::TIMER_DIVIDE => self.divide = value & 0b1011,
            _ => {
                if let Some(index) = lvt_index(offset) {
                    // A disabled APIC keeps its LVT entries masked.
                    let forced = if self.enabled() { 0 } else { LVT_MASKED };
                    self.lvt[index] = value | forced;
                }
            }
        }
    }

    /// Accepts a fixed interrupt of `vector` into the IRR. A software-disabled APIC drops
    /// it (as KVM's does) and so do vectors 0-15, which are not interrupts; `false` then.
    pub fn accept(&mut self, vector: u8) -> bool {
        if !self.enabled() || vector < 16 {
            return false;
        }
        set_bit(&mut self.irr, vector);
        true
    }

    /// The highest requested vector whose priority class is above the processor priority,
    /// moved from the IRR to the ISR: the interrupt the vCPU is to take next.
    pub fn take_deliverable(&mut self) -> Option<u8> {
        let vector = highest(&self.irr)?;
        if u32::from(vector) & 0xf0 <= self.ppr() & 0xf0 {
            return None;
        }
        clear_bit(&mut self.irr, vector);
        set_bit(&mut self.isr, vector);
        Some(vector)
    }

    /// Whether [`take_deliverable`](Self::take_deliverable) would give a vector.
    pub fn has_deliverable(&self) -> bool {
        highest(&self.irr).is_some_and(|v| u32::from(v) & 0xf0 > self.ppr() & 0xf0)
    }

    /// End of interrupt: the highest in-service vector is done.
    pub fn eoi(&mut self) {
        if let Some(vector) = highest(&self.isr) {
            clear_bit(&mut self.isr, vector);
        }
    }

    /// Processor priority: the task priority or the class of the highest in-service
    /// vector, whichever is higher.
    fn ppr(&self) -> u32 {
        let isr_class = highest(&self.isr).map_or(0, |v| u32::from(v) & 0xf0);
        if self.tpr & 0xf0 >= isr_class {
            self.tpr
        } else {
            isr_class
        }
    }

    /// The timer's divisor (divide configuration bits 3, 1:0).
    fn divisor(&self) -> u64 {
        let code = (self.divide & 0b11) | ((self.divide & 0b1000) >> 1);
        1 << ((code + 1) & 0b111)
    }

    fn period_nanos(&self) -> u64 {
        u64::from(self.initial_count) * self.divisor() * BUS_TICK_NANOS
    }

    fn periodic(&self) -> bool {
        (self.lvt[0] >> TIMER_MODE_SHIFT) & 0b11 == TIMER_MODE_PERIODIC
    }

    /// When the timer next reaches zero, if it runs.
    pub fn timer_deadline(&self) -> Option<u64> {
        let start = self.period_start?;
        Some(start.saturating_add(self.period_nanos()))
    }

    fn current_count(&self, now: u64) -> u32 {
        match self.timer_deadline() {
            Some(deadline) if deadline > now => {
                ((deadline - now) / (self.divisor() * BUS_TICK_NANOS)) as u32
            }
            _ => 0,
        }
    }

    /// Fires the timer if it reached zero by `now`: its vector into the IRR unless the
    /// LVT entry is masked, then the next period (periodic; periods that passed unseen
    /// merge into this one, as IRR bits do) or a stop (one-shot). Whether it fired.
    pub fn poll_timer(&mut self, now: u64) -> bool {
        let Some(deadline) = self.timer_deadline() else {
            return false;
        };
        if deadline > now {
            return false;
        }
        let entry = self.lvt[0];
        if entry & LVT_MASKED == 0 {
            self.accept(entry as u8);
        }
        let period = self.period_nanos();
        self.period_start = if self.periodic() && period > 0 {
            let late = (now - deadline) % period;
            Some(now - late)
        } else {
            None
        };
        true
    }
}

/// Which of the eight words of the bitmap at `base` `offset` is.
fn word_index(offset: u64, base: u64) -> Option<usize> {
    (base..base + 0x80)
        .contains(&offset)
        .then(|| ((offset - base) / 0x10) as usize)
}

fn lvt_index(offset: u64) -> Option<usize> {
    (reg::LVT_TIMER..=reg::LVT_ERROR)
        .contains(&offset)
        .then(|| ((offset - reg::LVT_TIMER) / 0x10) as usize)
}

fn set_bit(bitmap: &mut [u32; 8], vector: u8) {
    bitmap[usize::from(vector >> 5)] |= 1 << (vector & 31);
}

fn clear_bit(bitmap: &mut [u32; 8], vector: u8) {
    bitmap[usize::from(vector >> 5)] &= !(1 << (vector & 31));
}

fn highest(bitmap: &[u32; 8]) -> Option<u8> {
    bitmap
        .iter()
        .enumerate()
        .rev()
        .find(|(_, &word)| word != 0)
        .map(|(index, &word)| (index as u32 * 32 + 31 - word.leading_zeros()) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> ApicState {
        let mut apic = ApicState::new(1);
        apic.write(reg::SVR, SVR_ENABLE | 0xff, 0);
        apic
    }

    #[test]
    fn reset_state_is_disabled_with_masked_lvts_and_drops_interrupts() {
        let mut apic = ApicState::new(3);
        assert_eq!(apic.read(reg::ID, 0), 3 << 24);
        assert_eq!(apic.read(reg::VERSION, 0), VERSION);
        assert_eq!(apic.read(reg::SVR, 0), 0xff);
        assert_eq!(apic.read(reg::LVT_TIMER, 0), LVT_MASKED);
        assert!(!apic.accept(0x40));
        assert_eq!(apic.take_deliverable(), None);
    }

    #[test]
    fn interrupts_go_irr_to_isr_by_priority_and_eoi_ends_the_highest() {
        let mut apic = enabled();
        assert!(apic.accept(0x41));
        assert!(apic.accept(0x52));
        assert_eq!(apic.read(reg::IRR + 0x20, 0), (1 << 1) | (1 << 18));
        assert_eq!(apic.take_deliverable(), Some(0x52));
        // 0x41's class is below the one in service.
        assert_eq!(apic.take_deliverable(), None);
        assert_eq!(apic.read(reg::ISR + 0x20, 0), 1 << 18);
        apic.eoi();
        assert_eq!(apic.take_deliverable(), Some(0x41));
        apic.eoi();
        assert_eq!(apic.read(reg::ISR + 0x20, 0), 0);
    }

    #[test]
    fn task_priority_holds_back_lower_classes() {
        let mut apic = enabled();
        apic.write(reg::TPR, 0x50, 0);
        apic.accept(0x45);
        assert!(!apic.has_deliverable());
        apic.write(reg::TPR, 0, 0);
        assert_eq!(apic.take_deliverable(), Some(0x45));
    }

    #[test]
    fn one_shot_timer_counts_down_with_the_divisor_and_fires_once() {
        let mut apic = enabled();
        apic.write(reg::TIMER_DIVIDE, 0b0011, 0); // divide by 16
        apic.write(reg::LVT_TIMER, 0x32, 0);
        apic.write(reg::TIMER_INITIAL, 1000, 100);
        assert_eq!(apic.timer_deadline(), Some(100 + 16_000));
        assert_eq!(apic.read(reg::TIMER_CURRENT, 100 + 1600), 900);
        assert!(!apic.poll_timer(16_099));
        assert!(apic.poll_timer(16_100));
        assert_eq!(apic.take_deliverable(), Some(0x32));
        assert_eq!(apic.timer_deadline(), None);
        assert_eq!(apic.read(reg::TIMER_CURRENT, 20_000), 0);
    }

    #[test]
    fn periodic_timer_rearms_and_merges_missed_periods() {
        let mut apic = enabled();
        apic.write(reg::TIMER_DIVIDE, 0b1011, 0); // divide by 1
        apic.write(reg::LVT_TIMER, (1 << 17) | 0x32, 0);
        apic.write(reg::TIMER_INITIAL, 100, 0);
        assert!(apic.poll_timer(350));
        assert_eq!(apic.timer_deadline(), Some(400));
        assert_eq!(apic.take_deliverable(), Some(0x32));
        apic.eoi();
        assert!(apic.poll_timer(400));
        assert_eq!(apic.timer_deadline(), Some(500));
    }

    #[test]
    fn a_masked_timer_runs_without_interrupting() {
        let mut apic = enabled();
        apic.write(reg::LVT_TIMER, LVT_MASKED | 0x32, 0);
        apic.write(reg::TIMER_INITIAL, 10, 0);
        assert!(apic.poll_timer(1000));
        assert!(!apic.has_deliverable());
    }

    #[test]
    fn disabling_masks_the_lvts() {
        let mut apic = enabled();
        apic.write(reg::LVT_LINT0, 0x700, 0);
        apic.write(reg::SVR, 0xff, 0);
        assert_eq!(apic.read(reg::LVT_LINT0, 0), 0x700 | LVT_MASKED);
    }
}
