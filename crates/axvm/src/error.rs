//! The errors axvm reports. Each names the thing that failed (the config field, the guest
//! address, the vCPU, the device) so that the message alone tells the user where to look.

use alloc::boxed::Box;
use alloc::string::{String, ToString};

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
        /// The whole explanation: what axvm was doing, the host's error, the usual fix.
        message: String,
        /// The host's own error ([`AxVMHal::Error`](crate::AxVMHal::Error)), when the host
        /// reported one: see [`host_cause`](AxVMError::host_cause).
        cause: Option<HostCause>,
    },

    /// A vCPU backend operation failed.
    #[error("vCPU {vcpu}: {message}")]
    VCpu {
        /// The vCPU's id.
        vcpu: usize,
        /// What failed, with the backend's error.
        message: String,
        /// The backend's own error ([`AxArchVCpu::Error`](crate::AxArchVCpu::Error) or
        /// [`AxVMHal::Error`](crate::AxVMHal::Error)), when it reported one.
        cause: Option<HostCause>,
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

/// A host's or backend's own error, kept whole inside an [`AxVMError`] so that a caller who
/// knows the host can downcast it to the host's type and match on it (an errno, a kind).
///
/// Boxed because [`AxVMError`] is one type for every host; the box is made only when an
/// error happens, never on the exit path.
pub type HostCause = Box<dyn core::error::Error + Send + Sync + 'static>;

impl AxVMError {
    /// A vCPU error that the caller found itself (no backend error behind it), such as an
    /// exit the caller cannot handle.
    ///
    /// ```
    /// use axvm::AxVMError;
    /// let err = AxVMError::vcpu(1, "stopped on an exit the host cannot handle");
    /// assert_eq!(err.to_string(), "vCPU 1: stopped on an exit the host cannot handle");
    /// assert!(err.host_cause().is_none());
    /// ```
    pub fn vcpu(vcpu: usize, message: impl Into<String>) -> Self {
        Self::VCpu {
            vcpu,
            message: message.into(),
            cause: None,
        }
    }

    /// vCPU `vcpu`'s backend failed with `cause`; the message is the cause's.
    pub(crate) fn vcpu_failed(
        vcpu: usize,
        cause: impl core::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::VCpu {
            vcpu,
            message: cause.to_string(),
            cause: Some(Box::new(cause)),
        }
    }

    /// The host failed `operation` with `cause`; `message` already says what and why.
    pub(crate) fn host_failed(
        operation: &'static str,
        message: String,
        cause: impl core::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Host {
            operation,
            message,
            cause: Some(Box::new(cause)),
        }
    }

    /// The host refused `operation` for a reason axvm found itself (no host error).
    pub(crate) fn host_refused(operation: &'static str, message: String) -> Self {
        Self::Host {
            operation,
            message,
            cause: None,
        }
    }

    /// The host's or backend's own error behind a [`Host`](Self::Host) or
    /// [`VCpu`](Self::VCpu) error, for a caller that wants to match on it: downcast it to
    /// the host's error type (`axvm_kvm::KvmError` on KVM).
    ///
    /// The message already includes it, so it is not the [`source`](core::error::Error::source)
    /// as well: printing an error chain would say it twice.
    ///
    /// ```
    /// use axvm::AxVMError;
    /// #[derive(Debug, PartialEq)]
    /// struct NoSlots;
    /// impl core::fmt::Display for NoSlots {
    ///     fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
    ///         f.write_str("no memory slots left")
    ///     }
    /// }
    /// impl core::error::Error for NoSlots {}
    ///
    /// let err = AxVMError::VCpu { vcpu: 0, message: NoSlots.to_string(), cause: Some(Box::new(NoSlots)) };
    /// assert_eq!(err.host_cause().and_then(|c| c.downcast_ref::<NoSlots>()), Some(&NoSlots));
    /// ```
    pub fn host_cause(&self) -> Option<&(dyn core::error::Error + Send + Sync + 'static)> {
        match self {
            Self::Host { cause, .. } | Self::VCpu { cause, .. } => cause.as_deref(),
            _ => None,
        }
    }
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
