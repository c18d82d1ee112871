use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use super::regs::*;
use super::*;

/// A UART whose output and interrupt levels are recorded.
struct Rig {
    uart: Pl011,
    output: Arc<Mutex<Vec<u8>>>,
    levels: Arc<Mutex<Vec<bool>>>,
}

impl Rig {
    fn new() -> Self {
        let output = Arc::new(Mutex::new(Vec::new()));
        let levels = Arc::new(Mutex::new(Vec::new()));
        let (sink, lines) = (output.clone(), levels.clone());
        let uart = Pl011::new(
            Box::new(move |bytes: &[u8]| sink.lock().extend_from_slice(bytes)),
            Box::new(move |level| lines.lock().push(level)),
        );
        Self {
            uart,
            output,
            levels,
        }
    }

    fn read(&self, offset: u64) -> u32 {
        self.read_width(offset, AccessWidth::Dword)
    }

    fn read_width(&self, offset: u64, width: AccessWidth) -> u32 {
        let value = self
            .uart
            .handle_read(DeviceOffset::first(offset), width)
            .unwrap();
        width.truncate(value) as u32
    }

    fn write(&self, offset: u64, value: u32) {
        self.write_width(offset, AccessWidth::Dword, value);
    }

    fn write_width(&self, offset: u64, width: AccessWidth, value: u32) {
        let outcome = self
            .uart
            .handle_write(DeviceOffset::first(offset), width, u64::from(value))
            .unwrap();
        assert_eq!(outcome, WriteOutcome::Done);
    }

    fn levels(&self) -> Vec<bool> {
        self.levels.lock().clone()
    }

    fn enable_fifos(&self) {
        self.write(LCR_H, LCR_H_FEN | 0x60); // 8 bits, FIFOs on
    }
}

#[test]
fn identification_registers_read_as_an_arm_pl011() {
    let rig = Rig::new();
    let ids: Vec<u32> = (0..8).map(|i| rig.read(0xfe0 + 4 * i)).collect();
    assert_eq!(ids, [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
    // Linux reads them with 32-bit loads; a byte load gives the same byte.
    assert_eq!(rig.read_width(0xff0, AccessWidth::Byte), 0x0d);
}

#[test]
fn the_device_describes_itself() {
    let rig = Rig::new();
    assert_eq!(rig.uart.name(), "pl011");
    assert_eq!(rig.uart.emu_type(), EmulatedDeviceType::Console);
    assert_eq!(
        rig.uart.address_ranges(),
        vec![DeviceRange::mmio(0x0900_0000, 0x1000)]
    );
}

#[test]
fn flags_say_tx_empty_never_full_and_follow_the_rx_fifo() {
    let rig = Rig::new();
    assert_eq!(rig.read(FR), FR_TXFE | FR_RXFE);
    rig.enable_fifos();
    rig.uart.push_input(b"x");
    assert_eq!(rig.read(FR), FR_TXFE);
    rig.uart.push_input(&[b'y'; 15]);
    assert_eq!(rig.read(FR), FR_TXFE | FR_RXFF);
    rig.write(DR, u32::from(b'a'));
    assert_eq!(
        rig.read(FR) & (FR_TXFF | (1 << 3)),
        0,
        "never TX-full or busy"
    );
}

#[test]
fn transmitted_bytes_reach_the_output_at_any_width() {
    let rig = Rig::new();
    rig.write_width(DR, AccessWidth::Byte, u32::from(b'h'));
    rig.write_width(DR, AccessWidth::Word, u32::from(b'i'));
    rig.write(DR, 0xffff_ff00 | u32::from(b'!'));
    assert_eq!(*rig.output.lock(), b"hi!");
}

#[test]
fn received_bytes_are_read_in_order_and_raise_the_rx_interrupt() {
    let rig = Rig::new();
    rig.enable_fifos();
    rig.write(IMSC, INT_RX | INT_RT);
    assert_eq!(rig.levels(), Vec::<bool>::new(), "nothing received yet");
    assert_eq!(rig.uart.push_input(b"ok"), 2);
    assert_eq!(rig.levels(), [true]);
    assert_eq!(rig.read(RIS) & INT_RX, INT_RX);
    assert_eq!(rig.read(MIS), INT_RX);
    assert_eq!(rig.read(DR), u32::from(b'o'));
    assert_eq!(rig.levels(), [true], "one byte left: the line stays high");
    assert_eq!(rig.read(DR), u32::from(b'k'));
    assert_eq!(rig.levels(), [true, false], "FIFO drained: the line drops");
    assert_eq!(rig.read(FR) & FR_RXFE, FR_RXFE);
    assert_eq!(rig.read(DR), 0, "an empty FIFO reads 0");
}

#[test]
fn a_masked_rx_interrupt_keeps_the_line_low_until_unmasked() {
    let rig = Rig::new();
    rig.uart.push_input(b"z");
    assert_eq!(rig.read(RIS) & INT_RX, INT_RX);
    assert_eq!(rig.read(MIS), 0);
    assert_eq!(rig.levels(), Vec::<bool>::new());
    rig.write(IMSC, INT_RX);
    assert_eq!(rig.levels(), [true]);
}

#[test]
fn the_rx_fifo_is_16_deep_with_fifos_on_and_1_without() {
    let rig = Rig::new();
    assert_eq!(
        rig.uart.push_input(b"abc"),
        1,
        "FIFOs off: one holding register"
    );
    assert_eq!(rig.uart.rx_room(), 0);
    rig.enable_fifos();
    assert_eq!(rig.uart.push_input(&[0u8; 20]), 15);
    assert_eq!(rig.uart.push_input(b"more"), 0);
    assert_eq!(rig.read(DR), u32::from(b'a'));
    assert_eq!(rig.uart.rx_room(), 1);
}

#[test]
fn a_dr_write_raises_tx_and_icr_clears_it() {
    let rig = Rig::new();
    assert_eq!(rig.read(RIS), 0);
    rig.write(DR, u32::from(b'.'));
    assert_eq!(rig.read(RIS), INT_TX);
    assert_eq!(rig.levels(), Vec::<bool>::new(), "TX masked: line low");
    rig.write(IMSC, INT_TX);
    assert_eq!(rig.levels(), [true]);
    rig.write(ICR, INT_TX);
    assert_eq!(rig.read(RIS), 0);
    assert_eq!(rig.levels(), [true, false]);
    rig.write(DR, u32::from(b'.'));
    assert_eq!(rig.levels(), [true, false, true]);
}

#[test]
fn enabling_txim_with_the_tx_fifo_empty_raises_tx() {
    let rig = Rig::new();
    rig.write(IMSC, INT_TX);
    assert_eq!(rig.read(MIS), INT_TX);
    assert_eq!(rig.levels(), [true]);
    // Masking it again drops the line but leaves the raw status.
    rig.write(IMSC, 0);
    assert_eq!(rig.levels(), [true, false]);
    assert_eq!(rig.read(RIS), INT_TX);
}

#[test]
fn icr_does_not_clear_rx_while_bytes_wait() {
    let rig = Rig::new();
    rig.write(IMSC, INT_RX);
    rig.uart.push_input(b"q");
    rig.write(ICR, INT_ALL);
    assert_eq!(rig.read(MIS), INT_RX, "the byte is still there to be read");
    assert_eq!(rig.levels(), [true]);
}

#[test]
fn control_registers_keep_what_is_written_within_their_width() {
    let rig = Rig::new();
    assert_eq!(rig.read(CR), 0x300, "reset: TXE and RXE");
    assert_eq!(rig.read(IFLS), 0x12, "reset: half-full levels");
    for (reg, written, kept) in [
        (ILPR, 0x1ff, 0xff),
        (IBRD, 0x1_0027, 0x27),
        (FBRD, 0xff, 0x3f),
        (LCR_H, 0x170, 0x70),
        (CR, 0x1_0301, 0x301),
        (IFLS, 0xff, 0x3f),
        (IMSC, 0xffff, INT_ALL),
        (DMACR, 0xff, 0x7),
    ] {
        rig.write(reg, written);
        assert_eq!(rig.read(reg), kept, "register {reg:#x}");
    }
    // Read-only and write-only registers ignore writes and read 0 where they must.
    rig.write(ICR, 0);
    assert_eq!(rig.read(ICR), 0);
    rig.write(RSR_ECR, 0xff);
    assert_eq!(rig.read(RSR_ECR), 0);
    rig.write(0xfe0, 0xaa);
    assert_eq!(rig.read(0xfe0), 0x11);
}

#[test]
fn a_byte_access_inside_a_register_sees_its_bytes() {
    let rig = Rig::new();
    rig.write(IBRD, 0x1234);
    assert_eq!(rig.read_width(IBRD + 1, AccessWidth::Byte), 0x12);
    assert_eq!(rig.read_width(IBRD, AccessWidth::Byte), 0x34);
}

#[test]
fn a_read_of_the_data_register_drops_the_line_only_when_it_changes() {
    // The host hears of changes, not of every access.
    let rig = Rig::new();
    rig.enable_fifos();
    rig.write(IMSC, INT_RX);
    rig.uart.push_input(b"abc");
    rig.uart.push_input(b"d");
    for _ in 0..4 {
        rig.read(DR);
    }
    rig.read(DR);
    assert_eq!(rig.levels(), [true, false]);
}

#[test]
fn the_host_hears_when_the_guest_has_read_the_rx_fifo_empty() {
    let drained = Arc::new(Mutex::new(0));
    let count = drained.clone();
    let uart = Pl011::new(Box::new(|_: &[u8]| {}), Box::new(|_| {}))
        .with_rx_drained(Box::new(move || *count.lock() += 1));
    let read = |offset| uart.handle_read(DeviceOffset::first(offset), AccessWidth::Dword);
    uart.handle_write(
        DeviceOffset::first(LCR_H),
        AccessWidth::Dword,
        u64::from(LCR_H_FEN),
    )
    .unwrap();
    read(DR).unwrap();
    assert_eq!(*drained.lock(), 0, "reading an empty FIFO drains nothing");
    uart.push_input(b"ab");
    read(DR).unwrap();
    assert_eq!(*drained.lock(), 0, "one byte still waits");
    read(FR).unwrap();
    read(DR).unwrap();
    assert_eq!(*drained.lock(), 1);
}
