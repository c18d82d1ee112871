//! `axvm run` on arm64.

use std::fs::File;
use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use axvm::ExitObserver;
use axvm_kvm_arm64::{Arm64VCpu, Arm64Vm, Arm64VmOptions, VmOutcome};
use axvm_linux::diagnostics::stats::ExitStats;
use axvm_linux::diagnostics::trace::ExitTrace;
use axvm_virt::layout::{PL011_BASE, PL011_SIZE};

use super::observer::RunObserver;
use super::watchdog::Watchdog;
use crate::cli::RunFlags;
use crate::output::{self, errln, CommandError};
use crate::signals::{self, SignalStop};
use crate::vm_files::VmFiles;

/// Boots the VM of `files` and maps how it ended to the command's exit status.
pub fn run(files: VmFiles, flags: &RunFlags<'_>) -> Result<ExitCode, CommandError> {
    let signals = SignalStop::install(flags.sandbox)?;
    let trace = match flags.trace_exits {
        Some(path) => Some(ExitTrace::new(Box::new(
            File::create(path)
                .map_err(|err| format!("cannot create the exit trace {}: {err}", path.display()))?,
        ) as Box<dyn Write + Send>)),
        None => None,
    };
    let name = files.config.name.clone();
    let stats = flags.stats.then(|| ExitStats::new(files.config.cpu_num));
    let progress = flags.watchdog.map(|_| (PL011_BASE, PL011_SIZE));
    let observer = Arc::new(RunObserver::new(stats, trace, progress));
    // Nothing watches the exits unless a flag asks: the exit path stays the core's alone.
    let observed = observer.is_needed();
    let options = Arm64VmOptions {
        console: Box::new(std::io::stdout()),
        console_input: crate::stdin::stdin_as_console_input(),
        unclaimed: flags.unclaimed.policy(),
        observer: observed.then(|| Arc::clone(&observer) as Arc<dyn ExitObserver<Arm64VCpu>>),
        sandbox: flags.sandbox,
    };
    let origin = files.origin.clone();
    let vm = Arm64Vm::create(files.config, &files.images, options)
        .map_err(|err| format!("cannot create VM `{name}` ({origin}): {err}"))?;
    log::info!("VM `{name}`: {:?}, GIC{:?}", vm.layout(), vm.gic_version());
    signals.watch(vm.stop_handle());
    let watchdog = flags
        .watchdog
        .map(|limit| Watchdog::start(vm.vm().clone(), observer.clone(), limit, flags.sandbox))
        .transpose()?;
    let result = vm.run();
    let watchdog_report = watchdog.and_then(Watchdog::finish);
    output::report_after_run(
        observer.trace.as_ref(),
        observer.stats.as_ref(),
        vm.vm().devices(),
        result.is_err(),
    )?;
    if let Some(report) = watchdog_report {
        return Err(report.into());
    }
    if let (Ok(VmOutcome::Stopped), Some(signal)) = (&result, signals.received()) {
        return Ok(signals::stopped_by(signal)?);
    }
    match result.map_err(|err| format!("VM `{name}` failed: {err}"))? {
        VmOutcome::Exited(status) => Ok(ExitCode::from(status)),
        VmOutcome::GuestReset { vcpu } => {
            errln!("axvm: VM `{name}`: vCPU {vcpu} asked for a reset (PSCI SYSTEM_RESET); axvm does not restart it: status 0")?;
            Ok(ExitCode::SUCCESS)
        }
        VmOutcome::Stopped => Ok(ExitCode::SUCCESS),
    }
}
