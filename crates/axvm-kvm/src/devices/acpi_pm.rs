//! The ACPI fixed power-management registers, at the ports QEMU's PC gives its PIIX4 PM
//! function, and which the FADT names (see `boot::acpi`): without them Linux's ACPI
//! interpreter does not start ("Required FADT field Pm1aEventBlock has zero address"), and
//! `poweroff` has no way to turn the machine off.
//!
//! - PM1a event block, ports 0x600-0x603: PM1_STS (16 bits, write 1 to clear a bit) and
//!   PM1_EN (16 bits, read/write). The only status bit that can become set is TMR_STS,
//!   which the timer's bit 31 sets each time it changes.
//! - PM1a control block, ports 0x604-0x605: PM1_CNT. SCI_EN always reads 1: the machine is
//!   always in ACPI mode (the FADT has no SMI command port to switch modes). A write with
//!   SLP_EN (bit 13) and the SLP_TYP (bits 10-12) the DSDT's `\_S5` declares powers off:
//!   the VM stops with status 0, as after a reset. That type is 0, QEMU's, so the write
//!   kernels built for QEMU's q35 make without reading the DSDT, 0x2000 to port 0x604
//!   (ArceOS, NimbOS), powers off too. Other sleep states are not supported:
//!   such writes are logged and ignored, and the guest goes on.
//! - PM timer, ports 0x608-0x60b: a 32-bit counter (the FADT sets TMR_VAL_EXT) at
//!   3.579545 MHz, computed from the host's monotonic clock and the device's start, so it
//!   neither drifts nor overflows however long the VM runs. Linux uses it as a clocksource
//!   candidate and to calibrate the TSC and the local APIC timer.
//!
//! Accesses of any width at any port of a block work byte by byte, as on the chipset: a
//! byte read of half a 16-bit register, or a dword read of PM1_STS and PM1_EN together.
//! Bytes of an access past the end of a block read as all-ones and ignore writes.
//!
//! The SCI is ISA IRQ 9 (the FADT's SCI_INT, level-triggered in the MADT), but nothing
//! raises it yet: no fixed event is ever signalled to the guest (the power and sleep
//! buttons are not fixed hardware, and the timer-overflow event would need the interrupt).
//! There is no GPE block.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

use crate::boot::acpi::{
    PM1A_CONTROL_PORT, PM1A_EVENT_PORT, PM1_CONTROL_LEN, PM1_EVENT_LEN, PM_TIMER_LEN,
    PM_TIMER_PORT, S5_SLEEP_TYPE,
};

/// The PM timer's rate: the NTSC colour-burst frequency of the original PC, 3.579545 MHz.
pub const PM_TIMER_HZ: u64 = 3_579_545;

/// PM1_STS: the timer's most significant bit changed.
pub const TMR_STS: u16 = 1 << 0;
/// PM1_EN bits the guest can set: TMR_EN, GBL_EN, PWRBTN_EN, SLPBTN_EN, RTC_EN,
/// PCIEXP_WAKE_DIS. The others are reserved and read 0.
const PM1_EN_BITS: u16 = 1 | 1 << 5 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 14;
/// PM1_CNT: SCI_EN, the SCI rather than an SMI signals power events (ACPI mode).
pub const SCI_EN: u16 = 1 << 0;
/// PM1_CNT: BM_RLD, a bus master request takes the CPU out of C3 (stored, no effect).
const BM_RLD: u16 = 1 << 1;
/// PM1_CNT: where SLP_TYP lies (bits 10-12).
const SLP_TYP_SHIFT: u16 = 10;
const SLP_TYP_MASK: u16 = 0b111 << SLP_TYP_SHIFT;
/// PM1_CNT: SLP_EN, enter the sleep state SLP_TYP names (write-only, reads 0).
pub const SLP_EN: u16 = 1 << 13;
/// The value of PM1_CNT that powers off: SLP_TYP of S5 with SLP_EN.
#[cfg(test)]
pub const POWER_OFF: u16 = (S5_SLEEP_TYPE as u16) << SLP_TYP_SHIFT | SLP_EN;

/// The PM timer's count after `elapsed`: whole ticks of [`PM_TIMER_HZ`], computed in 128
/// bits so that no product overflows (the count itself wraps after 163,000 years). The
/// guest sees its low 32 bits.
pub fn pm_timer_ticks(elapsed: Duration) -> u64 {
    (elapsed.as_nanos() * u128::from(PM_TIMER_HZ) / 1_000_000_000) as u64
}

/// The device's registers, by the order of their ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Register {
    Status,
    Enable,
    Control,
    Timer,
}

const REGISTERS: [Register; 4] = [
    Register::Status,
    Register::Enable,
    Register::Control,
    Register::Timer,
];

/// Each range's first port (in [`AcpiPm::address_ranges`] order), as a distance from
/// PM1a_EVT_BLK. The blocks keep their chipset spacing, so an access that runs off the end
/// of one block into the next reaches the next block's register, as on the chipset.
const BLOCK_STARTS: [u16; 3] = [
    0,
    PM1A_CONTROL_PORT - PM1A_EVENT_PORT,
    PM_TIMER_PORT - PM1A_EVENT_PORT,
];

/// How far past PM1a_EVT_BLK the byte `i` of an access at `at` lies.
fn position(at: DeviceOffset, i: u64) -> u64 {
    let start = BLOCK_STARTS.get(at.range).copied().unwrap_or(0);
    u64::from(start) + at.offset + i
}

/// The register holding the byte `position` ports past PM1a_EVT_BLK, and that byte's bit
/// shift in it.
fn register_at(position: u64) -> Option<(Register, u32)> {
    let in_block = |base: u16, len: u8| {
        position
            .checked_sub(u64::from(base - PM1A_EVENT_PORT))
            .filter(|&offset| offset < u64::from(len))
    };
    if let Some(offset) = in_block(PM1A_EVENT_PORT, PM1_EVENT_LEN) {
        let register = if offset < 2 {
            Register::Status
        } else {
            Register::Enable
        };
        return Some((register, 8 * (offset as u32 % 2)));
    }
    if let Some(offset) = in_block(PM1A_CONTROL_PORT, PM1_CONTROL_LEN) {
        return Some((Register::Control, 8 * offset as u32));
    }
    in_block(PM_TIMER_PORT, PM_TIMER_LEN).map(|offset| (Register::Timer, 8 * offset as u32))
}

/// What the guest set.
#[derive(Default)]
struct State {
    enable: u16,
    /// PM1_CNT's read/write bits (BM_RLD, SLP_TYP).
    control: u16,
    /// How many times the timer's bit 31 had changed when TMR_STS was last cleared.
    timer_flips_cleared: u64,
}

/// The ACPI PM1a event and control blocks and the PM timer.
pub struct AcpiPm {
    /// When the timer read 0.
    start: Instant,
    state: Mutex<State>,
}

impl Default for AcpiPm {
    fn default() -> Self {
        Self::started_at(Instant::now())
    }
}

impl AcpiPm {
    /// A device whose timer read 0 at `start` (tests start it in the past).
    pub fn started_at(start: Instant) -> Self {
        Self {
            start,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn ticks(&self) -> u64 {
        pm_timer_ticks(self.start.elapsed())
    }

    /// The value of `register`, with the timer at `ticks`.
    fn read_register(&self, state: &State, register: Register, ticks: u64) -> u32 {
        match register {
            Register::Status if ticks >> 31 != state.timer_flips_cleared => TMR_STS.into(),
            Register::Status => 0,
            Register::Enable => state.enable.into(),
            Register::Control => (SCI_EN | state.control).into(),
            Register::Timer => ticks as u32,
        }
    }

    /// Applies a write of `bits` to the bytes of `register` that `mask` covers.
    fn write_register(
        &self,
        state: &mut State,
        register: Register,
        (mask, bits): (u32, u32),
    ) -> WriteOutcome {
        let (mask, bits) = (mask as u16, bits as u16);
        match register {
            Register::Status if bits & TMR_STS != 0 => {
                state.timer_flips_cleared = self.ticks() >> 31;
            }
            Register::Status => {}
            Register::Enable => {
                state.enable = (state.enable & !mask | bits) & PM1_EN_BITS;
            }
            Register::Control => {
                let written = state.control & !mask | bits;
                state.control = written & (BM_RLD | SLP_TYP_MASK);
                if written & SLP_EN != 0 {
                    return sleep(written);
                }
            }
            Register::Timer => log::debug!("ACPI PM: write to the read-only PM timer ignored"),
        }
        WriteOutcome::Done
    }
}

/// What a PM1_CNT write of `value`, with SLP_EN set, does: power off for S5's sleep type,
/// nothing for the others.
fn sleep(value: u16) -> WriteOutcome {
    let sleep_type = (value & SLP_TYP_MASK) >> SLP_TYP_SHIFT;
    if sleep_type == u16::from(S5_SLEEP_TYPE) {
        log::info!("guest powered off (ACPI S5) through PM1_CNT at port {PM1A_CONTROL_PORT:#x}");
        return WriteOutcome::StopVm { exit_status: 0 };
    }
    log::debug!(
        "ACPI PM: sleep type {sleep_type} requested through PM1_CNT ignored: only soft-off \
         (SLP_TYP {S5_SLEEP_TYPE}, the DSDT's \\_S5) is supported"
    );
    WriteOutcome::Done
}

impl BaseDeviceOps for AcpiPm {
    fn name(&self) -> &str {
        "ACPI PM"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![
            DeviceRange::port(PM1A_EVENT_PORT, PM1_EVENT_LEN.into()),
            DeviceRange::port(PM1A_CONTROL_PORT, PM1_CONTROL_LEN.into()),
            DeviceRange::port(PM_TIMER_PORT, PM_TIMER_LEN.into()),
        ]
    }

    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        let ticks = self.ticks();
        let state = self.state();
        let value = (0..width.size() as u64).rev().fold(0u64, |value, i| {
            let byte = register_at(position(at, i)).map_or(0xff, |(register, shift)| {
                (self.read_register(&state, register, ticks) >> shift) as u8
            });
            value << 8 | u64::from(byte)
        });
        Ok(value)
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        // The (mask, bits) each register receives from this access.
        let mut writes = [(0u32, 0u32); REGISTERS.len()];
        for i in 0..width.size() as u64 {
            if let Some((register, shift)) = register_at(position(at, i)) {
                let byte = (value >> (8 * i)) as u8;
                let write = &mut writes[register as usize];
                *write = (write.0 | 0xff << shift, write.1 | u32::from(byte) << shift);
            }
        }
        let mut state = self.state();
        let mut outcome = WriteOutcome::Done;
        for (register, write) in REGISTERS.into_iter().zip(writes) {
            if write.0 == 0 {
                continue;
            }
            if let stop @ WriteOutcome::StopVm { .. } =
                self.write_register(&mut state, register, write)
            {
                outcome = stop;
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axvm_pc::PortAccess;

    const STATUS: u64 = PM1A_EVENT_PORT as u64;
    const ENABLE: u64 = STATUS + 2;
    const CONTROL: u64 = PM1A_CONTROL_PORT as u64;
    const TIMER: u64 = PM_TIMER_PORT as u64;

    fn read(pm: &AcpiPm, port: u64, width: AccessWidth) -> u64 {
        pm.read_port(port, width).unwrap()
    }

    fn write(pm: &AcpiPm, port: u64, width: AccessWidth, value: u64) -> WriteOutcome {
        pm.write_port(port, width, value).unwrap()
    }

    #[test]
    fn writing_s5_with_slp_en_stops_the_vm_with_status_0() {
        let pm = AcpiPm::default();
        // As ACPICA does it: SLP_TYP first, then SLP_TYP with SLP_EN.
        let sleep_type = u64::from(POWER_OFF & !SLP_EN);
        assert_eq!(
            write(&pm, CONTROL, AccessWidth::Word, sleep_type),
            WriteOutcome::Done
        );
        assert_eq!(
            write(&pm, CONTROL, AccessWidth::Word, POWER_OFF.into()),
            WriteOutcome::StopVm { exit_status: 0 }
        );
        // The high byte alone, with SLP_TYP already written, powers off too.
        let pm = AcpiPm::default();
        write(&pm, CONTROL, AccessWidth::Word, sleep_type);
        let high = u64::from(POWER_OFF >> 8);
        assert_eq!(
            write(&pm, CONTROL + 1, AccessWidth::Byte, high),
            WriteOutcome::StopVm { exit_status: 0 }
        );
    }

    #[test]
    fn qemus_power_off_write_of_0x2000_to_port_0x604_stops_the_vm() {
        let pm = AcpiPm::default();
        assert_eq!(CONTROL, 0x604);
        assert_eq!(
            write(&pm, CONTROL, AccessWidth::Word, 0x2000),
            WriteOutcome::StopVm { exit_status: 0 }
        );
        // The same as a dword (`out dx, eax`).
        let pm = AcpiPm::default();
        assert_eq!(
            write(&pm, CONTROL, AccessWidth::Dword, 0x2000),
            WriteOutcome::StopVm { exit_status: 0 }
        );
    }

    #[test]
    fn other_sleep_types_are_ignored() {
        let pm = AcpiPm::default();
        for sleep_type in (0..8).filter(|&t| t != u16::from(S5_SLEEP_TYPE)) {
            let value = sleep_type << SLP_TYP_SHIFT | SLP_EN;
            assert_eq!(
                write(&pm, CONTROL, AccessWidth::Word, value.into()),
                WriteOutcome::Done,
                "SLP_TYP {sleep_type}"
            );
            // SLP_TYP reads back, SLP_EN does not.
            let expected = sleep_type << SLP_TYP_SHIFT | SCI_EN;
            assert_eq!(read(&pm, CONTROL, AccessWidth::Word), u64::from(expected));
        }
        // S5's type without SLP_EN only selects it.
        let s5 = u64::from(POWER_OFF & !SLP_EN);
        assert_eq!(
            write(&pm, CONTROL, AccessWidth::Word, s5),
            WriteOutcome::Done
        );
    }

    #[test]
    fn sci_en_always_reads_1() {
        let pm = AcpiPm::default();
        assert_eq!(read(&pm, CONTROL, AccessWidth::Word), u64::from(SCI_EN));
        assert_eq!(read(&pm, CONTROL, AccessWidth::Byte), u64::from(SCI_EN));
        write(&pm, CONTROL, AccessWidth::Word, 0);
        assert_eq!(read(&pm, CONTROL, AccessWidth::Word) & 1, 1);
    }

    #[test]
    fn tmr_sts_is_set_by_the_timer_msb_and_cleared_by_writing_1() {
        // 700 s ago: bit 31 of a 3.58 MHz counter changes every 600 s.
        let Some(start) = Instant::now().checked_sub(Duration::from_secs(700)) else {
            return; // a host booted less than 700 s ago cannot date the start back
        };
        let pm = AcpiPm::started_at(start);
        assert_eq!(read(&pm, STATUS, AccessWidth::Word), u64::from(TMR_STS));
        // Writing 0 clears nothing; writing 1 to another bit clears nothing either.
        write(&pm, STATUS, AccessWidth::Word, 0);
        write(&pm, STATUS + 1, AccessWidth::Byte, 0xff);
        assert_eq!(read(&pm, STATUS, AccessWidth::Byte), u64::from(TMR_STS));
        write(&pm, STATUS, AccessWidth::Word, TMR_STS.into());
        assert_eq!(read(&pm, STATUS, AccessWidth::Word), 0);
        // A fresh device has no status bit set.
        assert_eq!(read(&AcpiPm::default(), STATUS, AccessWidth::Word), 0);
    }

    #[test]
    fn pm1_en_reads_back_its_defined_bits_at_any_width() {
        let pm = AcpiPm::default();
        write(&pm, ENABLE, AccessWidth::Word, 0xffff);
        assert_eq!(read(&pm, ENABLE, AccessWidth::Word), u64::from(PM1_EN_BITS));
        write(&pm, ENABLE + 1, AccessWidth::Byte, 0);
        assert_eq!(read(&pm, ENABLE, AccessWidth::Word), 0x21);
        // A dword at 0x600 reads PM1_STS in the low half and PM1_EN in the high half.
        assert_eq!(read(&pm, STATUS, AccessWidth::Dword), 0x21 << 16);
        write(&pm, STATUS, AccessWidth::Dword, 0x0100 << 16);
        assert_eq!(read(&pm, ENABLE, AccessWidth::Word), 0x0100);
    }

    #[test]
    fn bytes_past_a_block_read_all_ones() {
        let pm = AcpiPm::default();
        // A dword at PM1_CNT: the control register, then two unclaimed bytes.
        assert_eq!(read(&pm, CONTROL, AccessWidth::Dword), 0xffff_0000 | 1);
        assert_eq!(read(&pm, TIMER + 3, AccessWidth::Word) >> 8, 0xff);
    }

    #[test]
    fn the_tick_conversion_is_exact_and_does_not_overflow() {
        assert_eq!(pm_timer_ticks(Duration::ZERO), 0);
        assert_eq!(pm_timer_ticks(Duration::from_secs(1)), PM_TIMER_HZ);
        assert_eq!(pm_timer_ticks(Duration::from_millis(1)), 3579);
        assert_eq!(
            pm_timer_ticks(Duration::from_secs(1000)),
            1000 * PM_TIMER_HZ
        );
        // A day: no drift, the product of nanoseconds and the rate is far past 64 bits.
        assert_eq!(
            pm_timer_ticks(Duration::from_secs(86_400)),
            86_400 * PM_TIMER_HZ
        );
        let year = Duration::from_secs(365 * 86_400);
        assert_eq!(pm_timer_ticks(year), 365 * 86_400 * PM_TIMER_HZ);
    }

    #[test]
    fn the_timer_advances_at_about_its_rate() {
        let pm = AcpiPm::default();
        let before = Instant::now();
        let first = read(&pm, TIMER, AccessWidth::Dword) as u32;
        std::thread::sleep(Duration::from_millis(50));
        let second = read(&pm, TIMER, AccessWidth::Dword) as u32;
        let elapsed = before.elapsed();
        let ticks = u64::from(second.wrapping_sub(first));
        // At least the 50 ms slept, at most what really passed (plus one tick).
        assert!(
            ticks >= pm_timer_ticks(Duration::from_millis(50)),
            "{ticks}"
        );
        assert!(
            ticks <= pm_timer_ticks(elapsed) + 1,
            "{ticks} in {elapsed:?}"
        );
        // The timer ignores writes.
        write(&pm, TIMER, AccessWidth::Dword, 0);
        assert!(read(&pm, TIMER, AccessWidth::Dword) as u32 >= second);
    }

    #[test]
    fn byte_reads_of_the_timer_read_its_bytes() {
        let Some(start) = Instant::now().checked_sub(Duration::from_secs(2)) else {
            return;
        };
        let pm = AcpiPm::started_at(start);
        let before = read(&pm, TIMER, AccessWidth::Dword);
        let third = read(&pm, TIMER + 2, AccessWidth::Byte);
        let fourth = read(&pm, TIMER + 3, AccessWidth::Byte);
        let after = read(&pm, TIMER, AccessWidth::Dword);
        assert!(
            before >= pm_timer_ticks(Duration::from_secs(2)),
            "{before:#x}"
        );
        // Seconds in, the third byte counts up between the two full reads; the fourth
        // changes only every 4.7 s.
        assert!((before >> 16 & 0xff..=after >> 16 & 0xff).contains(&third));
        assert!((before >> 24..=after >> 24).contains(&fourth));
    }
}
