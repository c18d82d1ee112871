//! The architected generic timer's virtual counter and virtual timer (EL0/EL1
//! registers, which KVM and QEMU give every guest).

/// The virtual timer's PPI (INTID 27; device-tree PPI 11).
pub const VIRTUAL_TIMER_INTID: u32 = 27;

/// CNTV_CTL_EL0.ENABLE.
const CTL_ENABLE: u64 = 1;
/// CNTV_CTL_EL0.IMASK.
const CTL_IMASK: u64 = 1 << 1;

/// The counter's frequency in Hz (CNTFRQ_EL0).
pub fn frequency() -> u64 {
    let hz: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effect.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) hz, options(nomem, nostack)) };
    hz
}

/// The virtual count (CNTVCT_EL0), after an `isb` so it is not read early.
pub fn counter() -> u64 {
    let count: u64;
    // SAFETY: reading CNTVCT_EL0 has no side effect.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) count, options(nostack)) };
    count
}

/// Arms the virtual timer to fire `ticks` counter ticks from now, unmasked.
pub fn arm(ticks: u32) {
    // SAFETY: programming the virtual timer only makes it raise its PPI.
    unsafe {
        core::arch::asm!(
            "msr cntv_tval_el0, {tval}",
            "msr cntv_ctl_el0, {ctl}",
            "isb",
            tval = in(reg) u64::from(ticks),
            ctl = in(reg) CTL_ENABLE,
            options(nostack),
        );
    }
}

/// Stops the virtual timer (disabled and masked), so its level interrupt drops.
pub fn stop() {
    // SAFETY: as for `arm`.
    unsafe { core::arch::asm!("msr cntv_ctl_el0, {}", "isb", in(reg) CTL_IMASK, options(nostack)) };
}

/// Counter ticks in `micros` microseconds, at least 1.
pub fn ticks_in_micros(micros: u64) -> u64 {
    (frequency() * micros / 1_000_000).max(1)
}
