//! A minimal CMOS real-time clock (ports 0x70/0x71): the time registers count the
//! hypervisor's uptime (there is no wall clock here), in BCD and 24-hour mode as a PC's
//! RTC reports by default, and the status registers say "no update in progress, time
//! valid". The rest of CMOS (memory sizes, NVRAM) reads as zero.
//!
//! Interim: the KVM host's CMOS model (with the memory-size bytes) is moving into `axvm-pc`;
//! once there, it replaces this and takes its time from a clock trait.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

use crate::time;

const SECONDS: u8 = 0x00;
const MINUTES: u8 = 0x02;
const HOURS: u8 = 0x04;
const STATUS_A: u8 = 0x0a;
const STATUS_B: u8 = 0x0b;
const STATUS_D: u8 = 0x0d;
/// Status A: 32.768 kHz time base, 1024 Hz rate; bit 7 (update in progress) clear.
const STATUS_A_VALUE: u8 = 0x26;
/// Status B: 24-hour mode, BCD.
const STATUS_B_VALUE: u8 = 0x02;
/// Status D: the clock's battery is good.
const STATUS_D_VALUE: u8 = 0x80;

/// The RTC; the selected index is shared (as on a PC), NMI-disable bit dropped.
#[derive(Default)]
pub struct RtcClock {
    index: AtomicU8,
}

fn bcd(value: u64) -> u8 {
    let value = (value % 100) as u8;
    ((value / 10) << 4) | (value % 10)
}

/// The value of CMOS register `index` now.
fn register(index: u8) -> u8 {
    let seconds = time::now_nanos() / 1_000_000_000;
    match index {
        SECONDS => bcd(seconds % 60),
        MINUTES => bcd(seconds / 60 % 60),
        HOURS => bcd(seconds / 3600 % 24),
        STATUS_A => STATUS_A_VALUE,
        STATUS_B => STATUS_B_VALUE,
        STATUS_D => STATUS_D_VALUE,
        _ => 0,
    }
}

impl BaseDeviceOps for RtcClock {
    fn name(&self) -> &str {
        "CMOS RTC (uptime)"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(0x70, 2)]
    }

    fn handle_read(&self, at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(match at.offset {
            0 => u64::from(self.index.load(Ordering::Relaxed)),
            _ => u64::from(register(self.index.load(Ordering::Relaxed))),
        })
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        if at.offset == 0 {
            self.index.store(value as u8 & 0x7f, Ordering::Relaxed);
        }
        Ok(WriteOutcome::Done)
    }
}
