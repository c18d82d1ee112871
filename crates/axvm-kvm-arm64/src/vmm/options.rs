//! What a caller says about a VM beyond its config ([`Arm64VmOptions`]) and how its run
//! ended ([`VmOutcome`]).

use std::io::{Read, Write};
use std::sync::Arc;

use axvm::device::UnclaimedAccessPolicy;
use axvm::ExitObserver;

use crate::kvm::Arm64VCpu;

/// How to run a VM: where its console goes, what happens to accesses no device claims, who
/// watches its exits.
///
/// ```
/// use axvm_kvm_arm64::Arm64VmOptions;
/// let options = Arm64VmOptions { console: Box::new(Vec::new()), ..Default::default() };
/// assert!(options.observer.is_none());
/// ```
pub struct Arm64VmOptions {
    /// Receives every byte the guest sends through its PL011 (default: stdout).
    pub console: Box<dyn Write + Send>,
    /// What the guest receives through its PL011, queued as it reads (default: none).
    pub console_input: Option<Box<dyn Read + Send>>,
    /// Accesses to addresses no device claims: ignored (reads 0) or an error that stops the
    /// VM.
    pub unclaimed: UnclaimedAccessPolicy,
    /// Sees every exit, after the core handled it (statistics, traces).
    pub observer: Option<Arc<dyn ExitObserver<Arm64VCpu>>>,
    /// Confine every thread of the run by seccomp (`axvm_linux::sandbox`): the vCPU threads
    /// to `KVM_RUN`, their registers and the UART's interrupt line; the console-input thread
    /// to reading; the calling thread, once the vCPU threads run, to waiting and reporting
    /// (it can create no VM afterwards). Off by default; the `axvm` command turns it on.
    pub sandbox: bool,
}

impl Default for Arm64VmOptions {
    fn default() -> Self {
        Self {
            console: Box::new(std::io::stdout()),
            console_input: None,
            unclaimed: UnclaimedAccessPolicy::Ignore,
            observer: None,
            sandbox: false,
        }
    }
}

/// How a VM's run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmOutcome {
    /// The guest ended the VM with this status: through the exit device, or 0 by PSCI
    /// `SYSTEM_OFF`.
    Exited(u8),
    /// The guest asked for a reset (PSCI `SYSTEM_RESET`, from vCPU `vcpu`); axvm stops the VM
    /// rather than restarting it, and its status is 0.
    GuestReset {
        /// The vCPU that asked.
        vcpu: usize,
    },
    /// A [`StopHandle`](crate::StopHandle) stopped the VM.
    Stopped,
}
