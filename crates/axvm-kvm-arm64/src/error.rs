//! [`Arm64Error`]: how the arm64 host fails, each kind naming what failed and the fix.

use axvm::{AxVMError, ConfigError};
use axvm_linux::GuestRamError;
use vmm_sys_util::errno::Error as Errno;

/// Why the arm64 KVM host could not create or run a VM.
///
/// ```
/// use axvm_kvm_arm64::Arm64Error;
/// let err = Arm64Error::Ioctl { operation: "KVM_ARM_VCPU_INIT", errno: vmm_sys_util::errno::Error::new(libc::EINVAL) };
/// assert!(err.to_string().starts_with("KVM_ARM_VCPU_INIT failed"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Arm64Error {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm: {errno} (is KVM enabled, and may this user read and write /dev/kvm?)")]
    Open {
        /// Why.
        errno: Errno,
    },
    /// A KVM ioctl failed.
    #[error("{operation} failed: {errno}")]
    Ioctl {
        /// What was asked of KVM.
        operation: &'static str,
        /// Why it refused.
        errno: Errno,
    },
    /// The host's KVM has no in-kernel interrupt controller axvm can use.
    #[error("this host's KVM offers neither an in-kernel GICv3 nor a GICv2 (KVM_CREATE_DEVICE refused both: {v3}; {v2}); the arch timer and the UART's interrupt need one")]
    NoVgic {
        /// Why the GICv3 was refused.
        v3: Errno,
        /// Why the GICv2 was refused.
        v2: Errno,
    },
    /// Guest RAM could not be mapped.
    #[error(transparent)]
    GuestRam(#[from] GuestRamError),
    /// The images do not fit the config (the message names the field and the fix).
    #[error("{0}")]
    Boot(String),
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The axvm core refused or failed.
    #[error(transparent)]
    Vm(#[from] AxVMError),
    /// A thread of the run could not be confined by the sandbox.
    #[error(transparent)]
    Sandbox(#[from] axvm_linux::sandbox::SandboxError),
    /// A sandboxed VM was created or run on a thread that an earlier sandboxed run confined.
    #[error("this thread already ran a sandboxed VM and is confined: create and run each sandboxed VM from a thread of its own (see Arm64VmOptions::sandbox)")]
    AlreadyConfined,
    /// A vCPU thread could not be started.
    #[error("cannot start the thread of vCPU {vcpu}: {cause}")]
    Thread {
        /// Which vCPU.
        vcpu: usize,
        /// Why.
        cause: std::io::Error,
    },
}

impl Arm64Error {
    /// A `map_err` adapter: `ioctl().map_err(Arm64Error::ioctl("KVM_CREATE_VM"))`.
    pub fn ioctl(operation: &'static str) -> impl FnOnce(Errno) -> Self {
        move |errno| Self::Ioctl { operation, errno }
    }
}
