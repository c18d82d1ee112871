//! [`StopHandle`]: ends a running VM (`axvm_kvm::KvmVm::run`, `axvm_kvm_arm64::Arm64Vm::run`)
//! from another thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use axvm::{AxVM, AxVMHal};

/// Stops a VM from any thread: [`stop`](Self::stop) kicks every vCPU out of the guest and
/// the VM's `run` returns its `VmOutcome::Stopped`
/// (unless the guest had already ended it some other way).
///
/// A handle does not keep the VM alive: stopping a VM that is gone does nothing.
///
/// Each host names it for its HAL and shows it at work: `axvm_kvm::StopHandle`,
/// `axvm_kvm_arm64::StopHandle`.
pub struct StopHandle<H: AxVMHal> {
    vm: Weak<AxVM<H>>,
    requested: Arc<AtomicBool>,
}

impl<H: AxVMHal> Clone for StopHandle<H> {
    fn clone(&self) -> Self {
        Self {
            vm: Weak::clone(&self.vm),
            requested: Arc::clone(&self.requested),
        }
    }
}

impl<H: AxVMHal> StopHandle<H> {
    /// A handle on `vm` that records its requests in `requested` (the host's flag, which its
    /// run loop reads to tell a requested stop from the guest's own).
    pub fn new(vm: &Arc<AxVM<H>>, requested: Arc<AtomicBool>) -> Self {
        Self {
            vm: Arc::downgrade(vm),
            requested,
        }
    }

    /// Asks the VM to stop. Returns at once; the VM's `run()` returns soon after (every vCPU
    /// is kicked, whether it spins in guest code or waits for an interrupt). Stopping a VM
    /// that has not started running yet makes its `run()` return at once.
    pub fn stop(&self) {
        self.requested.store(true, Ordering::SeqCst);
        if let Some(vm) = self.vm.upgrade() {
            vm.shutdown();
        }
    }

    /// Whether [`stop`](Self::stop) was called on this handle or a clone of it.
    pub fn stop_requested(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
}
