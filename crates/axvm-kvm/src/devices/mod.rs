//! The PC platform devices axvm's KVM host provides to every VM, one per file: what kernels
//! built for QEMU's default PC expect to find.

mod acpi_pm;
mod console;
mod console_input;
mod debug_port;
pub(crate) mod host_clock;
mod hpet;
mod i8042;
mod reset_control;
mod serial;
mod virtio;

use std::sync::Arc;

use axvm::device::{AxVmDevices, BaseDeviceOps, UnclaimedAccessPolicy};
use axvm::AxVMConfig;

use crate::error::KvmError;
use crate::kvm::KvmHal;

pub use acpi_pm::AcpiPm;
// The devices every axvm host shares, re-exported where the KVM host's other devices are.
pub use axvm_pc::{Cmos, ExitPort, FwCfg, IdentMsrs, PciHost};
pub use console::{
    ConsoleThread, OutputObserver, SharedConsole, CONSOLE_BUFFER_BYTES, DRAIN_PATIENCE,
};
pub use console_input::{ConsoleInput, ReceiveFifo};
pub use debug_port::DebugPort;
pub use hpet::{Hpet, HpetLines, NoLines};
pub use i8042::I8042;
pub use reset_control::ResetControl;
pub use serial::{IrqLine, SerialConsole, Transmitter, COM1_IRQ};
pub use virtio::{
    check_virtio_devices, is_virtio, virtio_devices, BackendEvent, DeviceFault, Disk, GuestRam,
    QueueContext, VirtioBlock, VirtioDevice, VirtioInterrupt, VirtioMmio, VirtioThread,
    VIRTIO_F_VERSION_1,
};
pub use virtio::{
    FramePort, NetCounters, Switch, SwitchPort, Tap, VirtioNet, MAX_FRAME_LEN, NET_HDR_LEN,
    PORT_QUEUE_FRAMES,
};

/// Why a device stopped the VM, in words for the user, when the exit status does not say it
/// (a reset ends a VM with status 0, as a power-off or a successful test does). Shared by
/// the devices that can leave one and the VM; the first note stays.
///
/// ```
/// use axvm_kvm::StopNote;
///
/// let note = StopNote::default();
/// note.set("the guest reset the machine through port 0xcf9");
/// note.set("a later reason");
/// assert_eq!(note.get(), Some("the guest reset the machine through port 0xcf9"));
/// ```
#[derive(Clone, Default)]
pub struct StopNote(Arc<std::sync::OnceLock<&'static str>>);

impl StopNote {
    /// Leaves `why`, unless a note was left before; also logged at info level.
    pub fn set(&self, why: &'static str) {
        log::info!("{why}");
        let _ = self.0.set(why);
    }

    /// The note, if one was left.
    pub fn get(&self) -> Option<&'static str> {
        self.0.get().copied()
    }
}

/// The platform devices of the VM `config` describes: COM1 and the 0xe9 debug port printing
/// to `console` (a [`ConsoleThread`]'s), COM1's IRQ 4 through `hal`'s irqchip (when it has
/// one), the exit device, the i8042 and 0xcf9 reset lines, the PCI configuration ports,
/// fw_cfg, the CMOS RTC, the ACPI power-management registers and the identification MSRs;
/// and the HPET when the config passes its page through (see `kvm::emulated_hpet`). The PIT
/// needs no device here: KVM emulates it (see `KvmHal::new`).
///
/// Fails only when the host has an irqchip but refuses COM1's interrupt line or the HPET's.
pub fn platform_devices(
    config: &AxVMConfig,
    console: SharedConsole,
    hal: &KvmHal,
    policy: UnclaimedAccessPolicy,
) -> Result<PlatformDevices, KvmError> {
    let (com1, com1_input) = if hal.has_irqchip() {
        let line = IrqLine::new(hal.irq_line(COM1_IRQ)?);
        both_faces(SerialConsole::with_interrupt(console.clone(), line))
    } else {
        both_faces(SerialConsole::new(console.clone()))
    };
    let mut devices = AxVmDevices::new(policy);
    let stop_note = StopNote::default();
    let hpet = crate::kvm::emulated_hpet(config)
        .then(|| hal.hpet_lines().map(|lines| Arc::new(Hpet::new(lines))))
        .transpose()?;
    let hpet_device = hpet.clone().map(|hpet| hpet as Arc<dyn BaseDeviceOps>);
    for device in platform(config, console, com1, &stop_note)
        .into_iter()
        .chain(hpet_device)
    {
        // The platform's own ranges are disjoint by construction (see the tests).
        if let Err(err) = devices.add(device) {
            unreachable!("platform devices overlap: {err}");
        }
    }
    Ok(PlatformDevices {
        devices,
        com1_input,
        stop_note,
        hpet,
    })
}

/// The platform devices of a VM, and the way into COM1's receive FIFO for console input.
pub struct PlatformDevices {
    /// Every platform device, for [`AxVM::new`](axvm::AxVM::new).
    pub devices: AxVmDevices,
    /// COM1's receive side, for a [`ConsoleInput`] thread.
    pub com1_input: Arc<dyn ReceiveFifo>,
    /// Where the reset devices say that they stopped the VM.
    pub stop_note: StopNote,
    /// The emulated HPET, when the VM has one: its timer thread is started with the VM.
    pub hpet: Option<Arc<Hpet>>,
}

/// COM1 as a device and as the receiver of console input: one UART, two trait objects.
fn both_faces<T: vm_superio::Trigger + Send + 'static>(
    uart: SerialConsole<SharedConsole, T>,
) -> (Arc<dyn BaseDeviceOps>, Arc<dyn ReceiveFifo>) {
    let uart = Arc::new(uart);
    SerialConsole::watch_room(&uart);
    (uart.clone(), uart)
}

/// Every platform device, given COM1 (whose interrupt depends on the host).
fn platform(
    config: &AxVMConfig,
    console: SharedConsole,
    com1: Arc<dyn BaseDeviceOps>,
    stop_note: &StopNote,
) -> [Arc<dyn BaseDeviceOps>; 10] {
    [
        com1,
        Arc::new(DebugPort::new(console)),
        Arc::new(ExitPort),
        Arc::new(I8042::noting(stop_note.clone())),
        Arc::new(ResetControl::noting(stop_note.clone())),
        Arc::new(PciHost::default()),
        Arc::new(FwCfg::for_vm(config)),
        Arc::new(Cmos::with_clock(config, host_clock::host_unix_time)),
        Arc::new(AcpiPm::default()),
        Arc::new(IdentMsrs::default()),
    ]
}

#[cfg(test)]
pub(crate) mod tests {
    use axvm::device::DeviceSpace;
    use axvm::{GuestPhysAddr, MappingFlags, VmMemConfig, VmMemMappingType};

    use super::*;

    /// A config with `cpus` vCPUs and `(gpa, size, flags)` memory regions, for device tests.
    pub(crate) fn config(cpus: usize, regions: &[(u64, u64, u64)]) -> AxVMConfig {
        let mut config = AxVMConfig::new("devices", cpus);
        for &(gpa, size, flags) in regions {
            config.memory_regions.push(VmMemConfig {
                gpa: GuestPhysAddr::new(gpa),
                size,
                flags: MappingFlags::from_bits(flags).expect("valid flags"),
                map_type: VmMemMappingType::MapAlloc,
            });
        }
        config
    }

    #[test]
    fn platform_devices_do_not_overlap_and_own_their_ports() {
        let (thread, _) = console::tests::captured_console();
        let console = thread.console();
        let com1 = Arc::new(SerialConsole::new(console.clone()));
        let config = config(2, &[(0, 0x100_0000, 0x7)]);
        let mut devices = AxVmDevices::new(UnclaimedAccessPolicy::Error);
        for device in platform(&config, console, com1, &StopNote::default()) {
            let name = device.name().to_string();
            devices
                .add(device)
                .unwrap_or_else(|err| panic!("{name}: {err}"));
        }
        let owner = |port: u16| {
            devices
                .find(DeviceSpace::Port, port.into())
                .map(|device| device.name().to_string())
        };
        assert_eq!(owner(0xcf8).as_deref(), Some("PCI host bridge"));
        assert_eq!(owner(0xcf9).as_deref(), Some("reset control register"));
        assert_eq!(owner(0xcfa).as_deref(), Some("PCI host bridge"));
        assert_eq!(owner(0x511).as_deref(), Some("fw_cfg"));
        assert_eq!(owner(0x71).as_deref(), Some("CMOS RTC"));
        for port in [0x600, 0x603, 0x604, 0x605, 0x608, 0x60b] {
            assert_eq!(owner(port).as_deref(), Some("ACPI PM"), "port {port:#x}");
        }
        assert_eq!(owner(0x606), None);
        assert_eq!(owner(0xe9).as_deref(), Some("debug console (port 0xe9)"));
        // The PIT and the speaker port are KVM's, not ours.
        assert_eq!(owner(0x40), None);
        assert_eq!(owner(0x61), None);
    }

    /// The register-file fuzz harness the `device_*` cargo-fuzz targets run, with seeded
    /// choices: random access sequences never panic any platform device (see
    /// `crate::testing::devices` for the invariants it checks).
    #[test]
    fn seeded_register_fuzz() {
        use crate::testing::devices::{drive, ALL_DEVICES};
        use crate::testing::entropy::SeededRng;
        for device in ALL_DEVICES {
            for seed in crate::testing::entropy::seeds(300) {
                drive(device, &mut SeededRng::new(seed));
            }
        }
    }
}
