//! The watchdog (`axvm run --watchdog SECS`): stops a VM whose guest makes no progress and
//! says why, in the words of the troubleshooting guide's failure classes.
//!
//! Progress is what a person would call progress: console output, or an exit of a new kind
//! or at a new place (port, MMIO address, MSR). Exits alone are not: a guest polling an
//! absent device makes exits forever and gets nowhere. [`Progress`] is fed by the exit
//! observer and the console; the diagnostics watcher checks it (`check.rs`), and on a timeout
//! takes snapshots of the vCPUs, writes the report (`report.rs`) and stops the VM.

pub(crate) mod causes;
pub(crate) mod check;
pub(crate) mod guest_tables;
mod history;
pub(crate) mod report;
pub(crate) mod snapshot;
pub(crate) mod stop;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axvm::{AxVCpuExitReason, ExitEvent};

use crate::kvm::KvmVCpu;
use history::{ExitKey, ExitRecord, History};
use snapshot::SnapshotBoard;

/// What the watchdog knows of the guest's progress, shared by the vCPU threads (which
/// record), the console (which counts bytes) and the watcher (which reads).
pub struct Progress {
    start: Instant,
    /// Nanoseconds from `start` to the last progress.
    last_progress: AtomicU64,
    console_bytes: AtomicU64,
    /// Per vCPU, guest exits since the last progress (zero for a vCPU spinning without).
    exits_since_progress: Vec<AtomicU64>,
    history: Mutex<History>,
    pub(crate) board: SnapshotBoard,
    /// Set once the watchdog stopped the VM, with its report.
    report: Mutex<Option<String>>,
    fired: AtomicBool,
}

impl Progress {
    pub(crate) fn new(vcpu_num: usize) -> Self {
        Self {
            start: Instant::now(),
            last_progress: AtomicU64::new(0),
            console_bytes: AtomicU64::new(0),
            exits_since_progress: (0..vcpu_num).map(|_| AtomicU64::new(0)).collect(),
            history: Mutex::new(History::default()),
            board: SnapshotBoard::new(vcpu_num),
            report: Mutex::new(None),
            fired: AtomicBool::new(false),
        }
    }

    /// Called on every exit. Kicks (`Interrupted`) are the host's doing, not the guest's,
    /// and are left out.
    pub(crate) fn record(&self, event: &ExitEvent, vcpu: &mut KvmVCpu) {
        if matches!(
            event.exit,
            AxVCpuExitReason::Interrupted | AxVCpuExitReason::Nothing
        ) {
            return;
        }
        let record = ExitRecord {
            vcpu: event.vcpu,
            key: ExitKey::of(&event.exit),
            disposition: event.disposition,
            // From the exit ring (KVM copied RIP out with the exit), else one ioctl.
            rip: vcpu
                .last_exit_rip()
                .or_else(|| vcpu.fd().get_regs().ok().map(|regs| regs.rip)),
            read_value: event.read_value,
            at: self.start.elapsed(),
        };
        let new = self.history().record(record);
        if new {
            self.progressed();
        }
        if let Some(exits) = self.exits_since_progress.get(event.vcpu) {
            exits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The guest printed `bytes` bytes: called by the console as the guest sends them (not
    /// when the console thread writes them, which a stalled stdout may delay).
    pub(crate) fn console_output(&self, bytes: usize) {
        self.console_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        self.history().progressed();
        self.progressed();
    }

    /// Counts from now: called when the VM starts running.
    pub(crate) fn restart(&self) {
        self.progressed();
    }

    fn progressed(&self) {
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.last_progress.store(now, Ordering::SeqCst);
        for exits in &self.exits_since_progress {
            exits.store(0, Ordering::Relaxed);
        }
    }

    /// How long the guest has gone without progress.
    pub(crate) fn idle(&self) -> Duration {
        let last = Duration::from_nanos(self.last_progress.load(Ordering::SeqCst));
        self.start.elapsed().saturating_sub(last)
    }

    pub(crate) fn exits_since_progress(&self) -> Vec<u64> {
        self.exits_since_progress
            .iter()
            .map(|exits| exits.load(Ordering::Relaxed))
            .collect()
    }

    /// The last exits (oldest first) and the exits repeating since the last progress.
    pub(crate) fn exit_history(&self) -> (Vec<ExitRecord>, Vec<history::Repeat>) {
        let history = self.history();
        (history.recent(), history.repeats())
    }

    pub(crate) fn console_bytes(&self) -> u64 {
        self.console_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn since_start(&self) -> Duration {
        self.start.elapsed()
    }

    fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps the report and marks the VM as stopped by the watchdog.
    pub(crate) fn fire(&self, report: String) {
        *self.report.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
        self.fired.store(true, Ordering::SeqCst);
    }

    /// Whether the watchdog stopped the VM.
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// The report of the watchdog's stop, if it stopped the VM.
    pub fn report(&self) -> Option<String> {
        self.report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}
