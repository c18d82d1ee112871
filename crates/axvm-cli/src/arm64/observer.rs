//! The run's exit observer: `--stats` counts, `--trace-exits` lines and the watchdog's
//! notion of progress, fed by the core on each vCPU's thread.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use axvm::AxVCpuExitReason;
use axvm::{ExitEvent, ExitObserver};
use axvm_kvm_arm64::Arm64VCpu;
use axvm_linux::diagnostics::stats::ExitStats;
use axvm_linux::diagnostics::trace::ExitTrace;

/// What the run watches of its exits.
pub struct RunObserver {
    /// `--stats`.
    pub stats: Option<ExitStats>,
    /// `--trace-exits`.
    pub trace: Option<ExitTrace>,
    /// Bumped on every exit that shows progress: console output, or an exit of a kind at a
    /// place not seen before (the watchdog's measure, as on x86).
    pub progress: AtomicU64,
    seen: Mutex<HashSet<(&'static str, u64)>>,
    /// The console's MMIO range when the watchdog measures progress; `None` without it.
    console: Option<(u64, u64)>,
}

impl RunObserver {
    /// An observer with the given outputs; `console`, the UART's MMIO range, when the
    /// watchdog needs progress counted.
    pub fn new(
        stats: Option<ExitStats>,
        trace: Option<ExitTrace>,
        console: Option<(u64, u64)>,
    ) -> Self {
        Self {
            stats,
            trace,
            progress: AtomicU64::new(0),
            seen: Mutex::default(),
            console,
        }
    }

    /// Whether anything asked for the exits: statistics, a trace or the watchdog.
    pub fn is_needed(&self) -> bool {
        self.stats.is_some() || self.trace.is_some() || self.console.is_some()
    }

    fn note_progress(&self, exit: &AxVCpuExitReason) {
        let Some((console, console_len)) = self.console else {
            return;
        };
        let place = match *exit {
            AxVCpuExitReason::MmioWrite { addr, .. } => {
                let addr = addr.as_u64();
                if addr >= console && addr - console < console_len {
                    self.progress.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                addr
            }
            AxVCpuExitReason::MmioRead { addr, .. } => addr.as_u64(),
            _ => 0,
        };
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if seen.insert((exit.kind(), place)) {
            self.progress.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl ExitObserver<Arm64VCpu> for RunObserver {
    fn on_exit(&self, event: &ExitEvent, vcpu: &mut Arm64VCpu) {
        if let Some(stats) = &self.stats {
            stats.record(event);
        }
        if let Some(trace) = &self.trace {
            trace.record(event, vcpu);
        }
        self.note_progress(&event.exit);
    }
}
