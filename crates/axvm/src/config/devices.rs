//! Device entries of a VM config: emulated devices, pass-through devices, interrupt mode.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use super::DeviceBackend;
use crate::{GuestPhysAddr, HostPhysAddr};

/// What kind of device an `emu_devices` entry asks for (its `emu_type`), with the ArceOS
/// hypervisor's numbering so existing configs keep their meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EmulatedDeviceType {
    /// 0x0: a bank of scratch registers that returns what was written (axvm's meaning).
    Dummy,
    /// 0x1: a virtual interrupt controller.
    InterruptController,
    /// 0x2: a console.
    Console,
    /// 0xA: an inter-VM communication channel.
    IVCChannel,
    /// 0x20: ARM GIC partial pass-through redistributor.
    GPPTRedistributor,
    /// 0x21: ARM GIC partial pass-through distributor.
    GPPTDistributor,
    /// 0x22: ARM GIC partial pass-through ITS.
    GPPTITS,
    /// 0xE1: virtio block.
    VirtioBlk,
    /// 0xE2: virtio net.
    VirtioNet,
    /// 0xE3: virtio console.
    VirtioConsole,
    /// A value no known device type has.
    Unknown(u64),
}

impl EmulatedDeviceType {
    /// The type for a config value.
    pub const fn from_raw(value: u64) -> Self {
        match value {
            0x0 => Self::Dummy,
            0x1 => Self::InterruptController,
            0x2 => Self::Console,
            0xA => Self::IVCChannel,
            0x20 => Self::GPPTRedistributor,
            0x21 => Self::GPPTDistributor,
            0x22 => Self::GPPTITS,
            0xE1 => Self::VirtioBlk,
            0xE2 => Self::VirtioNet,
            0xE3 => Self::VirtioConsole,
            other => Self::Unknown(other),
        }
    }
}

impl fmt::Display for EmulatedDeviceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dummy => f.write_str("dummy (scratch registers)"),
            Self::InterruptController => f.write_str("interrupt controller"),
            Self::Console => f.write_str("console"),
            Self::IVCChannel => f.write_str("IVC channel"),
            Self::GPPTRedistributor => f.write_str("GIC partial pass-through redistributor"),
            Self::GPPTDistributor => f.write_str("GIC partial pass-through distributor"),
            Self::GPPTITS => f.write_str("GIC partial pass-through ITS"),
            Self::VirtioBlk => f.write_str("virtio block"),
            Self::VirtioNet => f.write_str("virtio net"),
            Self::VirtioConsole => f.write_str("virtio console"),
            Self::Unknown(value) => write!(f, "unknown type {value:#x}"),
        }
    }
}

/// One `emu_devices` entry: a device that axvm emulates at a guest-physical range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmulatedDeviceConfig {
    /// A name for messages.
    pub name: String,
    /// Where the device's registers start.
    pub base_gpa: GuestPhysAddr,
    /// How many bytes of registers it has.
    pub length: u64,
    /// The interrupt line it raises, if it raises one.
    pub irq_id: u64,
    /// What the device is.
    pub emu_type: EmulatedDeviceType,
    /// Device-specific settings.
    pub cfg_list: Vec<u64>,
    /// What the device is connected to on the host (a disk, a network), for devices that
    /// need one: axvm's `[devices.backends]` entry of this name.
    pub backend: Option<DeviceBackend>,
}

/// One `passthrough_devices` entry: host physical memory (usually device registers) shown
/// to the guest at a guest-physical address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassThroughDeviceConfig {
    /// A name for messages.
    pub name: String,
    /// Where the guest sees it.
    pub base_gpa: GuestPhysAddr,
    /// Where it is in host physical memory.
    pub base_hpa: HostPhysAddr,
    /// Its size in bytes.
    pub length: u64,
    /// The host interrupt line routed to the guest.
    pub irq_id: u64,
}

/// How the VM's interrupts are delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum VMInterruptMode {
    /// The guest runs without interrupts (`"no_irq"`, also `"no"`, `"none"`).
    #[default]
    NoIrq,
    /// Interrupt controllers are emulated (`"emu"`, also `"emulated"`).
    Emulated,
    /// The host's interrupt controller is passed through (`"passthrough"`, also `"pt"`).
    Passthrough,
}

impl VMInterruptMode {
    /// The mode for a config string, accepting the ArceOS hypervisor's aliases.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "no_irq" | "no" | "none" => Some(Self::NoIrq),
            "emu" | "emulated" => Some(Self::Emulated),
            "passthrough" | "pt" => Some(Self::Passthrough),
            _ => None,
        }
    }
}
