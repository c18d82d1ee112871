//! The watchdog's part of the watcher (`diagnostics/watcher.rs`): once per period it looks
//! at [`Progress`]; when the guest has made no progress for the timeout, it gathers what
//! the report needs and stops the VM.

use std::time::Duration;

use axvm::{AxVM, AxVMHal, GuestPhysAddr, VMStatus};

use super::report::{Findings, VcpuFindings};
use super::snapshot::Answer;
use super::Progress;
use crate::kvm::KvmHal;

/// How long a vCPU has to answer a snapshot request before it is reported unresponsive.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);
/// Between the two snapshots: long enough for a spinning vCPU to run millions of
/// instructions, so an unchanged RIP means a tight loop.
const SAMPLE_GAP: Duration = Duration::from_millis(50);

/// What the watcher needs besides the VM.
pub(crate) struct Watch<'a> {
    pub progress: &'a Progress,
    pub timeout: Duration,
    /// Where vCPU 0 started, and the kernel's load address when the image is raw.
    pub entry: GuestPhysAddr,
    pub raw_load: Option<GuestPhysAddr>,
}

impl Watch<'_> {
    /// Counts the guest's idle time from now: called when the VM starts running.
    pub(crate) fn start(&self) {
        self.progress.restart();
    }

    /// One look at the guest's progress; stops `vm` and returns true when it made none for
    /// the timeout.
    pub(crate) fn look(&self, vm: &AxVM<KvmHal>) -> bool {
        if self.progress.idle() < self.timeout {
            return false;
        }
        let findings = self.investigate(vm);
        // The guest may have moved on while we looked, or stopped by itself.
        if vm.status() != VMStatus::Running || self.progress.idle() < self.timeout {
            return false;
        }
        let report = findings.report(vm.config().name.as_str());
        // The report goes to whoever ran the VM; the log only notes the stop.
        log::info!(
            "watchdog: no progress for {:?}; stopping the VM",
            self.timeout
        );
        self.progress.fire(report);
        vm.shutdown();
        true
    }

    /// Everything the report says: exits, two snapshots of every vCPU, the entry's bytes.
    fn investigate(&self, vm: &AxVM<KvmHal>) -> Findings {
        let idle = self.progress.idle();
        let exits = self.progress.exits_since_progress();
        let (recent, repeats) = self.progress.exit_history();
        let first = self.snapshots(vm);
        std::thread::sleep(SAMPLE_GAP);
        let second = self.snapshots(vm);
        let vcpus = first
            .into_iter()
            .zip(second)
            .zip(exits)
            .enumerate()
            .map(|(id, ((first, second), exits))| VcpuFindings {
                id,
                first,
                second,
                exits,
            })
            .collect();
        Findings {
            timeout: self.timeout,
            idle,
            since_start: self.progress.since_start(),
            entry: self.entry.as_u64(),
            entry_zeros: holds_zeros(vm, self.entry),
            raw_load: self.raw_load.map(|gpa| gpa.as_u64()),
            console_bytes: self.progress.console_bytes(),
            vcpus,
            recent,
            repeats,
        }
    }

    /// Asks every vCPU for a snapshot and kicks it so that it answers soon.
    fn snapshots(&self, vm: &AxVM<KvmHal>) -> Vec<Option<Answer>> {
        let request = self.progress.board.request();
        for vcpu_id in 0..vm.vcpu_num() {
            vm.hal().kick_vcpu(vcpu_id);
        }
        self.progress.board.collect(vm, request, ANSWER_TIMEOUT)
    }
}

/// Whether the 16 bytes at `gpa` are zeros (false when `gpa` is not RAM).
fn holds_zeros(vm: &AxVM<KvmHal>, gpa: GuestPhysAddr) -> bool {
    let mut bytes = [0u8; 16];
    vm.memory().read(gpa, &mut bytes).is_ok() && bytes.iter().all(|&b| b == 0)
}
