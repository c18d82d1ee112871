//! Noticing a VM that will never run again: every vCPU halted with interrupts off, or
//! waiting for an INIT-SIPI that no running vCPU is left to send.
//!
//! With KVM's in-kernel local APIC a halted vCPU sleeps inside `KVM_RUN` and axvm sees
//! nothing. So a watcher kicks every vCPU once per period; a kicked vCPU reports whether it
//! is stuck ([`AxVCpuExitReason::Halt`](axvm::AxVCpuExitReason::Halt) from the backend) and
//! goes back to sleep. When every vCPU reports stuck in two consecutive rounds (one round
//! could catch a vCPU just before another one wakes it), the VM is stopped and reported.
//! A VM that stops within one period is never kicked, so short runs pay nothing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use axvm::{AxVM, AxVMHal, VMStatus};

use crate::kvm::KvmHal;

/// How often the watcher looks.
const PERIOD: Duration = Duration::from_millis(100);
/// How many consecutive all-stuck rounds stop the VM.
const ROUNDS_TO_STOP: u32 = 2;

/// What the vCPU threads and the watcher share.
pub(crate) struct Liveness {
    round: AtomicU64,
    /// Per vCPU, the last round in which it reported itself stuck (0: not stuck).
    stuck_in_round: Vec<AtomicU64>,
    all_halted: AtomicBool,
}

impl Liveness {
    pub(crate) fn new(vcpu_num: usize) -> Self {
        Self {
            round: AtomicU64::new(0),
            stuck_in_round: (0..vcpu_num).map(|_| AtomicU64::new(0)).collect(),
            all_halted: AtomicBool::new(false),
        }
    }

    /// Called by vCPU `vcpu_id`'s thread after a kick: whether it is stuck.
    pub(crate) fn report(&self, vcpu_id: usize, stuck: bool) {
        let round = if stuck {
            self.round.load(Ordering::SeqCst)
        } else {
            0
        };
        if let Some(slot) = self.stuck_in_round.get(vcpu_id) {
            slot.store(round, Ordering::SeqCst);
        }
    }

    /// Whether the watcher stopped the VM because every vCPU was stuck.
    pub(crate) fn all_halted(&self) -> bool {
        self.all_halted.load(Ordering::SeqCst)
    }

    /// Watches `vm` until it stops or `stop` is signalled (the sender dropped).
    pub(crate) fn watch(&self, vm: &AxVM<KvmHal>, stop: &Receiver<()>) {
        let mut all_stuck_rounds = 0;
        loop {
            match stop.recv_timeout(PERIOD) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            if vm.status() != VMStatus::Running {
                return;
            }
            let round = self.round.load(Ordering::SeqCst);
            let all_stuck = round > 0
                && self
                    .stuck_in_round
                    .iter()
                    .all(|slot| slot.load(Ordering::SeqCst) == round);
            all_stuck_rounds = if all_stuck { all_stuck_rounds + 1 } else { 0 };
            if all_stuck_rounds >= ROUNDS_TO_STOP {
                log::warn!("every vCPU is halted with interrupts disabled or waits for a start-up IPI: nothing can wake them; stopping the VM");
                self.all_halted.store(true, Ordering::SeqCst);
                vm.shutdown();
                return;
            }
            self.round.fetch_add(1, Ordering::SeqCst);
            for vcpu_id in 0..vm.vcpu_num() {
                vm.hal().kick_vcpu(vcpu_id);
            }
        }
    }
}
