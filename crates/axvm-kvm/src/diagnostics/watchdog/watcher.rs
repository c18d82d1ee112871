//! The watchdog thread: looks at [`Progress`] every [`PERIOD`]; when the guest has made no
//! progress for the timeout, gathers what the report needs and stops the VM.
//!
//! It is spawned next to the liveness watcher and ends as soon as the VM stops (its channel
//! is dropped), so short runs are not delayed.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use axvm::{AxVM, AxVMHal, GuestPhysAddr, VMStatus};

use super::report::{Findings, VcpuFindings};
use super::snapshot::Answer;
use super::Progress;
use crate::kvm::KvmHal;

/// How often the watchdog looks.
const PERIOD: Duration = Duration::from_millis(100);
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
    /// Watches `vm` until it stops, `stop` is signalled, or the watchdog stops it.
    pub(crate) fn run(&self, vm: &AxVM<KvmHal>, stop: &Receiver<()>) {
        self.progress.restart();
        loop {
            match stop.recv_timeout(PERIOD) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            if vm.status() != VMStatus::Running {
                return;
            }
            if self.progress.idle() < self.timeout {
                continue;
            }
            let findings = self.investigate(vm);
            // The guest may have moved on while we looked, or stopped by itself.
            if vm.status() != VMStatus::Running || self.progress.idle() < self.timeout {
                continue;
            }
            let report = findings.report(vm.config().name.as_str());
            // The report goes to whoever ran the VM; the log only notes the stop.
            log::info!(
                "watchdog: no progress for {:?}; stopping the VM",
                self.timeout
            );
            self.progress.fire(report);
            vm.shutdown();
            return;
        }
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
