//! [`StopHandle`]: ends a running [`KvmVm::run`](crate::KvmVm::run) from another thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use axvm::AxVM;

use crate::kvm::KvmHal;

/// Stops a VM from any thread: [`stop`](Self::stop) kicks every vCPU out of the guest and
/// the VM's [`run`](crate::KvmVm::run) returns [`VmOutcome::Stopped`](crate::VmOutcome::Stopped)
/// (unless the guest had already ended it some other way).
///
/// A handle does not keep the VM alive: stopping a VM that is gone does nothing.
///
/// ```no_run
/// use std::time::Duration;
/// use axvm::AxVMConfig;
/// use axvm_kvm::{BootImages, KvmVm, VmOptions, VmOutcome};
///
/// let config = AxVMConfig::builder("spin").ram(0, 1 << 20).kernel_at(0x8000).build().unwrap();
/// let images = BootImages { kernel: vec![0xeb, 0xfe], ..Default::default() }; // jmp $
/// let vm = KvmVm::create(config, &images, VmOptions::default()).unwrap();
/// let stop = vm.stop_handle();
/// std::thread::spawn(move || {
///     std::thread::sleep(Duration::from_millis(100));
///     stop.stop();
/// });
/// assert_eq!(vm.run().unwrap(), VmOutcome::Stopped);
/// ```
#[derive(Clone)]
pub struct StopHandle {
    vm: Weak<AxVM<KvmHal>>,
    requested: Arc<AtomicBool>,
}

impl StopHandle {
    /// A handle on `vm` that records its requests in `requested`.
    pub(crate) fn new(vm: &Arc<AxVM<KvmHal>>, requested: Arc<AtomicBool>) -> Self {
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
