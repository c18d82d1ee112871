//! Emulated devices: the one trait every device implements, and the device manager that
//! routes guest accesses to them.

mod dummy;
mod manager;

pub use dummy::ScratchRegisters;
pub use manager::{AxVmDevices, UnclaimedAccess, UnclaimedAccessPolicy};

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::{AccessWidth, EmulatedDeviceType};

/// The address space an access goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceSpace {
    /// x86 I/O ports (`IN`/`OUT`).
    Port,
    /// Guest-physical memory that is not RAM.
    Mmio,
    /// System registers (x86 MSRs).
    SysReg,
}

impl fmt::Display for DeviceSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Port => "port",
            Self::Mmio => "MMIO",
            Self::SysReg => "MSR",
        })
    }
}

/// Addresses `base..base + len` of one space, claimed by a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRange {
    /// Which space.
    pub space: DeviceSpace,
    /// First port, address or register index.
    pub base: u64,
    /// How many.
    pub len: u64,
}

impl DeviceRange {
    /// A range of I/O ports.
    pub const fn port(base: u16, len: u16) -> Self {
        Self {
            space: DeviceSpace::Port,
            base: base as u64,
            len: len as u64,
        }
    }

    /// A range of guest-physical MMIO addresses.
    pub const fn mmio(base: u64, len: u64) -> Self {
        Self {
            space: DeviceSpace::Mmio,
            base,
            len,
        }
    }

    /// A range of system registers.
    pub const fn sysreg(base: u32, len: u32) -> Self {
        Self {
            space: DeviceSpace::SysReg,
            base: base as u64,
            len: len as u64,
        }
    }

    /// Whether `addr` of `space` falls inside.
    pub fn contains(&self, space: DeviceSpace, addr: u64) -> bool {
        self.space == space && addr >= self.base && addr - self.base < self.len
    }

    /// One past the last address (saturating).
    pub fn end(&self) -> u64 {
        self.base.saturating_add(self.len)
    }
}

/// What a handled write asks of the VM besides the write itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Nothing: the guest goes on.
    Done,
    /// The guest asked the machine to stop (power off, reset, exit device): the VM stops
    /// and reports `exit_status`.
    StopVm {
        /// The VM's exit status.
        exit_status: u8,
    },
}

/// A device failed to handle an access. The VM stops; the message names the device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("device `{device}`: {message}")]
pub struct DeviceError {
    /// The device's name.
    pub device: String,
    /// What went wrong.
    pub message: String,
}

/// An emulated device: the seed's `BaseDeviceOps`.
///
/// Devices are shared by all vCPUs of a VM and called concurrently, so they take `&self`
/// and keep their state behind their own locks. `addr` is the absolute port, guest-physical
/// address or MSR index; it lies inside one of [`address_ranges`](Self::address_ranges).
///
/// ```
/// use axvm::device::{BaseDeviceOps, DeviceError, DeviceRange, WriteOutcome};
/// use axvm::{AccessWidth, EmulatedDeviceType};
///
/// /// Reads as a fixed identification byte.
/// struct Ident;
/// impl BaseDeviceOps for Ident {
///     fn name(&self) -> &str { "ident" }
///     fn emu_type(&self) -> EmulatedDeviceType { EmulatedDeviceType::Dummy }
///     fn address_ranges(&self) -> Vec<DeviceRange> { vec![DeviceRange::port(0x510, 1)] }
///     fn handle_read(&self, _addr: u64, _width: AccessWidth) -> Result<u64, DeviceError> {
///         Ok(0x42)
///     }
///     fn handle_write(&self, _addr: u64, _width: AccessWidth, _value: u64)
///         -> Result<WriteOutcome, DeviceError> {
///         Ok(WriteOutcome::Done)
///     }
/// }
/// assert_eq!(Ident.handle_read(0x510, AccessWidth::Byte).unwrap(), 0x42);
/// ```
pub trait BaseDeviceOps: Send + Sync {
    /// A name for messages.
    fn name(&self) -> &str;

    /// What kind of device it is.
    fn emu_type(&self) -> EmulatedDeviceType;

    /// The addresses it claims (called once, when the device is added).
    fn address_ranges(&self) -> Vec<DeviceRange>;

    /// Handles a read; the result's low `width` bytes are used.
    fn handle_read(&self, addr: u64, width: AccessWidth) -> Result<u64, DeviceError>;

    /// Handles a write of the low `width` bytes of `value`.
    fn handle_write(
        &self,
        addr: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError>;
}
