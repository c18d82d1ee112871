//! The virtio devices a config's `emu_devices` rows ask for, on their backends, interrupt
//! lines and ioeventfds.

use std::path::Path;
use std::sync::Arc;

use axvm::config::{DeviceBackend, NetBackend};
use axvm::{AxVMConfig, ConfigError, EmulatedDeviceConfig, EmulatedDeviceType};
use kvm_ioctls::IoEventAddress;

use super::block::{Disk, VirtioBlock};
use super::console::VirtioConsole;
use super::net::{FramePort, Switch, Tap, VirtioNet};
use super::{VirtioDevice, VirtioInterrupt, VirtioMmio};
use crate::devices::{ReceiveFifo, SharedConsole};
use crate::error::{Error, KvmError};
use crate::kvm::KvmHal;
use crate::platform::pc::layout::{IOAPIC_PINS, PLATFORM_GSIS};

/// Which rows are virtio devices is the platform's (`axvm_pc::config_devices`), so the
/// firmware tables every host writes and this host's devices agree.
pub use axvm_pc::config_devices::is_virtio;
use axvm_pc::config_devices::virtio_rows;

/// The field name of row `index`, as messages name it.
fn field(index: usize, row: &EmulatedDeviceConfig) -> String {
    format!("devices.emu_devices[{index}] ({})", row.name)
}

/// Refuses virtio devices this host cannot give the guest: a window above 4 GiB (the DSDT
/// describes 32-bit windows), an interrupt line that is not an IOAPIC GSI of its own, or a
/// disk that is not a regular file or block device. Run by `check` and `run` alike, before
/// anything is created; it opens nothing.
pub fn check_virtio_devices(config: &AxVMConfig) -> Result<(), ConfigError> {
    let rows: Vec<_> = virtio_rows(config).collect();
    for (position, &(index, row)) in rows.iter().enumerate() {
        let end = row.base_gpa.as_u64().saturating_add(row.length);
        let problem = if end > 1 << 32 {
            Some(format!(
                "{}+{:#x} reaches above 4 GiB: virtio-mmio devices must lie below it (0xd0000000 is usual)",
                row.base_gpa, row.length
            ))
        } else if row.irq_id >= u64::from(IOAPIC_PINS) {
            Some(format!(
                "irq_id {} is not an IOAPIC input: use 3, 5-7, 10, 11, 13-23",
                row.irq_id
            ))
        } else if let Some((_, owner)) = PLATFORM_GSIS
            .iter()
            .find(|(gsi, _)| u64::from(*gsi) == row.irq_id)
        {
            Some(format!(
                "irq_id {} is {owner}'s: use 3, 5-7, 10, 11, 13-23",
                row.irq_id
            ))
        } else {
            rows[..position]
                .iter()
                .find(|(_, other)| other.irq_id == row.irq_id)
                .map(|&(other_index, other)| {
                    format!(
                        "irq_id {} is also {}'s: each virtio device needs a line of its own",
                        row.irq_id,
                        field(other_index, other)
                    )
                })
        };
        if let Some(problem) = problem {
            return Err(ConfigError::invalid(field(index, row), problem));
        }
        if let Some(DeviceBackend::Disk { path, .. }) = &row.backend {
            Disk::check_path(Path::new(path))
                .map_err(|message| ConfigError::invalid(backend_field(row), message))?;
        }
    }
    Ok(())
}

/// Where a device's backend comes from, as messages name it.
fn backend_field(row: &EmulatedDeviceConfig) -> String {
    format!("devices.backends.{} (or kernel.disk_path)", row.name)
}

/// The virtio devices of a VM, and where its console input goes when it has a virtio
/// console.
pub struct VirtioDevices {
    /// Every virtio device, in row order.
    pub devices: Vec<Arc<VirtioMmio>>,
    /// The input side of the first virtio console, if there is one: the VM's console input
    /// feeds it instead of COM1 (further virtio consoles print but get no input).
    pub console_input: Option<Arc<dyn ReceiveFifo>>,
}

/// What the host gives virtio consoles: the VM's console for their output, and (filled
/// in by the first console) the way to their input.
struct ConsoleWiring<'a> {
    output: &'a SharedConsole,
    input: Option<Arc<dyn ReceiveFifo>>,
}

/// Creates the virtio devices of `config` on `hal`: each device on its backend, with an
/// irqfd on its GSI (when the host has an irqchip) and an ioeventfd per queue on its
/// QueueNotify register. Paths in backends are used as given (the caller resolved them).
/// Virtio consoles print to `console`.
pub fn virtio_devices(
    config: &AxVMConfig,
    hal: &KvmHal,
    console: &SharedConsole,
) -> Result<VirtioDevices, Error> {
    check_virtio_devices(config)?;
    let mut devices = Vec::new();
    let mut wiring = ConsoleWiring {
        output: console,
        input: None,
    };
    for (index, row) in virtio_rows(config) {
        let device = device_for(index, row, config, &mut wiring)?;
        let line = if hal.has_irqchip() {
            Some(hal.irq_line(row.irq_id as u32)?)
        } else {
            None
        };
        let mmio = VirtioMmio::new(
            &row.name,
            row.emu_type,
            row.base_gpa.as_u64(),
            row.length,
            device,
            VirtioInterrupt::new(line),
        )
        .map_err(|err| {
            ConfigError::invalid(
                field(index, row),
                format!("cannot create its queue notifiers: {err}"),
            )
        })?;
        register_notifiers(hal, &mmio)?;
        devices.push(Arc::new(mmio));
    }
    Ok(VirtioDevices {
        devices,
        console_input: wiring.input,
    })
}

/// Lets KVM complete the driver's writes to QueueNotify itself, signalling the queue's
/// eventfd, so a notification costs no exit to this process.
fn register_notifiers(hal: &KvmHal, mmio: &VirtioMmio) -> Result<(), Error> {
    let address = IoEventAddress::Mmio(mmio.queue_notify_address());
    for (queue, notifier) in mmio.queue_notifiers().iter().enumerate() {
        hal.vm_fd()
            .register_ioevent(notifier, &address, queue as u32)
            .map_err(KvmError::ioctl("KVM_IOEVENTFD"))?;
    }
    Ok(())
}

fn device_for(
    index: usize,
    row: &EmulatedDeviceConfig,
    config: &AxVMConfig,
    console: &mut ConsoleWiring<'_>,
) -> Result<Box<dyn VirtioDevice>, Error> {
    let backend_field = || backend_field(row);
    match (&row.emu_type, &row.backend) {
        (EmulatedDeviceType::VirtioBlk, Some(DeviceBackend::Disk { path, read_only })) => {
            let serial = format!("{}-{}", config.name, row.name);
            let disk = Disk::open(Path::new(path), *read_only, &serial)
                .map_err(|message| ConfigError::invalid(backend_field(), message))?;
            Ok(Box::new(VirtioBlock::new(disk)))
        }
        (EmulatedDeviceType::VirtioConsole, None) => {
            let device = VirtioConsole::new(console.output.clone()).map_err(|err| {
                ConfigError::invalid(
                    field(index, row),
                    format!("cannot create its input eventfd: {err}"),
                )
            })?;
            if console.input.is_none() {
                console.input = Some(device.inbox());
            }
            Ok(Box::new(device))
        }
        (EmulatedDeviceType::VirtioNet, Some(DeviceBackend::Net { network, mac })) => {
            let port = frame_port(network).map_err(|message| {
                ConfigError::invalid(format!("devices.backends.{}.net", row.name), message)
            })?;
            let mac = mac.unwrap_or_else(|| VirtioNet::default_mac(config.id, index));
            Ok(Box::new(VirtioNet::new(mac, port)))
        }
        _ => Err(ConfigError::invalid(
            field(index, row),
            format!(
                "emu_type {} with backend {:?} is not emulated by this host",
                row.emu_type, row.backend
            ),
        )
        .into()),
    }
}

/// Opens the host end of a network: a tap (which may fail: no CAP_NET_ADMIN, a busy
/// interface) or a port on the process's switch of that name.
fn frame_port(network: &NetBackend) -> Result<Box<dyn FramePort>, String> {
    match network {
        NetBackend::Tap(name) => Ok(Box::new(Tap::open(name)?)),
        NetBackend::Switch(name) => Switch::named(name)
            .connect()
            .map(|port| Box::new(port) as Box<dyn FramePort>)
            .map_err(|err| format!("cannot connect to switch {name}: {err}")),
    }
}
