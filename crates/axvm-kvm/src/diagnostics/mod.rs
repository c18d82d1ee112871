//! Diagnostics that a run can turn on: exit statistics (`--stats`), an exit trace
//! (`--trace-exits`) and a watchdog that stops a VM making no progress (`--watchdog`); and,
//! always on, noticing a VM whose every vCPU is stuck halted (`halts.rs`).
//!
//! The options watch the exit loop through one [`axvm::ExitObserver`]; when none is on, no
//! observer is installed, and the exit path only records each exit in its vCPU's ring of
//! last exits (a few stores, for the report of a VM that halts for good or triple-faults:
//! `watchdog/stop.rs`). What must be watched from
//! outside the vCPUs (stuck halts, the watchdog's timeout) is watched by one thread,
//! `watcher.rs`, which leaves running vCPUs alone.

pub(crate) mod halts;
pub use axvm_linux::diagnostics::{stats, trace};
pub mod watchdog;
pub(crate) mod watcher;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use axvm::{ExitEvent, ExitObserver};

use crate::kvm::KvmVCpu;

/// Which diagnostics a run wants (all off by default), in
/// [`VmOptions::diagnostics`](crate::VmOptions::diagnostics).
///
/// ```
/// use std::time::Duration;
/// use axvm_kvm::{DiagnosticsOptions, VmOptions};
///
/// let diagnostics = DiagnosticsOptions {
///     stats: true,
///     trace_exits: Some(Box::new(std::io::sink())), // e.g. a File, one JSON line per exit
///     watchdog: Some(Duration::from_secs(10)),
/// };
/// assert!(diagnostics.any());
/// let options = VmOptions { diagnostics, ..Default::default() };
/// # let _ = options;
/// ```
///
/// What they collected is read from [`KvmVm::diagnostics`](crate::KvmVm::diagnostics) after
/// the run:
///
/// ```no_run
/// # use axvm::AxVMConfig;
/// # use axvm_kvm::{BootImages, DiagnosticsOptions, KvmVm, VmOptions, VmOutcome};
/// # let config = AxVMConfig::builder("vm").ram(0, 1 << 20).kernel_at(0x8000).build()?;
/// # let images = BootImages { kernel: vec![0xf4], ..Default::default() };
/// let diagnostics = DiagnosticsOptions { stats: true, ..Default::default() };
/// let vm = KvmVm::create(config, &images, VmOptions { diagnostics, ..Default::default() })?;
/// vm.run()?;
/// if let Some(stats) = vm.diagnostics().and_then(|d| d.stats()) {
///     eprintln!("{} exits\n{}", stats.total_exits(), stats.report(vm.vm().devices()));
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct DiagnosticsOptions {
    /// Count exits per kind and per port / MMIO range / MSR, with handling time.
    pub stats: bool,
    /// Write every exit as a JSON line here.
    pub trace_exits: Option<Box<dyn Write + Send>>,
    /// Stop the VM when the guest makes no progress for this long, and explain why.
    pub watchdog: Option<Duration>,
}

impl DiagnosticsOptions {
    /// Whether any diagnostic is on.
    pub fn any(&self) -> bool {
        self.stats || self.trace_exits.is_some() || self.watchdog.is_some()
    }
}

/// The diagnostics of one VM: the exit observer and what it collects.
pub struct Diagnostics {
    pub(crate) stats: Option<stats::ExitStats>,
    pub(crate) trace: Option<trace::ExitTrace>,
    pub(crate) watchdog: Option<Arc<watchdog::Progress>>,
    pub(crate) watchdog_timeout: Option<Duration>,
}

impl Diagnostics {
    /// The diagnostics `options` ask for.
    pub(crate) fn new(options: DiagnosticsOptions, vcpu_num: usize) -> Self {
        Self {
            stats: options.stats.then(|| stats::ExitStats::new(vcpu_num)),
            trace: options.trace_exits.map(trace::ExitTrace::new),
            watchdog: options
                .watchdog
                .map(|_| Arc::new(watchdog::Progress::new(vcpu_num))),
            watchdog_timeout: options.watchdog,
        }
    }

    /// How long the watchdog lets the guest go without progress, when it is on.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog_timeout
    }

    /// The statistics collected so far, when `--stats` is on.
    pub fn stats(&self) -> Option<&stats::ExitStats> {
        self.stats.as_ref()
    }

    /// The exit trace, when `--trace-exits` is on: [`flush`](trace::ExitTrace::flush) it
    /// when the VM has stopped (it is also flushed when the VM is dropped).
    pub fn trace(&self) -> Option<&trace::ExitTrace> {
        self.trace.as_ref()
    }
}

impl ExitObserver<KvmVCpu> for Diagnostics {
    fn on_exit(&self, event: &ExitEvent, vcpu: &mut KvmVCpu) {
        if let Some(stats) = &self.stats {
            stats.record(event);
        }
        if let Some(trace) = &self.trace {
            trace.record(event, vcpu);
        }
        if let Some(progress) = &self.watchdog {
            progress.record(event, vcpu);
        }
    }
}
