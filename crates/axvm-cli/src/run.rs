//! `axvm run`.

use std::fs::File;
use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;

use axvm::AxVMConfig;
use axvm_kvm::{BootImages, DiagnosticsOptions, GdbOptions, KvmVm, VmOptions, VmOutcome, VmPlan};

pub use crate::cli::RunFlags;
use crate::output::{self, errln, CommandError};
use crate::signals::{self, SignalStop};
use crate::vm_files::{config_error, VmFiles};
use crate::warnings::config_warnings;

/// Boots the VM with `flags` and, when given, a GDB stub (stopped by `signals`; its threads
/// and this one confined by seccomp when `flags.sandbox`) and maps how it ended to the
/// command's exit status.
pub fn run(
    files: VmFiles,
    flags: &RunFlags<'_>,
    gdb: Option<Gdb>,
    signals: &SignalStop,
) -> Result<ExitCode, CommandError> {
    let gdb = gdb.map(Gdb::listen).transpose()?;
    let trace_exits = match flags.trace_exits {
        Some(path) => Some(Box::new(
            File::create(path)
                .map_err(|err| format!("cannot create the exit trace {}: {err}", path.display()))?,
        ) as Box<dyn Write + Send>),
        None => None,
    };
    let options = VmOptions {
        console: Box::new(std::io::stdout()),
        console_input: crate::stdin::stdin_as_console_input(),
        extra_devices: Vec::new(),
        unclaimed: flags.unclaimed.policy(),
        diagnostics: DiagnosticsOptions {
            stats: flags.stats,
            trace_exits,
            watchdog: flags.watchdog,
        },
        sandbox: flags.sandbox,
        gdb,
    };
    let new = create_vm(files, options)?;
    new.warn();
    let NewVm { name, vm, .. } = new;
    signals.watch(vm.stop_handle());
    let result = vm.run();
    report_after_run(&vm, result.is_err())?;
    if let (Ok(VmOutcome::Stopped), Some(signal)) = (&result, signals.received()) {
        return Ok(signals::stopped_by(signal)?);
    }
    Ok(ExitCode::from(conclude(&vm, &name, result)?))
}

/// `--gdb` and `--gdb-wait`.
pub struct Gdb {
    /// HOST:PORT to listen on.
    pub address: String,
    /// No vCPU runs before GDB says so.
    pub wait: bool,
}

impl Gdb {
    /// Listens on the address (before the VM exists, so that a bad one is refused first) and
    /// says on stderr where GDB connects.
    fn listen(self) -> Result<GdbOptions, String> {
        let listener = TcpListener::bind(&self.address)
            .map_err(|err| format!("--gdb {}: cannot listen there: {err}", self.address))?;
        let local = listener
            .local_addr()
            .map_err(|err| format!("--gdb {}: {err}", self.address))?;
        let waiting = match self.wait {
            true => "; the vCPUs wait for it to continue",
            false => "",
        };
        // A note only: a stderr that cannot take it does not stop the run.
        let _ = errln!("axvm: GDB can connect to {local} (target remote {local}){waiting}");
        Ok(GdbOptions {
            listener,
            wait: self.wait,
        })
    }
}

/// A VM created for `axvm run`, and what its config deserves a warning for.
pub struct NewVm {
    /// The VM's name (base.name).
    pub name: String,
    /// The VM, loaded, before its first instruction.
    pub vm: KvmVm,
    /// Where the config came from, which the warnings name.
    pub origin: String,
    /// The config's warnings, as `axvm check` lists them.
    pub warnings: Vec<String>,
}

impl NewVm {
    /// Logs the config's warnings on stderr (at warning level: shown without `-v`), each
    /// naming the VM and its config, so that with several VMs each says whose it is.
    /// Called once the VM exists, so that a refusal stays the one line it is, and before
    /// it runs, so that they come before the guest's output.
    pub fn warn(&self) {
        for warning in &self.warnings {
            log::warn!("VM `{}` ({}): {warning}", self.name, self.origin);
        }
    }
}

/// Validates the config of `files` and creates its VM with `options`, or gives a one-line
/// reason naming the config. The warnings are not said yet: see [`NewVm::warn`].
pub fn create_vm(files: VmFiles, options: VmOptions) -> Result<NewVm, String> {
    create_vm_from(&files.origin, files.config, &files.images, options)
}

/// [`create_vm`] of a config from `origin` with its `images`: everything `axvm run` does
/// before the first guest instruction, which `axvm check` does too (and then drops the VM).
pub fn create_vm_from(
    origin: &str,
    config: AxVMConfig,
    images: &BootImages,
    options: VmOptions,
) -> Result<NewVm, String> {
    // The one validation of the config on the run path: the plan and the VM take it as
    // validated.
    let config = config
        .into_valid()
        .map_err(|err| config_error(origin, err).to_string())?;
    let name = config.name.clone();
    let cannot_create =
        |err: &dyn std::fmt::Display| format!("cannot create VM `{name}` ({origin}): {err}");
    let plan = VmPlan::for_valid_config(&config, images).map_err(|err| cannot_create(&err))?;
    let warnings = config_warnings(&config, &plan);
    let vm = KvmVm::from_plan(config, images, &plan, options).map_err(|err| cannot_create(&err))?;
    Ok(NewVm {
        name,
        vm,
        origin: origin.to_string(),
        warnings,
    })
}

/// The exit status a run of VM `name` that ended with `result` gives `axvm`, or the
/// one-line reason it failed (status 1).
pub fn conclude(
    vm: &KvmVm,
    name: &str,
    result: Result<VmOutcome, axvm_kvm::Error>,
) -> Result<u8, String> {
    let outcome = result.map_err(|err| format!("VM `{name}` failed: {err}"))?;
    log::info!("VM `{name}` ended: {outcome:?}");
    match outcome {
        VmOutcome::Exited(status) => {
            // A reset ends the VM with status 0, as a power-off does: say which it was.
            if let Some(note) = vm.stop_note() {
                // A note only: a stderr that cannot take it does not change the status.
                let _ = errln!("axvm: VM `{name}`: {note}");
            }
            Ok(status)
        }
        // The commonest boot failures: the full report, with the causes that fit.
        VmOutcome::GuestReset { vcpu } => Err(vm.stop_report().map_or_else(
            || format!("VM `{name}`: vCPU {vcpu} reset the machine without an exit status (on x86 usually a triple fault: an exception the guest could not handle)"),
            |report| report.trim_end().to_string(),
        )),
        VmOutcome::AllHalted => Err(vm.stop_report().map_or_else(
            || format!("VM `{name}`: every vCPU halted and nothing can wake them"),
            |report| report.trim_end().to_string(),
        )),
        VmOutcome::Stopped => Ok(0),
        VmOutcome::NoProgress => Err(vm.watchdog_report().map_or_else(
            || format!("VM `{name}`: the watchdog stopped it"),
            |report| report.trim_end().to_string(),
        )),
    }
}

/// What the VM left to say once it stopped, on stderr (see [`output::report_after_run`]).
pub fn report_after_run(vm: &KvmVm, failed: bool) -> output::Result {
    let diagnostics = vm.diagnostics();
    output::report_after_run(
        diagnostics.and_then(|d| d.trace()),
        diagnostics.and_then(|d| d.stats()),
        vm.vm().devices(),
        failed,
    )
}
