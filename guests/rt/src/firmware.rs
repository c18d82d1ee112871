//! What PC firmware leaves a kernel besides its boot protocol: the BIOS Data
//! Area (0x400-0x4ff) and the EBDA it points to, the CMOS memory-size
//! registers, and fw_cfg's CPU counts and `etc/e820`. [`report`] prints them
//! in lines that read the same under axvm and under QEMU with SeaBIOS
//! (`scripts/qemu-compat.sh` compares them), so a kernel moved from one to
//! the other finds the same values.
//!
//! Output (values for one COM port, 128 MiB and 2 CPUs):
//!
//! ```text
//! bda: COM 0x3f8 0x0 0x0 0x0, LPT 0x0 0x0 0x0, equipment 0x206
//! bda: base memory 639 KiB, EBDA segment 0x9fc0 (1 KiB)
//! bda: keyboard buffer 0x1e-0x3e head 0x1e tail 0x1e, flags 0x0 0x10
//! bda: COM timeouts 10 0 0 0, hard disks 0, disk control 0xc0
//! bda: timer ticks agree with the RTC
//! cmos: base 640 KiB, extended 65535 KiB, above 16 MiB 1792 x 64 KiB
//! fw_cfg: 2 CPUs, max 2
//! fw_cfg: e820 0x0 +0x8000000 type 1
//! ```
//!
//! The timer tick count changes with the time of day, so it is not printed:
//! it is converted to seconds since midnight and compared with the RTC.

use crate::fw_cfg;
use crate::io::{inb, outb};
use crate::phys::u8_at;
use crate::println;

/// Where the BIOS Data Area starts.
const BDA: usize = 0x400;
/// The PIT's input clock (Hz): the BIOS timer ticks at this / 65536.
const PIT_HZ: u64 = 1_193_182;
/// Seconds in a day.
const DAY: u64 = 86_400;
/// How far the tick count may be from the RTC, in seconds: firmware counts
/// ticks only until it hands over (interrupts off), and a guest under
/// emulation may read the RTC a good while later.
const TICK_SLACK_S: u64 = 120;

/// The byte at BDA offset `offset`.
fn bda8(offset: usize) -> u8 {
    // SAFETY: the BDA is low RAM, identity-mapped under boot32.
    unsafe { u8_at(BDA + offset) }
}

/// The little-endian u16 at BDA offset `offset`.
fn bda16(offset: usize) -> u16 {
    u16::from(bda8(offset)) | u16::from(bda8(offset + 1)) << 8
}

/// The little-endian u32 at BDA offset `offset`.
fn bda32(offset: usize) -> u32 {
    u32::from(bda16(offset)) | u32::from(bda16(offset + 2)) << 16
}

/// CMOS register `index` (NMIs left enabled).
fn cmos(index: u8) -> u8 {
    // SAFETY: selecting and reading a CMOS register has no other effect.
    unsafe {
        outb(0x70, index);
        inb(0x71)
    }
}

/// The RTC's time of day in seconds, in whichever form status B says.
fn rtc_seconds_of_day() -> u64 {
    // Wait out an update in progress so the three registers agree.
    while cmos(0x0a) & 0x80 != 0 {}
    let status_b = cmos(0x0b);
    let decode = |value: u8| {
        if status_b & 0x04 != 0 {
            u64::from(value)
        } else {
            u64::from(value >> 4) * 10 + u64::from(value & 0x0f)
        }
    };
    let hour_byte = cmos(0x04);
    let mut hour = decode(hour_byte & 0x7f);
    if status_b & 0x02 == 0 {
        // 12-hour form: 12 AM is 0, PM adds 12.
        hour %= 12;
        if hour_byte & 0x80 != 0 {
            hour += 12;
        }
    }
    hour * 3600 + decode(cmos(0x02)) * 60 + decode(cmos(0x00))
}

/// Prints the BDA, EBDA, CMOS and fw_cfg lines (see the module
/// documentation) and returns the BDA's base memory size in KiB, which a
/// Multiboot kernel compares with `mem_lower`.
pub fn report() -> u16 {
    let com = [0, 2, 4, 6].map(bda16);
    let lpt = [8, 10, 12].map(bda16);
    println!(
        "bda: COM {:#x} {:#x} {:#x} {:#x}, LPT {:#x} {:#x} {:#x}, equipment {:#x}",
        com[0],
        com[1],
        com[2],
        com[3],
        lpt[0],
        lpt[1],
        lpt[2],
        bda16(0x10)
    );
    let base_kib = bda16(0x13);
    let ebda_segment = bda16(0x0e);
    // SAFETY: a non-zero EBDA segment points into low RAM; its first byte is
    // its size in KiB.
    let ebda_kib = match ebda_segment {
        0 => 0,
        segment => unsafe { u8_at(usize::from(segment) << 4) },
    };
    println!("bda: base memory {base_kib} KiB, EBDA segment {ebda_segment:#x} ({ebda_kib} KiB)");
    println!(
        "bda: keyboard buffer {:#x}-{:#x} head {:#x} tail {:#x}, flags {:#x} {:#x}",
        bda16(0x80),
        bda16(0x82),
        bda16(0x1a),
        bda16(0x1c),
        bda8(0x17),
        bda8(0x96)
    );
    println!(
        "bda: COM timeouts {} {} {} {}, hard disks {}, disk control {:#x}",
        bda8(0x7c),
        bda8(0x7d),
        bda8(0x7e),
        bda8(0x7f),
        bda8(0x75),
        bda8(0x76)
    );
    print_ticks();
    print_cmos_memory();
    print_fw_cfg();
    base_kib
}

/// Compares the BDA's tick count (ticks since midnight) with the RTC.
fn print_ticks() {
    let ticks = u64::from(bda32(0x6c));
    let tick_seconds = ticks * 65536 / PIT_HZ;
    let now = rtc_seconds_of_day();
    let apart = (now + DAY - tick_seconds % DAY) % DAY;
    let apart = apart.min(DAY - apart);
    if apart <= TICK_SLACK_S {
        println!("bda: timer ticks agree with the RTC");
    } else {
        println!("bda: timer ticks {ticks} are {apart} s from the RTC's time of day {now} s");
    }
}

/// The CMOS memory-size registers firmware reads: base memory (0x15),
/// extended memory (0x17), and RAM above 16 MiB in 64 KiB units (0x34).
fn print_cmos_memory() {
    let word = |index: u8| u16::from(cmos(index)) | u16::from(cmos(index + 1)) << 8;
    println!(
        "cmos: base {} KiB, extended {} KiB, above 16 MiB {} x 64 KiB",
        word(0x15),
        word(0x17),
        word(0x34)
    );
}

/// fw_cfg's CPU counts and every `etc/e820` entry.
fn print_fw_cfg() {
    let cpus = fw_cfg::read_item_le(fw_cfg::NB_CPUS, 2);
    let max = fw_cfg::read_item_le(fw_cfg::MAX_CPUS, 2);
    println!("fw_cfg: {cpus} CPUs, max {max}");
    let entries = fw_cfg::for_each_e820(|e| {
        println!("fw_cfg: e820 {:#x} +{:#x} type {}", e.addr, e.len, e.kind);
    });
    if entries.is_none() {
        println!("fw_cfg: no etc/e820");
    }
}
