//! `axvm run A.toml B.toml ...`: several VMs in one process, at once.
//!
//! Every VM is created before any runs, so a bad config among them stops `axvm` before a
//! guest starts. Then each runs on threads of its own. Their consoles share stdout line by
//! line, each line prefixed with `[NAME] ` ([`PrefixedLines`]); stdin is not read (no VM
//! could tell which input is its own). Once all have ended, stderr gets one status line
//! per VM, and `axvm` exits with the status of the first VM to fail, or 0.
//!
//! VMs of one process may share a network: `switch:NAME` backends of the same name are one
//! in-process Ethernet switch.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;

use axvm_kvm::sandbox::{confine_current_thread, ThreadRole};
use axvm_kvm::{DiagnosticsOptions, KvmVm, VmOptions, VmOutcome};

use crate::output::{errln, CommandError};
use crate::prefixed::PrefixedLines;
use crate::run::{conclude, create_vm, report_after_run, RunFlags};
use crate::signals::{self, SignalStop};
use crate::vm_files;

/// How one VM ended.
struct Ending {
    /// Its place among the configs.
    index: usize,
    /// Its status for `axvm`.
    status: u8,
    /// How it ended, for its status line.
    how: String,
    /// Whether the run failed in the host (not the guest's doing).
    host_failure: bool,
}

/// Runs the VMs of `configs` at once (see the module doc); a signal stops them all, and
/// then axvm's status is that of the signal (see [`signals`]).
pub fn run_several(
    configs: &[PathBuf],
    flags: &RunFlags<'_>,
    signals: &SignalStop,
) -> Result<ExitCode, CommandError> {
    let RunFlags {
        unclaimed,
        stats,
        trace_exits,
        watchdog,
        sandbox,
    } = *flags;
    if trace_exits.is_some() {
        return Err(
            "--trace-exits writes one VM's exits: give it with a single config"
                .to_string()
                .into(),
        );
    }
    let vms = create_all(configs, |name| VmOptions {
        console: Box::new(PrefixedLines::new(name)),
        console_input: None,
        extra_devices: Vec::new(),
        unclaimed: unclaimed.policy(),
        diagnostics: DiagnosticsOptions {
            stats,
            trace_exits: None,
            watchdog,
        },
        sandbox,
        gdb: None,
    })?;
    for (_, vm) in &vms {
        signals.watch(vm.stop_handle());
    }
    // In the order the VMs ended.
    let endings = run_all(&vms, sandbox, signals);
    let mut by_config: Vec<&Ending> = endings.iter().collect();
    by_config.sort_by_key(|ending| ending.index);
    for (ending, (name, vm)) in by_config.iter().zip(&vms) {
        if stats {
            errln!("[{name}]")?;
        }
        report_after_run(vm, ending.host_failure)?;
    }
    let names: Vec<String> = vms.iter().map(|(name, _)| name.clone()).collect();
    // Dropping the VMs ends their consoles: any last line without a newline comes out
    // before the status lines.
    drop(vms);
    for (ending, name) in by_config.iter().zip(&names) {
        errln!("axvm: [{name}] status {}: {}", ending.status, ending.how)?;
    }
    if let Some(signal) = signals.received() {
        return Ok(signals::stopped_by(signal)?);
    }
    let first_failure = endings.iter().find(|ending| ending.status != 0);
    Ok(ExitCode::from(
        first_failure.map_or(0, |ending| ending.status),
    ))
}

/// Creates every VM, the first failure stopping them all. VM names must differ, since
/// they tell the consoles apart.
fn create_all(
    configs: &[PathBuf],
    options: impl Fn(&str) -> VmOptions,
) -> Result<Vec<(String, KvmVm)>, String> {
    let files = configs
        .iter()
        .map(|path| vm_files::load(path).map_err(|err| err.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    for (index, file) in files.iter().enumerate() {
        if let Some(earlier) = files[..index]
            .iter()
            .find(|other| other.config.name == file.config.name)
        {
            return Err(format!(
                "{} and {} both name their VM `{}` (base.name): give each VM a name of its own",
                earlier.origin, file.origin, file.config.name
            ));
        }
        if let Some(earlier) = files[..index]
            .iter()
            .find(|other| other.config.id == file.config.id)
        {
            log::warn!(
                "{} and {} both have VM id {} (base.id): their default MAC addresses are the same",
                earlier.origin,
                file.origin,
                file.config.id
            );
        }
    }
    let vms = files
        .into_iter()
        .map(|file| {
            let name = file.config.name.clone();
            create_vm(file, options(&name))
        })
        .collect::<Result<Vec<_>, _>>()?;
    // Said once every VM exists, so that a refusal stays the one line it is.
    for vm in &vms {
        vm.warn();
    }
    Ok(vms.into_iter().map(|new| (new.name, new.vm)).collect())
}

/// Runs every VM on threads of its own until all have ended; returns how each ended, in
/// the order they did. With `sandbox`, each VM's run confines its own threads, and this
/// thread confines itself once it started them all (a filter is inherited by the threads
/// started after it).
fn run_all(vms: &[(String, KvmVm)], sandbox: bool, signals: &SignalStop) -> Vec<Ending> {
    let (ended, endings) = mpsc::channel();
    std::thread::scope(|scope| {
        for (index, (name, vm)) in vms.iter().enumerate() {
            let sender = ended.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-run"))
                .spawn_scoped(scope, move || {
                    let result = vm.run();
                    let _ = sender.send(ending(index, vm, name, result, signals));
                });
            if let Err(err) = spawned {
                let _ = ended.send(Ending {
                    index,
                    status: 1,
                    how: format!("its thread cannot start: {err}"),
                    host_failure: true,
                });
            }
        }
        if sandbox {
            if let Err(err) = confine_current_thread(ThreadRole::Supervisor) {
                log::error!("{err}: stopping every VM");
                signals.stop_all();
            }
        }
    });
    drop(ended);
    endings.into_iter().collect()
}

/// How VM `name` (config `index`) ended, from its run's `result` (a stop being the work
/// of `signals` when one came).
fn ending(
    index: usize,
    vm: &KvmVm,
    name: &str,
    result: Result<VmOutcome, axvm_kvm::Error>,
    signals: &SignalStop,
) -> Ending {
    let host_failure = result.is_err();
    let stopped = matches!(result, Ok(VmOutcome::Stopped));
    let (status, how) = match conclude(vm, name, result) {
        Ok(_) if stopped => (
            0,
            signals
                .received()
                .map_or("stopped by the host".to_string(), |signal| {
                    format!("stopped by {}", signals::name(signal))
                }),
        ),
        Ok(status) => (status, format!("the guest exited with status {status}")),
        Err(message) => (1, message),
    };
    Ending {
        index,
        status,
        how,
        host_failure,
    }
}
