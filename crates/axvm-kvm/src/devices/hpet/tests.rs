//! The HPET as the guest reaches it: MMIO accesses of every width, the timer thread's
//! interrupts, and what the lines are told.

use std::sync::mpsc;

use axvm::device::DeviceSpace;

use super::registers::{
    CONFIG_REG, COUNTER_REG, ENABLE_CNF, LEG_RT_CNF, STATUS_REG, TIMER_BASE, TIMER_COMPARATOR,
    TIMER_CONFIG, TN_INT_ENB, TN_LEVEL, TN_PERIODIC, TN_VAL_SET,
};
use super::*;

/// What the lines were told, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Told {
    Level(u32, bool),
    Pit(bool),
}

struct Recorder(Mutex<mpsc::Sender<Told>>);

impl HpetLines for Recorder {
    fn set_level(&self, gsi: u32, high: bool) {
        let _ = self.0.lock().unwrap().send(Told::Level(gsi, high));
    }
    fn pit_output(&self, enabled: bool) {
        let _ = self.0.lock().unwrap().send(Told::Pit(enabled));
    }
}

fn recorded() -> (Hpet, mpsc::Receiver<Told>) {
    let (tx, rx) = mpsc::channel();
    (Hpet::new(Box::new(Recorder(Mutex::new(tx)))), rx)
}

fn read(hpet: &Hpet, offset: u64, width: AccessWidth) -> u64 {
    hpet.handle_read(DeviceOffset::new(0, offset), width)
        .unwrap()
}

fn write(hpet: &Hpet, offset: u64, width: AccessWidth, value: u64) {
    let outcome = hpet.handle_write(DeviceOffset::new(0, offset), width, value);
    assert_eq!(outcome.unwrap(), WriteOutcome::Done);
}

const WIDTHS: [AccessWidth; 4] = [
    AccessWidth::Byte,
    AccessWidth::Word,
    AccessWidth::Dword,
    AccessWidth::Qword,
];

#[test]
fn it_claims_the_1_kib_register_block_at_0xfed00000() {
    let (hpet, _) = recorded();
    let ranges = hpet.address_ranges();
    assert_eq!(ranges.len(), 1);
    assert!(ranges[0].contains(DeviceSpace::Mmio, 0xfed0_0000));
    assert!(ranges[0].contains(DeviceSpace::Mmio, 0xfed0_03ff));
    assert!(!ranges[0].contains(DeviceSpace::Mmio, 0xfed0_0400));
}

#[test]
fn every_width_reads_the_bytes_it_covers() {
    let (hpet, _) = recorded();
    let caps = HPET_CAPABILITIES;
    assert_eq!(read(&hpet, 0, AccessWidth::Qword), caps);
    assert_eq!(read(&hpet, 0, AccessWidth::Dword), caps & 0xffff_ffff);
    assert_eq!(read(&hpet, 4, AccessWidth::Dword), registers::PERIOD_FS);
    assert_eq!(read(&hpet, 2, AccessWidth::Word), 0x8086);
    assert_eq!(read(&hpet, 1, AccessWidth::Byte), caps >> 8 & 0xff);
    // Straddling two registers: the top half of GCAP_ID and the reserved 0x08.
    assert_eq!(read(&hpet, 4, AccessWidth::Qword), registers::PERIOD_FS);
    // Past the block's end: zeros.
    assert_eq!(read(&hpet, 0x3fc, AccessWidth::Qword), 0);
}

#[test]
fn the_counter_halves_can_be_written_and_read_32_bits_at_a_time() {
    let (hpet, _) = recorded();
    write(&hpet, COUNTER_REG, AccessWidth::Dword, 0x8765_4321);
    write(&hpet, COUNTER_REG + 4, AccessWidth::Dword, 0x1234);
    assert_eq!(
        read(&hpet, COUNTER_REG, AccessWidth::Qword),
        0x1234_8765_4321
    );
    assert_eq!(read(&hpet, COUNTER_REG + 4, AccessWidth::Dword), 0x1234);
    // A write straddling CONFIG's end and the reserved register after it.
    write(&hpet, CONFIG_REG + 4, AccessWidth::Qword, u64::MAX);
    assert_eq!(read(&hpet, CONFIG_REG, AccessWidth::Qword), 0);
}

#[test]
fn hostile_accesses_never_panic() {
    let (hpet, _) = recorded();
    let values = [0, u64::MAX, 0x5555_5555_5555_5555, 1, 0x8000_0000_0000_0000];
    for offset in 0..0x400 + 8 {
        for width in WIDTHS {
            for value in values {
                write(&hpet, offset, width, value);
                let _ = read(&hpet, offset, width);
            }
        }
    }
    let _ = read(&hpet, u64::MAX, AccessWidth::Qword);
    write(&hpet, u64::MAX - 3, AccessWidth::Qword, u64::MAX);
}

#[test]
fn legacy_replacement_silences_the_pit_and_gives_it_back() {
    let (hpet, told) = recorded();
    write(
        &hpet,
        CONFIG_REG,
        AccessWidth::Dword,
        ENABLE_CNF | LEG_RT_CNF,
    );
    assert_eq!(told.try_recv(), Ok(Told::Pit(false)));
    write(&hpet, CONFIG_REG, AccessWidth::Dword, ENABLE_CNF);
    assert_eq!(told.try_recv(), Ok(Told::Pit(true)));
    assert!(told.try_recv().is_err());
}

#[test]
fn the_timer_thread_delivers_periodic_interrupts_on_irq_0() {
    let (hpet, told) = recorded();
    hpet.start("test", false).unwrap();
    let timer0 = TIMER_BASE;
    let config = TN_INT_ENB | TN_PERIODIC | TN_VAL_SET;
    write(&hpet, timer0 + TIMER_CONFIG, AccessWidth::Dword, config);
    // A 1 ms period (100,000 ticks).
    write(
        &hpet,
        timer0 + TIMER_COMPARATOR,
        AccessWidth::Qword,
        100_000,
    );
    write(
        &hpet,
        timer0 + TIMER_COMPARATOR,
        AccessWidth::Qword,
        100_000,
    );
    write(
        &hpet,
        CONFIG_REG,
        AccessWidth::Dword,
        ENABLE_CNF | LEG_RT_CNF,
    );
    assert_eq!(told.recv(), Ok(Told::Pit(false)));
    // Three pulses of GSI 0 arrive without any access from the guest (the wait is not a
    // measurement: it only keeps a broken thread from hanging the test).
    for _ in 0..3 {
        for level in [true, false] {
            let pulse = told.recv_timeout(Duration::from_secs(10));
            assert_eq!(pulse, Ok(Told::Level(0, level)));
        }
    }
    drop(hpet);
}

#[test]
fn a_level_interrupt_holds_its_line_until_the_status_bit_is_cleared() {
    let (hpet, told) = recorded();
    let timer2 = TIMER_BASE + 2 * 0x20;
    let config = TN_INT_ENB | TN_LEVEL | 8 << 9;
    write(&hpet, timer2 + TIMER_CONFIG, AccessWidth::Qword, config);
    write(&hpet, timer2 + TIMER_COMPARATOR, AccessWidth::Qword, 10);
    write(&hpet, CONFIG_REG, AccessWidth::Qword, ENABLE_CNF);
    // Without the thread, the next access after the match catches up (the bound only keeps
    // a broken device from hanging the test).
    let give_up = std::time::Instant::now() + Duration::from_secs(10);
    while read(&hpet, STATUS_REG, AccessWidth::Qword) == 0 {
        assert!(
            std::time::Instant::now() < give_up,
            "the status bit never set"
        );
        std::thread::yield_now();
    }
    assert_eq!(told.try_recv(), Ok(Told::Level(8, true)));
    assert!(told.try_recv().is_err(), "held, not pulsed");
    write(&hpet, STATUS_REG, AccessWidth::Qword, 0b100);
    assert_eq!(told.try_recv(), Ok(Told::Level(8, false)));
}

#[test]
fn dropping_the_device_ends_its_thread() {
    let (hpet, told) = recorded();
    hpet.start("test", false).unwrap();
    hpet.start("test", false).unwrap();
    drop(hpet);
    // The recorder went with the thread's share: the channel is closed.
    assert_eq!(
        told.recv_timeout(Duration::from_secs(10)),
        Err(mpsc::RecvTimeoutError::Disconnected)
    );
}
