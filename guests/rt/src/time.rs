//! Time: the TSC, calibrated once against PIT channel 2.
//!
//! Delays and timeouts must be measured in time, not in loop iterations:
//! where KVM runs CPL0 guest code through its instruction emulator (nested
//! "kvm_pvm" hosts) one instruction takes about 1 µs, under QEMU's TCG
//! 10-50 ns, natively well under 1 ns.
//!
//! Channel 2 of the 8254 PIT is the one a guest can poll without interrupts:
//! its gate is bit 0 and its output bit 5 of port 0x61. In mode 0 the output
//! goes low when the mode is written and high when the count, started when
//! it is written, reaches zero (both QEMU's PIT and KVM's in-kernel PIT count
//! regardless of the gate in this mode; the gate is set anyway).

use crate::cpu::{pause, rdtsc};
use crate::io::{inb, outb};

/// Input clock of the PIT, Hz.
pub const PIT_HZ: u64 = 1_193_182;
/// Mode/command register.
const PIT_COMMAND: u16 = 0x43;
/// Channel 2 data port.
const PIT_CHANNEL2: u16 = 0x42;
/// System control port B: bit 0 gate 2, bit 1 speaker data, bit 5 output 2.
const PORT_B: u16 = 0x61;
const PORT_B_GATE2: u8 = 0x01;
const PORT_B_SPEAKER: u8 = 0x02;
const PORT_B_OUT2: u8 = 0x20;
/// Channel 2, low byte then high byte, mode 0 (interrupt on terminal count),
/// binary.
const CHANNEL2_MODE0: u8 = 0b1011_0000;
/// Length of the calibration: 10 ms.
const CALIBRATION_MS: u64 = 10;
/// Backstop for a PIT that never counts down: 2^36 TSC ticks (about 20 s at
/// 3.5 GHz), so a guest without a working PIT fails instead of hanging.
const CALIBRATION_TIMEOUT_TSC: u64 = 1 << 36;

/// The TSC, with its rate measured against the PIT.
#[derive(Clone, Copy, Debug)]
pub struct Tsc {
    per_ms: u64,
}

impl Tsc {
    /// Measures the TSC rate over 10 ms of PIT channel 2. Returns `None`
    /// when channel 2's output never goes high (no PIT, or no port 0x61) or
    /// the TSC does not advance.
    pub fn calibrate() -> Option<Tsc> {
        let count = (PIT_HZ * CALIBRATION_MS / 1000) as u16;
        // SAFETY: the PIT's channel 2 and port 0x61 drive nothing but the PC
        // speaker, which stays off (bit 1 clear).
        let ticks = unsafe {
            let port_b = inb(PORT_B) & !PORT_B_SPEAKER;
            outb(PORT_B, port_b | PORT_B_GATE2);
            outb(PIT_COMMAND, CHANNEL2_MODE0);
            outb(PIT_CHANNEL2, count as u8);
            outb(PIT_CHANNEL2, (count >> 8) as u8);
            let start = rdtsc();
            let mut done = false;
            while rdtsc().wrapping_sub(start) < CALIBRATION_TIMEOUT_TSC {
                if inb(PORT_B) & PORT_B_OUT2 != 0 {
                    done = true;
                    break;
                }
            }
            let ticks = rdtsc().wrapping_sub(start);
            outb(PORT_B, port_b & !PORT_B_GATE2);
            if !done {
                return None;
            }
            ticks
        };
        let per_ms = ticks / CALIBRATION_MS;
        (per_ms > 0).then_some(Tsc { per_ms })
    }

    /// TSC ticks per millisecond.
    pub fn ticks_per_ms(&self) -> u64 {
        self.per_ms
    }

    /// The TSC value `us` microseconds from now.
    pub fn deadline_us(&self, us: u64) -> u64 {
        rdtsc().wrapping_add(us * self.per_ms / 1000)
    }

    /// Whether `deadline` (from [`Tsc::deadline_us`]) has passed.
    pub fn passed(&self, deadline: u64) -> bool {
        // Wrapping-safe: the difference is "negative" until the deadline.
        (rdtsc().wrapping_sub(deadline) as i64) >= 0
    }

    /// Busy-waits for at least `us` microseconds.
    pub fn delay_us(&self, us: u64) {
        let deadline = self.deadline_us(us);
        while !self.passed(deadline) {
            pause();
        }
    }
}
