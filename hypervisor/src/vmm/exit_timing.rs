//! Exit counts and timing per vCPU, printed when the VM ends: the type-1 host's exit round
//! trip, for `scripts/svm-bench.sh` to compare with KVM's on the same guest.
//!
//! An [`ExitObserver`]: each exit costs two relaxed atomic updates. The span runs from the
//! vCPU's first exit to its last, so it leaves out VM creation and everything before the
//! guest's first access; divided by the exits in between, it is the round trip of an exit
//! (guest, `#VMEXIT`, the core's device dispatch, `VMRUN`) as the guest's loop sees it.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use axvm::{ExitEvent, ExitObserver};

use crate::hv_println;

/// One vCPU's count and first and last exit times.
#[derive(Default)]
struct VCpuExits {
    count: AtomicU64,
    first_nanos: AtomicU64,
    last_nanos: AtomicU64,
}

/// Counts and times each vCPU's exits.
pub struct ExitTiming {
    vcpus: Vec<VCpuExits>,
}

impl ExitTiming {
    /// Timing for a VM of `vcpu_count` vCPUs.
    pub fn new(vcpu_count: usize) -> Self {
        Self {
            vcpus: (0..vcpu_count).map(|_| VCpuExits::default()).collect(),
        }
    }

    /// Prints `vCPU <i>: <N> exits in <T> us, <X> us per exit` for each vCPU that exited.
    pub fn report(&self) {
        for (id, vcpu) in self.vcpus.iter().enumerate() {
            let count = vcpu.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let span = vcpu
                .last_nanos
                .load(Ordering::Relaxed)
                .saturating_sub(vcpu.first_nanos.load(Ordering::Relaxed));
            let per_exit = if count > 1 { span / (count - 1) } else { 0 };
            hv_println!(
                "vCPU {id}: {count} exits in {}.{} us, {}.{} us per exit",
                span / 1000,
                span % 1000 / 100,
                per_exit / 1000,
                per_exit % 1000 / 100
            );
        }
    }
}

impl<V> ExitObserver<V> for ExitTiming {
    fn on_exit(&self, event: &ExitEvent, _vcpu: &mut V) {
        let Some(vcpu) = self.vcpus.get(event.vcpu) else {
            return;
        };
        if vcpu.count.fetch_add(1, Ordering::Relaxed) == 0 {
            vcpu.first_nanos.store(event.time_nanos, Ordering::Relaxed);
        }
        vcpu.last_nanos.store(event.time_nanos, Ordering::Relaxed);
    }
}
