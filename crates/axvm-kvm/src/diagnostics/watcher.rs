//! The one thread that watches a running VM from outside its vCPUs: it notices a VM whose
//! every vCPU is stuck halted ([`Halts`]) and, under `--watchdog`, a guest making no
//! progress ([`Watch`]).
//!
//! Each period it reads a few numbers: whether each vCPU blocks in the kernel and, with the
//! watchdog, how long the guest has been idle. It kicks vCPUs only when every one of them
//! blocks (to ask whether it is stuck) or when the watchdog takes its snapshots, so a VM
//! with a running vCPU pays nothing. It ends as soon as the VM stops (its channel is
//! dropped), so short runs are not delayed.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use axvm::{AxVM, VMStatus};

use super::halts::Halts;
use super::watchdog::check::Watch;
use crate::kvm::KvmHal;

/// How often the watcher looks.
const PERIOD: Duration = Duration::from_millis(100);

/// What the watcher watches.
pub(crate) struct Watcher<'a> {
    pub halts: &'a Halts,
    /// The watchdog, when it is on.
    pub watchdog: Option<Watch<'a>>,
}

impl Watcher<'_> {
    /// Watches `vm` until it stops, `stop` is signalled (or its sender dropped), or the
    /// watcher stops it.
    pub(crate) fn run(&self, vm: &AxVM<KvmHal>, stop: &Receiver<()>) {
        if let Some(watchdog) = &self.watchdog {
            watchdog.start();
        }
        let mut all_stuck_rounds = 0;
        let mut looks = 0u64;
        // Until the VM ends: a message or the sender dropped.
        while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(PERIOD) {
            if vm.status() != VMStatus::Running {
                break;
            }
            looks += 1;
            if self.halts.look(vm, &mut all_stuck_rounds) {
                break;
            }
            if self.watchdog.as_ref().is_some_and(|w| w.look(vm)) {
                break;
            }
        }
        log::debug!("watcher: {looks} looks, {} halt kicks", self.halts.kicks());
    }
}
