//! Time since boot from the TSC, whose rate is measured once against PIT channel 2 (the
//! PC speaker's timer, which can be read by polling: no interrupt involved).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::cpu;

/// The PIT's input clock.
const PIT_HZ: u64 = 1_193_182;
/// PIT ticks to measure over: about 20 ms.
const CALIBRATION_TICKS: u16 = 23_864;
/// Port 0x61: channel 2's gate (bit 0), the speaker (bit 1), channel 2's output (bit 5).
const PORT_B: u16 = 0x61;
const GATE: u8 = 1 << 0;
const SPEAKER: u8 = 1 << 1;
const OUT2: u8 = 1 << 5;
const PIT_CHANNEL2: u16 = 0x42;
const PIT_COMMAND: u16 = 0x43;
/// Channel 2, low then high byte, mode 0 (interrupt on terminal count), binary.
const CHANNEL2_MODE0: u8 = 0b1011_0000;
/// A rate to fall back on when the PIT never counts down (then time is only roughly right).
const FALLBACK_HZ: u64 = 1_000_000_000;

static TSC_HZ: AtomicU64 = AtomicU64::new(FALLBACK_HZ);
static TSC_AT_BOOT: AtomicU64 = AtomicU64::new(0);

/// Measures the TSC rate (BSP, at boot, interrupts off) and returns it in Hz.
pub fn calibrate() -> u64 {
    TSC_AT_BOOT.store(cpu::rdtsc(), Ordering::Relaxed);
    let hz = measure().unwrap_or_else(|| {
        crate::hv_println!("PIT channel 2 did not count down: assuming a 1 GHz TSC");
        FALLBACK_HZ
    });
    TSC_HZ.store(hz, Ordering::Relaxed);
    hz
}

/// One mode-0 countdown of [`CALIBRATION_TICKS`] on channel 2, timed by the TSC.
fn measure() -> Option<u64> {
    // SAFETY: the PIT and port 0x61 belong to the kernel; the speaker stays off.
    unsafe {
        let port_b = cpu::inb(PORT_B) & !(GATE | SPEAKER);
        cpu::outb(PORT_B, port_b);
        cpu::outb(PIT_COMMAND, CHANNEL2_MODE0);
        let [low, high] = CALIBRATION_TICKS.to_le_bytes();
        cpu::outb(PIT_CHANNEL2, low);
        cpu::outb(PIT_CHANNEL2, high);
        let start = cpu::rdtsc();
        cpu::outb(PORT_B, port_b | GATE);
        // Give up after about 10 s of a 4 GHz TSC: the PIT is missing.
        let limit = start + (40u64 << 30);
        while cpu::inb(PORT_B) & OUT2 == 0 {
            if cpu::rdtsc() > limit {
                return None;
            }
        }
        let ticks = cpu::rdtsc() - start;
        cpu::outb(PORT_B, port_b);
        Some(ticks * PIT_HZ / u64::from(CALIBRATION_TICKS))
    }
}

/// The TSC rate [`calibrate`] measured.
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Nanoseconds since [`calibrate`], on any CPU (their TSCs run together on QEMU and on the
/// invariant-TSC CPUs SVM hosts have).
pub fn now_nanos() -> u64 {
    let ticks = cpu::rdtsc().saturating_sub(TSC_AT_BOOT.load(Ordering::Relaxed));
    (u128::from(ticks) * 1_000_000_000 / u128::from(tsc_hz())) as u64
}

/// Busy-waits `micros` microseconds.
pub fn delay_us(micros: u64) {
    let end = now_nanos().saturating_add(micros * 1000);
    while now_nanos() < end {
        core::hint::spin_loop();
    }
}
