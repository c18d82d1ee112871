//! The i8254 programmable interval timer (ports 0x40-0x43) and system control port B
//! (0x61), for a host without an in-kernel PIT (the bare-metal SVM hypervisor).
//!
//! Modelled: channel 0 as the tick source (modes 2 and 3 periodic, mode 0 one-shot), whose
//! IRQ 0 edges the host collects with [`Pit::poll_irq0`] and routes (to IOAPIC pin 2 on a
//! PC); channel 2 as the TSC calibration source (mode 0, its output in port 0x61 bit 5, its
//! gate in bit 0), and counter reads (direct or latched, low/high/both byte access) of
//! every channel. Counting starts when the count is written, regardless of the gate, as
//! QEMU's and KVM's PITs do in mode 0; the read-back command and BCD counting are not
//! modelled (read-back is ignored, BCD counts in binary).
//!
//! Time is the host's monotonic clock in nanoseconds ([`Clock`]).

use alloc::vec;
use alloc::vec::Vec;

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};
use spin::Mutex;

/// The PIT's input clock, in Hz.
pub const PIT_HZ: u64 = 1_193_182;
const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// Port B: gate 2 (bit 0), speaker data (bit 1), refresh toggle (bit 4), output 2 (bit 5).
const PORT_B_WRITABLE: u8 = 0b11;
const PORT_B_REFRESH: u8 = 1 << 4;
const PORT_B_OUT2: u8 = 1 << 5;
/// The refresh bit toggles every 15 µs on a PC.
const REFRESH_NANOS: u64 = 15_000;

/// A monotonic clock.
pub trait Clock: Send + Sync {
    /// Nanoseconds since some fixed point.
    fn now_nanos(&self) -> u64;
}

/// How a counter's bytes are accessed (command bits 5:4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Access {
    Low,
    High,
    /// Low byte, then high byte.
    Word,
}

/// One counter.
#[derive(Clone, Copy, Debug)]
struct Channel {
    mode: u8,
    access: Access,
    /// The count written (0 means 65536).
    reload: u16,
    /// When counting started; `None` until a count is written.
    loaded_at: Option<u64>,
    /// The low byte of a word write, waiting for the high byte.
    write_low: Option<u8>,
    /// A latched count and how much of it is still to be read.
    latch: Option<u16>,
    /// Within a word read: the high byte is next.
    read_high: bool,
    /// When channel 0 raises IRQ 0 next.
    next_irq: Option<u64>,
}

impl Channel {
    const fn new() -> Self {
        Self {
            mode: 0,
            access: Access::Word,
            reload: 0,
            loaded_at: None,
            write_low: None,
            latch: None,
            read_high: false,
            next_irq: None,
        }
    }

    fn reload_ticks(&self) -> u64 {
        if self.reload == 0 {
            0x1_0000
        } else {
            u64::from(self.reload)
        }
    }

    fn periodic(&self) -> bool {
        matches!(self.mode & 0b11, 2 | 3)
    }

    fn ticks_since_load(&self, now: u64) -> Option<u64> {
        let start = self.loaded_at?;
        Some((u128::from(now.saturating_sub(start)) * u128::from(PIT_HZ) / 1_000_000_000) as u64)
    }

    /// The counter's value at `now`.
    fn count(&self, now: u64) -> u16 {
        let Some(ticks) = self.ticks_since_load(now) else {
            return 0;
        };
        let reload = self.reload_ticks();
        let remaining = if self.periodic() {
            reload - ticks % reload
        } else {
            // Mode 0 counts on past zero, wrapping.
            reload.wrapping_sub(ticks) & 0xffff
        };
        remaining as u16
    }

    /// Mode 0's output: high once the count reached zero.
    fn output(&self, now: u64) -> bool {
        match self.ticks_since_load(now) {
            Some(ticks) if !self.periodic() => ticks >= self.reload_ticks(),
            Some(ticks) => ticks % self.reload_ticks() < self.reload_ticks() / 2,
            None => false,
        }
    }

    fn period_nanos(&self) -> u64 {
        (self.reload_ticks() * NANOS_PER_SECOND).div_ceil(PIT_HZ)
    }

    fn start(&mut self, reload: u16, now: u64) {
        self.reload = reload;
        self.loaded_at = Some(now);
        self.next_irq = Some(now + self.period_nanos());
    }

    fn write_count(&mut self, byte: u8, now: u64) {
        match self.access {
            Access::Low => self.start(u16::from(byte), now),
            Access::High => self.start(u16::from(byte) << 8, now),
            Access::Word => match self.write_low.take() {
                None => self.write_low = Some(byte),
                Some(low) => self.start(u16::from_le_bytes([low, byte]), now),
            },
        }
    }

    fn read_count(&mut self, now: u64) -> u8 {
        let value = self.latch.unwrap_or_else(|| self.count(now));
        let [low, high] = value.to_le_bytes();
        match self.access {
            Access::Low => {
                self.latch = None;
                low
            }
            Access::High => {
                self.latch = None;
                high
            }
            Access::Word if self.read_high => {
                self.read_high = false;
                self.latch = None;
                high
            }
            Access::Word => {
                self.read_high = true;
                // Without a latch, the high byte is read from the same moment's count.
                self.latch = Some(value);
                low
            }
        }
    }
}

/// The PIT's state.
#[derive(Debug)]
struct PitState {
    channels: [Channel; 3],
    port_b: u8,
}

/// The PIT and port 0x61.
pub struct Pit<C: Clock> {
    clock: C,
    state: Mutex<PitState>,
}

impl<C: Clock> Pit<C> {
    /// A PIT whose counters have not been programmed, on `clock`.
    pub fn new(clock: C) -> Self {
        Self {
            clock,
            state: Mutex::new(PitState {
                channels: [Channel::new(); 3],
                port_b: 0,
            }),
        }
    }

    /// Whether channel 0 raised IRQ 0 since the last call (several periods that passed
    /// unseen count once, as an edge-triggered input merges them), and moves on to its
    /// next period.
    pub fn poll_irq0(&self) -> bool {
        let now = self.clock.now_nanos();
        let mut state = self.state.lock();
        let channel = &mut state.channels[0];
        let Some(due) = channel.next_irq.filter(|&due| due <= now) else {
            return false;
        };
        channel.next_irq = if channel.periodic() {
            let period = channel.period_nanos();
            Some(now + period - (now - due) % period)
        } else {
            None
        };
        true
    }

    /// When channel 0 raises IRQ 0 next, if it will.
    pub fn next_irq0(&self) -> Option<u64> {
        self.state.lock().channels[0].next_irq
    }

    fn command(state: &mut PitState, value: u8, now: u64) {
        let index = usize::from(value >> 6);
        let Some(channel) = state.channels.get_mut(index) else {
            log::debug!("PIT read-back command {value:#x} ignored");
            return;
        };
        let access = match (value >> 4) & 0b11 {
            0 => {
                if channel.latch.is_none() {
                    channel.latch = Some(channel.count(now));
                    channel.read_high = false;
                }
                return;
            }
            1 => Access::Low,
            2 => Access::High,
            _ => Access::Word,
        };
        *channel = Channel {
            mode: (value >> 1) & 0b111,
            access,
            ..Channel::new()
        };
    }
}

fn error(message: &str) -> DeviceError {
    DeviceError {
        device: "PIT".into(),
        message: message.into(),
    }
}

impl<C: Clock> BaseDeviceOps for Pit<C> {
    fn name(&self) -> &str {
        "PIT"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(0x40, 4), DeviceRange::port(0x61, 1)]
    }

    fn handle_read(&self, at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        let now = self.clock.now_nanos();
        let mut state = self.state.lock();
        let value = match (at.range, at.offset) {
            (0, 3) => 0,
            (0, index) => state
                .channels
                .get_mut(index as usize)
                .ok_or_else(|| error("no such counter"))?
                .read_count(now),
            _ => {
                let out2 = if state.channels[2].output(now) {
                    PORT_B_OUT2
                } else {
                    0
                };
                let refresh = if (now / REFRESH_NANOS) % 2 == 1 {
                    PORT_B_REFRESH
                } else {
                    0
                };
                state.port_b | out2 | refresh
            }
        };
        Ok(u64::from(value))
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let now = self.clock.now_nanos();
        let byte = value as u8;
        let mut state = self.state.lock();
        match (at.range, at.offset) {
            (0, 3) => Self::command(&mut state, byte, now),
            (0, index) => state
                .channels
                .get_mut(index as usize)
                .ok_or_else(|| error("no such counter"))?
                .write_count(byte, now),
            _ => state.port_b = byte & PORT_B_WRITABLE,
        }
        Ok(WriteOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    struct TestClock(AtomicU64);

    impl Clock for &'static TestClock {
        fn now_nanos(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    fn pit() -> (Pit<&'static TestClock>, &'static TestClock) {
        let clock: &'static TestClock =
            alloc::boxed::Box::leak(alloc::boxed::Box::new(TestClock(AtomicU64::new(0))));
        (Pit::new(clock), clock)
    }

    fn out(pit: &Pit<&'static TestClock>, port: u16, value: u8) {
        let at = if port == 0x61 {
            DeviceOffset::new(1, 0)
        } else {
            DeviceOffset::first(u64::from(port - 0x40))
        };
        pit.handle_write(at, AccessWidth::Byte, u64::from(value))
            .unwrap();
    }

    fn inp(pit: &Pit<&'static TestClock>, port: u16) -> u8 {
        let at = if port == 0x61 {
            DeviceOffset::new(1, 0)
        } else {
            DeviceOffset::first(u64::from(port - 0x40))
        };
        pit.handle_read(at, AccessWidth::Byte).unwrap() as u8
    }

    #[test]
    fn channel_0_at_100_hz_raises_irq0_every_10_ms() {
        let (pit, clock) = pit();
        out(&pit, 0x43, 0x34);
        out(&pit, 0x40, (11932 & 0xff) as u8);
        out(&pit, 0x40, (11932 >> 8) as u8);
        assert!(!pit.poll_irq0());
        let due = pit.next_irq0().unwrap();
        assert!((9_999_000..10_001_000).contains(&due), "{due}");
        clock.0.store(due, Ordering::Relaxed);
        assert!(pit.poll_irq0());
        assert!(!pit.poll_irq0(), "one edge per period");
        // Three periods late: one edge, and the next one on the period grid.
        clock.0.store(due * 4 + 5, Ordering::Relaxed);
        assert!(pit.poll_irq0());
        assert_eq!(pit.next_irq0(), Some(due * 5));
    }

    #[test]
    fn channel_2_mode_0_output_rises_in_port_b_at_terminal_count() {
        let (pit, clock) = pit();
        out(&pit, 0x61, 0x01);
        out(&pit, 0x43, 0b1011_0000);
        out(&pit, 0x42, (11931 & 0xff) as u8);
        out(&pit, 0x42, (11931 >> 8) as u8);
        assert_eq!(inp(&pit, 0x61) & PORT_B_OUT2, 0);
        assert_eq!(inp(&pit, 0x61) & 0b11, 0x01, "gate kept");
        clock.0.store(5_000_000, Ordering::Relaxed);
        assert_eq!(inp(&pit, 0x61) & PORT_B_OUT2, 0);
        clock.0.store(10_000_000, Ordering::Relaxed);
        assert_ne!(inp(&pit, 0x61) & PORT_B_OUT2, 0);
    }

    #[test]
    fn a_latched_count_reads_low_then_high() {
        let (pit, clock) = pit();
        out(&pit, 0x43, 0x34);
        out(&pit, 0x40, 0x00);
        out(&pit, 0x40, 0x10); // 4096
        clock.0.store(1_000_000, Ordering::Relaxed); // 1193 ticks
        out(&pit, 0x43, 0x00);
        clock.0.store(2_000_000, Ordering::Relaxed);
        let low = inp(&pit, 0x40);
        let high = inp(&pit, 0x40);
        assert_eq!(u16::from_le_bytes([low, high]), 4096 - 1193);
    }
}
