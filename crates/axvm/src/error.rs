//! The errors axvm reports. Each names the thing that failed (the config field, the guest
//! address, the vCPU, the device) so that the message alone tells the user where to look.

use alloc::string::String;

use crate::config::ConfigError;
use crate::device::DeviceError;
use crate::{AccessWidth, GuestPhysAddr};

/// The result type of fallible axvm operations.
pub type AxVMResult<T = ()> = Result<T, AxVMError>;

/// Everything that can go wrong while creating or running a VM.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AxVMError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),

    /// A guest-memory access fell outside guest RAM.
    #[error(transparent)]
    GuestMemory(#[from] GuestMemoryError),

    /// The hosting environment (an [`AxVMHal`](crate::AxVMHal) method) failed.
    #[error("host could not {operation}: {message}")]
    Host {
        /// What axvm asked the host to do.
        operation: &'static str,
        /// The host's explanation.
        message: String,
    },

    /// A vCPU backend operation failed.
    #[error("vCPU {vcpu}: {message}")]
    VCpu {
        /// The vCPU's id.
        vcpu: usize,
        /// What failed.
        message: String,
    },

    /// A vCPU id that this VM does not have.
    #[error("vCPU {vcpu} does not exist: this VM has {count} vCPU(s)")]
    NoSuchVCpu {
        /// The id asked for.
        vcpu: usize,
        /// How many vCPUs the VM has.
        count: usize,
    },

    /// An emulated device failed to handle an access.
    #[error(transparent)]
    Device(#[from] DeviceError),

    /// The guest touched an address that no device claims, and the VM's policy is to stop.
    #[error("vCPU {vcpu}: {access} at {space} {addr:#x} ({width}), where no device is")]
    UnclaimedAccess {
        /// The vCPU that made the access.
        vcpu: usize,
        /// "read" or "write".
        access: &'static str,
        /// "port", "MMIO" or "MSR".
        space: &'static str,
        /// The port, guest-physical address or MSR index.
        addr: u64,
        /// The access width.
        width: AccessWidth,
    },

    /// An operation that the VM's current status does not allow.
    #[error("VM is {actual}, but this needs it {expected}")]
    BadStatus {
        /// The status the operation needs.
        expected: &'static str,
        /// The status the VM is in.
        actual: &'static str,
    },
}

/// A guest-memory access that does not lie inside one mapped RAM region.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuestMemoryError {
    /// No RAM region contains the start of the range.
    #[error("guest address {gpa} ({len} bytes) is not in guest RAM")]
    NotMapped {
        /// Start of the range.
        gpa: GuestPhysAddr,
        /// Length of the range.
        len: u64,
    },
    /// The range starts in a region but runs past its end.
    #[error(
        "guest range {gpa}+{len:#x} runs past the end of the RAM region that ends at {region_end}"
    )]
    CrossesRegionEnd {
        /// Start of the range.
        gpa: GuestPhysAddr,
        /// Length of the range.
        len: u64,
        /// First address after the region holding `gpa`.
        region_end: GuestPhysAddr,
    },
}
