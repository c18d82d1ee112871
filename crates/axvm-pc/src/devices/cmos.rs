//! The CMOS RAM and real-time clock (an MC146818 behind ports 0x70 index, 0x71 data), as
//! PC firmware leaves it: kernels read the wall-clock time here at boot, and older ones
//! (and firmware built for QEMU) the memory size. The clock is the host's, in UTC, read at
//! each access; RTC interrupts and alarms are not emulated, and time writes are dropped.
//!
//! The host gives the clock ([`WallClock`]): the KVM host its system time, a bare-metal
//! host its own RTC or TSC reckoning.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, AxVMConfig, EmulatedDeviceType};
use spin::{Mutex, MutexGuard};

use crate::e820::{e820_map, lower_and_upper_memory_kib, ram_map, E820Kind};
use crate::layout::HIGH_MEMORY_START;

use super::civil_time::DateTime;

/// The index port; bit 7 of what is written there disables NMIs and is not part of the index.
pub const CMOS_INDEX_PORT: u16 = 0x70;
/// The data port: the selected register.
pub const CMOS_DATA_PORT: u16 = 0x71;

const NMI_DISABLE: u8 = 0x80;
const STATUS_A: u8 = 0x0a;
const STATUS_B: u8 = 0x0b;
const STATUS_C: u8 = 0x0c;
const STATUS_D: u8 = 0x0d;
const CENTURY: u8 = 0x32;
/// Status A: update in progress, never set (the time is always consistent).
const UIP: u8 = 0x80;
/// Status A at reset: 32.768 kHz time base, 1024 Hz periodic rate.
const STATUS_A_RESET: u8 = 0x26;
/// Status B: hours in 24-hour form.
const HOURS_24: u8 = 0x02;
/// Status B: binary rather than BCD values.
const BINARY: u8 = 0x04;
/// Status D: the RAM and time are valid (the battery is good).
const VALID_RAM_AND_TIME: u8 = 0x80;
/// Hours register in 12-hour form: PM.
const PM: u8 = 0x80;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// The registers and the selected index.
struct State {
    index: u8,
    ram: [u8; 128],
}

/// The wall clock the RTC shows: the host's, in seconds since 1970-01-01 00:00:00 UTC, read
/// at each access to a clock register. Any `Fn() -> u64` is one.
pub trait WallClock: Send + Sync {
    /// Seconds since the Unix epoch, UTC.
    fn unix_seconds(&self) -> u64;
}

impl<F: Fn() -> u64 + Send + Sync> WallClock for F {
    fn unix_seconds(&self) -> u64 {
        self()
    }
}

/// The CMOS RAM and RTC.
pub struct Cmos {
    state: Mutex<State>,
    /// The host's clock (a parameter so that tests can fix the time).
    clock: Box<dyn WallClock>,
}

impl Cmos {
    /// The CMOS of the VM `config` describes, with the memory-size registers filled from its
    /// memory map, its time read from `clock`.
    ///
    /// ```
    /// use axvm::{AccessWidth, AxVMConfig};
    /// use axvm_pc::{Cmos, PortAccess};
    ///
    /// // 2009-02-13 23:31:30 UTC; a host passes its own clock.
    /// let cmos = Cmos::with_clock(&AxVMConfig::new("rtc", 1), || 1_234_567_890_u64);
    /// cmos.write_port(0x70, AccessWidth::Byte, 0x04).unwrap(); // hours
    /// assert_eq!(cmos.read_port(0x71, AccessWidth::Byte).unwrap(), 0x23); // BCD
    /// ```
    pub fn with_clock(config: &AxVMConfig, clock: impl WallClock + 'static) -> Self {
        let mut ram = [0u8; 128];
        ram[usize::from(STATUS_A)] = STATUS_A_RESET;
        ram[usize::from(STATUS_B)] = HOURS_24;
        let map = e820_map(config);
        let (_, upper_kib) = lower_and_upper_memory_kib(&map);
        let extended_kib = upper_kib.min(0xffff);
        let mut set = |at: usize, value: u64, bytes: usize| {
            ram[at..at + bytes].copy_from_slice(&value.to_le_bytes()[..bytes]);
        };
        // Base memory: the RAM installed below 640 KiB, EBDA included (640 on a PC, as
        // QEMU says; the BDA's base memory size is this less the EBDA's KiB). Then
        // extended memory (KiB from 1 MiB), which firmware stores twice: as the
        // "configured" and the POST-"detected" amount.
        set(0x15, installed_base_kib(config), 2);
        set(0x17, extended_kib, 2);
        set(0x30, extended_kib, 2);
        // RAM contiguous from 1 MiB, below 4 GiB: what lies above 16 MiB, in 64 KiB units;
        // then RAM above 4 GiB, in 64 KiB units, in three bytes.
        let low_top = (HIGH_MEMORY_START + upper_kib * 1024).min(4 * GIB);
        set(
            0x34,
            (low_top.saturating_sub(16 * MIB) >> 16).min(0xffff),
            2,
        );
        let above_4g: u64 = map
            .iter()
            .filter(|entry| entry.kind == E820Kind::Ram)
            .map(|entry| (entry.addr + entry.size).saturating_sub(entry.addr.max(4 * GIB)))
            .sum();
        set(0x5b, (above_4g >> 16).min(0xff_ffff), 3);
        Self {
            state: Mutex::new(State { index: 0, ram }),
            clock: Box::new(clock),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The register at `index`: clock registers from the clock, in the form status B asks.
    fn read_register(&self, state: &State, index: u8) -> u8 {
        let status_b = state.ram[usize::from(STATUS_B)];
        let encode = |value: u8| {
            if status_b & BINARY != 0 {
                value
            } else {
                ((value / 10) << 4) | (value % 10)
            }
        };
        let now = || DateTime::from_unix(self.clock.unix_seconds());
        match index {
            0x00 => encode(now().second),
            0x02 => encode(now().minute),
            0x04 => {
                let hour = now().hour;
                if status_b & HOURS_24 != 0 {
                    encode(hour)
                } else {
                    let pm = if hour >= 12 { PM } else { 0 };
                    encode((hour + 11) % 12 + 1) | pm
                }
            }
            0x06 => encode(now().weekday),
            0x07 => encode(now().day),
            0x08 => encode(now().month),
            0x09 => encode((now().year % 100) as u8),
            CENTURY => encode((now().year / 100 % 100) as u8),
            STATUS_A => state.ram[usize::from(STATUS_A)] & !UIP,
            // No RTC interrupt is ever pending.
            STATUS_C => 0,
            STATUS_D => VALID_RAM_AND_TIME,
            _ => state.ram[usize::from(index)],
        }
    }
}

/// KiB of RAM contiguous from address 0, up to 640.
fn installed_base_kib(config: &AxVMConfig) -> u64 {
    const BASE_MEMORY_END: u64 = 640 * 1024;
    ram_map(config)
        .first()
        .filter(|ram| ram.addr == 0)
        .map_or(0, |ram| ram.size.min(BASE_MEMORY_END) / 1024)
}

/// The index and data ports' offsets in the device's one range.
const INDEX_OFFSET: u64 = 0;
const DATA_OFFSET: u64 = (CMOS_DATA_PORT - CMOS_INDEX_PORT) as u64;

impl BaseDeviceOps for Cmos {
    fn name(&self) -> &str {
        "CMOS RTC"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(CMOS_INDEX_PORT, 2)]
    }

    /// Byte by byte: a 16-bit access at 0x70 is the index port then the data port.
    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        let state = self.state();
        let mut value = 0u64;
        for i in 0..width.size() {
            let byte = match at.offset + i as u64 {
                DATA_OFFSET => self.read_register(&state, state.index),
                // The index port is write-only.
                _ => 0xff,
            };
            value |= u64::from(byte) << (8 * i);
        }
        Ok(value)
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let mut state = self.state();
        for i in 0..width.size() {
            let byte = (value >> (8 * i)) as u8;
            match at.offset + i as u64 {
                INDEX_OFFSET => state.index = byte & !NMI_DISABLE,
                DATA_OFFSET => match state.index {
                    // Clock registers follow the host; status C and D are read-only.
                    0x00 | 0x02 | 0x04 | 0x06..=0x09 | CENTURY | STATUS_C | STATUS_D => {}
                    STATUS_A => state.ram[usize::from(STATUS_A)] = byte & !UIP,
                    index => state.ram[usize::from(index)] = byte,
                },
                _ => {}
            }
        }
        Ok(WriteOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_config::config;
    use crate::PortAccess;

    const INDEX: u64 = CMOS_INDEX_PORT as u64;
    const DATA: u64 = CMOS_DATA_PORT as u64;

    fn read(cmos: &Cmos, index: u8) -> u8 {
        cmos.write_port(INDEX, AccessWidth::Byte, index.into())
            .unwrap();
        cmos.read_port(DATA, AccessWidth::Byte).unwrap() as u8
    }

    fn write(cmos: &Cmos, index: u8, value: u8) {
        cmos.write_port(INDEX, AccessWidth::Byte, index.into())
            .unwrap();
        cmos.write_port(DATA, AccessWidth::Byte, value.into())
            .unwrap();
    }

    #[test]
    fn clock_registers_are_bcd_24_hour() {
        // 2009-02-13 23:31:30, a Friday.
        let cmos = Cmos::with_clock(&config(1, &[(0, 0x10_0000, 0x7)]), || 1_234_567_890_u64);
        let registers = [0x00, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x32];
        let values = registers.map(|index| read(&cmos, index));
        assert_eq!(values, [0x30, 0x31, 0x23, 0x06, 0x13, 0x02, 0x09, 0x20]);
        assert_eq!(read(&cmos, STATUS_A) & UIP, 0);
        assert_eq!(read(&cmos, STATUS_B), 0x02);
        assert_eq!(read(&cmos, STATUS_D), 0x80);
        // Binary, 12-hour: 11 PM.
        write(&cmos, STATUS_B, BINARY);
        assert_eq!(read(&cmos, 0x04), PM | 11);
        assert_eq!(read(&cmos, 0x00), 30);
    }

    #[test]
    fn memory_size_registers() {
        // 1 MiB, then 31 MiB from 1 MiB, then 1 GiB above 4 GiB.
        let cmos = Cmos::with_clock(
            &config(1, &[(0, 0x200_0000, 0x7), (4 * GIB, GIB, 0x7)]),
            || 0_u64,
        );
        let word = |index: u8| u16::from_le_bytes([read(&cmos, index), read(&cmos, index + 1)]);
        assert_eq!(word(0x15), 640);
        assert_eq!(word(0x17), 31 * 1024);
        assert_eq!(word(0x30), 31 * 1024);
        assert_eq!(word(0x34), ((16 * MIB) >> 16) as u16);
        let high = [read(&cmos, 0x5b), read(&cmos, 0x5c), read(&cmos, 0x5d)];
        assert_eq!(high, [0x00, 0x40, 0x00]);
        // Extended memory caps at 0xffff KiB.
        let big = Cmos::with_clock(&config(1, &[(0, 2 * GIB, 0x7)]), || 0_u64);
        assert_eq!([read(&big, 0x17), read(&big, 0x18)], [0xff, 0xff]);
        assert_eq!([read(&big, 0x34), read(&big, 0x35)], [0x00, 0x7f]);
        // Base memory counts RAM from 0 only.
        let small = Cmos::with_clock(
            &config(1, &[(0, 0x8_0000, 0x7), (0x10_0000, MIB, 0x7)]),
            || 0_u64,
        );
        assert_eq!([read(&small, 0x15), read(&small, 0x16)], [0x00, 0x02]);
        let none = Cmos::with_clock(&config(1, &[(0x10_0000, MIB, 0x7)]), || 0_u64);
        assert_eq!([read(&none, 0x15), read(&none, 0x16)], [0, 0]);
    }

    #[test]
    fn other_registers_are_ram_and_bit_7_of_the_index_is_nmi() {
        let cmos = Cmos::with_clock(&config(1, &[(0, 0x10_0000, 0x7)]), || 0_u64);
        write(&cmos, NMI_DISABLE | 0x40, 0xa5);
        assert_eq!(read(&cmos, 0x40), 0xa5);
        write(&cmos, 0x7f, 0x5a);
        assert_eq!(read(&cmos, NMI_DISABLE | 0x7f), 0x5a);
        // Status D and the clock ignore writes.
        write(&cmos, STATUS_D, 0);
        assert_eq!(read(&cmos, STATUS_D), 0x80);
        // A 16-bit OUT to 0x70 writes the index, then the data port.
        cmos.write_port(INDEX, AccessWidth::Word, 0x3c41).unwrap();
        assert_eq!(read(&cmos, 0x41), 0x3c);
        assert_eq!(cmos.read_port(INDEX, AccessWidth::Byte).unwrap(), 0xff);
    }
}
