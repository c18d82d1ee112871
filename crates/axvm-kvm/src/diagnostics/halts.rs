//! Noticing a VM that will never run again: every vCPU halted with interrupts off, or
//! waiting for an INIT-SIPI that no running vCPU is left to send.
//!
//! With KVM's in-kernel local APIC a halted vCPU sleeps inside `KVM_RUN` and axvm sees no
//! exit. So the watcher first asks the kernel, without disturbing anyone, whether each vCPU
//! is blocked ([`BlockingProbe`]). As long as one vCPU runs, nothing more happens: running
//! vCPUs are never kicked. Only when every vCPU blocks (or, where KVM has no such statistic,
//! every period as before) does the watcher kick them: a kicked vCPU reports whether it is
//! stuck ([`AxVCpuExitReason::Halt`](axvm::AxVCpuExitReason::Halt) from the backend, which
//! also reports a `HLT` exit that way when there is no in-kernel irqchip) and goes back to
//! sleep. When every vCPU reports stuck in two consecutive rounds (one round could catch a
//! vCPU just before another one wakes it), the VM is stopped and reported.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axvm::{AxVM, AxVMHal};

use crate::kvm::{BlockingProbe, KvmHal};

/// How many consecutive all-stuck rounds stop the VM.
const ROUNDS_TO_STOP: u32 = 2;

/// What the vCPU threads and the watcher share.
pub(crate) struct Halts {
    /// The kick round, from 1.
    round: AtomicU64,
    /// Per vCPU, the round in which it last reported itself stuck (0: not stuck).
    stuck_in_round: Vec<AtomicU64>,
    /// Per vCPU, whether it blocks in the kernel; `None` where KVM cannot say.
    probes: Vec<Option<BlockingProbe>>,
    all_halted: AtomicBool,
    /// How many kicks the watcher sent, for the debug log.
    kicks: AtomicU64,
}

impl Halts {
    /// Opens a probe per vCPU of `vm`; call before the vCPUs run (a running vCPU is locked).
    pub(crate) fn new(vm: &AxVM<KvmHal>) -> Self {
        let vcpu_num = vm.vcpu_num();
        let probes: Vec<_> = (0..vcpu_num)
            .map(|vcpu_id| {
                let probe = vm.try_inspect_vcpu(vcpu_id, |vcpu| BlockingProbe::open(vcpu.fd()));
                match probe {
                    Ok(Some(Ok(probe))) => Some(probe),
                    Ok(Some(Err(why))) => {
                        log::debug!("vCPU {vcpu_id}: {why}; the halt watcher kicks it instead");
                        None
                    }
                    Ok(None) | Err(_) => None,
                }
            })
            .collect();
        Self {
            round: AtomicU64::new(1),
            stuck_in_round: (0..vcpu_num).map(|_| AtomicU64::new(0)).collect(),
            probes,
            all_halted: AtomicBool::new(false),
            kicks: AtomicU64::new(0),
        }
    }

    /// Called by vCPU `vcpu_id`'s thread when `run_vcpu` returned without a guest exit to
    /// handle: whether it is stuck.
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

    /// How many kicks the watcher sent so far.
    pub(crate) fn kicks(&self) -> u64 {
        self.kicks.load(Ordering::Relaxed)
    }

    /// One look, once per watcher period; `consecutive` counts the all-stuck rounds in a
    /// row. Stops `vm` and returns true when every vCPU stayed stuck long enough.
    pub(crate) fn look(&self, vm: &AxVM<KvmHal>, consecutive: &mut u32) -> bool {
        let round = self.round.load(Ordering::SeqCst);
        if !(0..self.stuck_in_round.len()).all(|vcpu_id| self.may_be_stuck(vcpu_id)) {
            *consecutive = 0;
            return false;
        }
        let all_stuck = self
            .stuck_in_round
            .iter()
            .all(|slot| slot.load(Ordering::SeqCst) == round);
        *consecutive = if all_stuck { *consecutive + 1 } else { 0 };
        if *consecutive >= ROUNDS_TO_STOP {
            log::warn!("every vCPU is halted with interrupts disabled or waits for a start-up IPI: nothing can wake them; stopping the VM");
            self.all_halted.store(true, Ordering::SeqCst);
            vm.shutdown();
            return true;
        }
        self.round.fetch_add(1, Ordering::SeqCst);
        for vcpu_id in 0..vm.vcpu_num() {
            vm.hal().kick_vcpu(vcpu_id);
        }
        self.kicks
            .fetch_add(vm.vcpu_num() as u64, Ordering::Relaxed);
        false
    }

    /// Whether vCPU `vcpu_id` could be stuck, so that kicking it costs the guest nothing:
    /// it blocks in the kernel, its last report said stuck, or KVM cannot tell.
    fn may_be_stuck(&self, vcpu_id: usize) -> bool {
        let reported = self
            .stuck_in_round
            .get(vcpu_id)
            .is_some_and(|slot| slot.load(Ordering::SeqCst) != 0);
        let blocking = match self.probes.get(vcpu_id) {
            Some(Some(probe)) => probe.is_blocking().unwrap_or(true),
            _ => true,
        };
        reported || blocking
    }
}
