//! Errors of the KVM host.

use axvm::{AxVMError, ConfigError};

/// Why a VM could not be created, loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// KVM refused to set the VM up (see `axvm check`).
    #[error("cannot set up KVM: {0}")]
    Kvm(String),
    /// The core refused the config or failed.
    #[error(transparent)]
    Vm(#[from] AxVMError),
    /// An image cannot be loaded as the config asks.
    #[error(transparent)]
    Image(#[from] ConfigError),
    /// The thread writing the guest's console could not be started.
    #[error("cannot start the console thread: {0}")]
    Console(String),
    /// A vCPU thread could not be started.
    #[error("cannot start a thread for vCPU {vcpu}: {message}")]
    Thread {
        /// The vCPU.
        vcpu: usize,
        /// Why.
        message: String,
    },
}
