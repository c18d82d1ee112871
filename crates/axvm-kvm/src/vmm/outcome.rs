//! [`VmOutcome`]: how a VM run ended.

/// How a VM run ended: what [`KvmVm::run`](crate::KvmVm::run) returns when the VM stopped
/// without a host failure (those are its [`Error`](crate::Error)).
///
/// ```no_run
/// # use axvm::AxVMConfig;
/// # use axvm_kvm::{BootImages, KvmVm, VmOptions};
/// use axvm_kvm::VmOutcome;
///
/// # let config = AxVMConfig::builder("vm").ram(0, 1 << 20).kernel_at(0x8000).build()?;
/// # let images = BootImages { kernel: vec![0xf4], ..Default::default() };
/// let vm = KvmVm::create(config, &images, VmOptions::default())?;
/// // The status a command could exit with.
/// let status = match vm.run()? {
///     VmOutcome::Exited(status) => i32::from(status),
///     // A triple fault, every vCPU halted, the watchdog: a report says why.
///     VmOutcome::GuestReset { .. } | VmOutcome::AllHalted | VmOutcome::NoProgress => {
///         eprintln!("{}", vm.stop_report().unwrap_or_default());
///         1
///     }
///     VmOutcome::Stopped => 1,
/// };
/// # let _ = status;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmOutcome {
    /// The guest asked to stop with this status (exit device; 0 for a power-off or a reset,
    /// which [`KvmVm::stop_note`](crate::KvmVm::stop_note) tells apart).
    Exited(u8),
    /// The guest reset or powered off the machine without a status: on x86 usually a triple
    /// fault, an exception the guest could not handle. [`KvmVm::stop_report`](crate::KvmVm::stop_report) says where.
    GuestReset {
        /// The vCPU that did it.
        vcpu: usize,
    },
    /// Every vCPU halted with interrupts disabled (or waits for a start-up IPI), so nothing
    /// can wake the VM: it was stopped. [`KvmVm::stop_report`](crate::KvmVm::stop_report) says why.
    AllHalted,
    /// The host stopped the VM ([`StopHandle::stop`](crate::StopHandle::stop) or [`AxVM::shutdown`](axvm::AxVM::shutdown)).
    Stopped,
    /// The watchdog ([`DiagnosticsOptions::watchdog`](crate::DiagnosticsOptions::watchdog)) saw no progress for its timeout and
    /// stopped the VM; [`KvmVm::watchdog_report`](crate::KvmVm::watchdog_report) says why.
    NoProgress,
}
