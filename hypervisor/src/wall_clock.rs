//! The wall clock: the machine's CMOS RTC, read once at boot, plus the time since. Guests
//! get it through their own emulated CMOS and the BIOS Data Area's tick count, as a PC's
//! firmware gives it (QEMU's RTC starts at the host's UTC time).

use core::sync::atomic::{AtomicU64, Ordering};

use crate::{cpu, time};

const CMOS_INDEX: u16 = 0x70;
const CMOS_DATA: u16 = 0x71;
/// Status A bit 7: an update is in progress, the time registers are changing.
const UPDATE_IN_PROGRESS: u8 = 1 << 7;
/// Status B: bit 1 24-hour mode, bit 2 binary (not BCD).
const STATUS_B: u8 = 0x0b;
const HOUR_24: u8 = 1 << 1;
const BINARY: u8 = 1 << 2;
/// The PM bit of the hours register in 12-hour mode.
const PM: u8 = 0x80;
/// The century register QEMU's and most PCs' CMOS keep (the ACPI FADT's default).
const CENTURY: u8 = 0x32;

/// Unix seconds at `time::now_nanos()` = 0.
static BOOT_UNIX_SECONDS: AtomicU64 = AtomicU64::new(0);

fn cmos(register: u8) -> u8 {
    // SAFETY: the CMOS index and data ports; reading a time register has no other effect.
    // Bit 7 of the index (NMI disable) stays clear.
    unsafe {
        cpu::outb(CMOS_INDEX, register & 0x7f);
        cpu::inb(CMOS_DATA)
    }
}

/// The RTC's (seconds, minutes, hours, day, month, year in the century), read between
/// updates, twice until two reads agree.
fn read_registers() -> [u8; 6] {
    let once = || {
        while cmos(0x0a) & UPDATE_IN_PROGRESS != 0 {
            core::hint::spin_loop();
        }
        [
            cmos(0x00),
            cmos(0x02),
            cmos(0x04),
            cmos(0x07),
            cmos(0x08),
            cmos(0x09),
        ]
    };
    let mut last = once();
    loop {
        let again = once();
        if again == last {
            return again;
        }
        last = again;
    }
}

/// Reads the machine's RTC and remembers the time; call once on the BSP after
/// `time::calibrate`. Returns the Unix time read.
pub fn init() -> u64 {
    let [second, minute, hour, day, month, year] = read_registers();
    let status_b = cmos(STATUS_B);
    let value = |raw: u8| {
        if status_b & BINARY != 0 {
            raw
        } else {
            (raw >> 4) * 10 + (raw & 0x0f)
        }
    };
    let mut hours = value(hour & !PM);
    if status_b & HOUR_24 == 0 {
        hours = hours % 12 + if hour & PM != 0 { 12 } else { 0 };
    }
    // A century register that does not hold 19-29 is not one: assume the 2000s.
    let century = Some(value(cmos(CENTURY)))
        .filter(|century| (19..=29).contains(century))
        .unwrap_or(20);
    let unix = axvm_pc::unix_time_of(
        u32::from(century) * 100 + u32::from(value(year)),
        value(month),
        value(day),
        hours,
        value(minute),
        value(second),
    );
    let since_boot = time::now_nanos() / 1_000_000_000;
    BOOT_UNIX_SECONDS.store(unix.saturating_sub(since_boot), Ordering::Release);
    unix
}

/// Seconds since 1970-01-01 00:00:00 UTC, now.
pub fn unix_seconds() -> u64 {
    BOOT_UNIX_SECONDS.load(Ordering::Acquire) + time::now_nanos() / 1_000_000_000
}
