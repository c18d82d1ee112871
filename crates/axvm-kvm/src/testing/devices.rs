//! The platform devices' register files under fuzzing: each device is built as
//! `devices::platform_devices` builds it (COM1 without an interrupt line, on a console whose
//! room the input decides), then a sequence of accesses from the input goes through its
//! [`BaseDeviceOps`] as the device manager would send them: a range the device claims, an
//! offset inside it, any width and value.
//!
//! A device may refuse an access with a [`DeviceError`](axvm::device::DeviceError) (the VM
//! then stops naming it); it must never panic. Besides, a VM stopped by the exit device
//! reports status 0 only when the guest wrote 0, and a reset says why it stopped the VM.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axvm::device::{BaseDeviceOps, DeviceOffset, WriteOutcome};
use axvm::{AccessWidth, AxVMConfig};

use super::entropy::{Entropy, FuzzBytes};
use crate::devices::PciHost;
use crate::devices::{
    AcpiPm, Cmos, ExitPort, FwCfg, Hpet, NoLines, ReceiveFifo, ResetControl, SerialConsole,
    StopNote, Transmitter, I8042,
};

/// The platform devices with a register file worth fuzzing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformDevice {
    /// The COM1 16550 UART (0x3f8-0x3ff), with host input into its receive FIFO.
    Com1,
    /// fw_cfg (0x510-0x511), with the items of a two-region, two-vCPU VM and one file.
    FwCfg,
    /// The CMOS RAM and RTC (0x70-0x71), on a clock the input sets.
    Cmos,
    /// The PCI configuration mechanism #1 (0xcf8, 0xcfc-0xcff).
    PciHost,
    /// The i8042 keyboard controller (0x60, 0x64).
    I8042,
    /// The ACPI PM1a event and control blocks and the PM timer.
    AcpiPm,
    /// The exit device (0xf4-0xf7).
    ExitPort,
    /// The reset control register (0xcf9).
    ResetControl,
    /// The HPET (0xfed00000-0xfed003ff), its timer thread not started: its interrupts come
    /// from accesses catching up, to lines that go nowhere.
    Hpet,
}

/// Every [`PlatformDevice`], for the seeded tests.
pub const ALL_DEVICES: [PlatformDevice; 9] = [
    PlatformDevice::Com1,
    PlatformDevice::FwCfg,
    PlatformDevice::Cmos,
    PlatformDevice::PciHost,
    PlatformDevice::I8042,
    PlatformDevice::AcpiPm,
    PlatformDevice::ExitPort,
    PlatformDevice::ResetControl,
    PlatformDevice::Hpet,
];

/// The CMOS clock's reading, in seconds since the epoch (set from the input).
static CLOCK: AtomicU64 = AtomicU64::new(0);

fn fuzz_clock() -> u64 {
    CLOCK.load(Ordering::Relaxed)
}

/// A console line whose room the input decides, counting what it took.
#[derive(Clone, Default)]
struct Line {
    full: Arc<AtomicBool>,
    taken: Arc<AtomicU64>,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.taken.fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Transmitter for Line {
    fn has_room(&self, _len: usize) -> bool {
        !self.full.load(Ordering::Relaxed)
    }
}

/// The VM fw_cfg and the CMOS describe: RAM at 0 and above 4 GiB, two vCPUs.
fn fuzz_config() -> AxVMConfig {
    let config = AxVMConfig::builder("fuzz")
        .cpus(2)
        .ram(0, 0x100_0000)
        .ram(0x1_0000_0000, 0x10_0000)
        .build();
    config.expect("the fuzz VM's config is valid")
}

/// Runs the access sequence `data` describes against a fresh `which`; panics only on a
/// broken invariant (see the module documentation).
///
/// ```
/// use axvm_kvm::testing::devices::{fuzz_device, ALL_DEVICES};
/// for device in ALL_DEVICES {
///     fuzz_device(device, b"any bytes at all, as accesses");
/// }
/// ```
pub fn fuzz_device(which: PlatformDevice, data: &[u8]) {
    drive(which, &mut FuzzBytes::new(data));
}

/// [`fuzz_device`] with the choices from `input` (a seeded generator in the tests).
pub fn drive(which: PlatformDevice, input: &mut impl Entropy) {
    let note = StopNote::default();
    let line = Line::default();
    let com1 = Arc::new(SerialConsole::new(line.clone()));
    let device: Arc<dyn BaseDeviceOps> = match which {
        PlatformDevice::Com1 => com1.clone(),
        PlatformDevice::FwCfg => Arc::new(
            FwCfg::for_vm(&fuzz_config())
                .with_file("etc/fuzz", (0..input.below(300)).map(|i| i as u8).collect()),
        ),
        PlatformDevice::Cmos => {
            CLOCK.store(input.next(), Ordering::Relaxed);
            Arc::new(Cmos::with_clock(&fuzz_config(), fuzz_clock))
        }
        PlatformDevice::PciHost => Arc::new(PciHost::default()),
        PlatformDevice::I8042 => Arc::new(I8042::noting(note.clone())),
        PlatformDevice::AcpiPm => Arc::new(AcpiPm::default()),
        PlatformDevice::ExitPort => Arc::new(ExitPort),
        PlatformDevice::ResetControl => Arc::new(ResetControl::noting(note.clone())),
        PlatformDevice::Hpet => Arc::new(Hpet::new(Box::new(NoLines))),
    };
    let ranges = device.address_ranges();
    assert!(!ranges.is_empty(), "{which:?} claims no range");
    for _ in 0..input.below(256) {
        let op = input.bytes(1);
        if which == PlatformDevice::Com1 && op & 0xc0 == 0xc0 {
            // The host's side of COM1: console input, or the console filling or draining.
            if op & 1 == 0 {
                let bytes = input.next().to_le_bytes();
                let taken = com1.receive(&bytes[..input.below(9) as usize]);
                assert!(taken <= 8, "COM1 took {taken} of at most 8 bytes");
            } else {
                line.full.fetch_xor(true, Ordering::Relaxed);
            }
            continue;
        }
        let index = input.below(ranges.len() as u64) as usize;
        let at = DeviceOffset::new(index, input.below(ranges[index].len.max(1)));
        let width = [
            AccessWidth::Byte,
            AccessWidth::Word,
            AccessWidth::Dword,
            AccessWidth::Qword,
        ][(op >> 1) as usize & 3];
        if op & 1 == 0 {
            let _ = device.handle_read(at, width);
        } else {
            let value = input.next();
            if let Ok(outcome) = device.handle_write(at, width, value) {
                check_outcome(which, width, value, outcome, &note);
            }
        }
    }
}

/// The invariants of a write's outcome.
fn check_outcome(
    which: PlatformDevice,
    width: AccessWidth,
    value: u64,
    outcome: WriteOutcome,
    note: &StopNote,
) {
    let WriteOutcome::StopVm { exit_status } = outcome else {
        return;
    };
    match which {
        PlatformDevice::ExitPort => assert!(
            exit_status != 0 || width.truncate(value) == 0,
            "a {width} write of {value:#x} to the exit device gave status 0"
        ),
        PlatformDevice::I8042 | PlatformDevice::ResetControl => assert!(
            note.get().is_some(),
            "{which:?} stopped the VM without saying why"
        ),
        _ => {}
    }
}
