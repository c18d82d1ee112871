//! Emulated devices: the one trait every device implements, and the device manager that
//! routes guest accesses to them.

mod dummy;
mod manager;
mod unclaimed;

pub use dummy::ScratchRegisters;
pub use manager::{AxVmDevices, UnclaimedAccessPolicy};
pub(crate) use unclaimed::AccessKind;
pub use unclaimed::UnclaimedRun;

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

/// Where inside a device an access lands: which of the device's ranges (its index in
/// [`BaseDeviceOps::address_ranges`]) and how far past that range's base.
///
/// The device manager computes it once per access, from the range lookup it does anyway, so
/// devices never rebase absolute ports or addresses themselves, and a device placed at a
/// different base (a config's `base_gpa`) needs no change.
///
/// ```
/// use axvm::device::DeviceOffset;
/// // The byte at 0x64 of a device claiming ports 0x60 (range 0) and 0x64 (range 1):
/// let at = DeviceOffset::new(1, 0);
/// assert_eq!((at.range, at.offset), (1, 0));
/// assert_eq!(DeviceOffset::first(8), DeviceOffset::new(0, 8));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceOffset {
    /// Index of the matched range in the device's [`address_ranges`](BaseDeviceOps::address_ranges).
    pub range: usize,
    /// Distance from that range's base (ports, bytes or register indices).
    pub offset: u64,
}

impl DeviceOffset {
    /// `offset` into the device's range number `range`.
    pub const fn new(range: usize, offset: u64) -> Self {
        Self { range, offset }
    }

    /// `offset` into the device's first range: all a single-range device needs.
    pub const fn first(offset: u64) -> Self {
        Self::new(0, offset)
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
/// and keep their state behind their own locks. An access arrives as a [`DeviceOffset`]:
/// the index of the range it falls in (in the order [`address_ranges`](Self::address_ranges)
/// returned them) and its offset from that range's base, so a device never needs to know
/// where it was placed.
///
/// ```
/// use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
/// use axvm::{AccessWidth, EmulatedDeviceType};
///
/// /// Reads as a fixed identification byte.
/// struct Ident;
/// impl BaseDeviceOps for Ident {
///     fn name(&self) -> &str { "ident" }
///     fn emu_type(&self) -> EmulatedDeviceType { EmulatedDeviceType::Dummy }
///     fn address_ranges(&self) -> Vec<DeviceRange> { vec![DeviceRange::port(0x510, 1)] }
///     fn handle_read(&self, _at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
///         Ok(0x42)
///     }
///     fn handle_write(&self, _at: DeviceOffset, _width: AccessWidth, _value: u64)
///         -> Result<WriteOutcome, DeviceError> {
///         Ok(WriteOutcome::Done)
///     }
/// }
/// assert_eq!(Ident.handle_read(DeviceOffset::first(0), AccessWidth::Byte).unwrap(), 0x42);
/// ```
pub trait BaseDeviceOps: Send + Sync {
    /// A name for messages.
    fn name(&self) -> &str;

    /// What kind of device it is.
    fn emu_type(&self) -> EmulatedDeviceType;

    /// The addresses it claims (called once, when the device is added).
    fn address_ranges(&self) -> Vec<DeviceRange>;

    /// Handles a read at `at`; the result's low `width` bytes are used. The access starts
    /// inside the range; its later bytes may run past the range's end.
    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError>;

    /// Handles a write of the low `width` bytes of `value` at `at`.
    fn handle_write(
        &self,
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError>;
}
