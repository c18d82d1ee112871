//! `axvm` on arm64: the same commands and flags, on the virt board of `axvm-kvm-arm64`.
//!
//! `run` boots one VM (the PL011 console on stdout, PSCI `SYSTEM_OFF` or the exit device
//! ending it) with `--stats`, `--trace-exits`, `--watchdog` and `--unclaimed`; `check` says
//! what this host's KVM offers (vGIC, IPA size, PSCI, ...) and where each config's images go.
//! What the arm64 host does not do yet is refused by name: `--gdb`, several VMs at once.

mod check;
mod observer;
mod run;
mod watchdog;

use std::process::ExitCode;

use crate::cli::Command;
use crate::output::CommandError;
use crate::vm_files;

/// Runs `command` on the arm64 host.
pub fn execute(command: Command) -> Result<ExitCode, CommandError> {
    match command {
        Command::Run {
            configs,
            unclaimed,
            stats,
            trace_exits,
            watchdog,
            no_seccomp,
            gdb,
            gdb_wait: _,
        } => {
            if gdb.is_some() {
                return Err(
                    "--gdb: the arm64 host has no GDB stub yet (x86 hosts have one)"
                        .to_string()
                        .into(),
                );
            }
            if configs.len() > 1 {
                return Err(
                    "the arm64 host runs one VM per axvm process for now: give one config"
                        .to_string()
                        .into(),
                );
            }
            let files = match configs.first() {
                Some(path) => vm_files::load(path),
                None => vm_files::demo(),
            }
            .map_err(|err| err.to_string())?;
            let flags = crate::cli::RunFlags {
                unclaimed,
                stats,
                trace_exits: trace_exits.as_deref(),
                watchdog,
                sandbox: !no_seccomp,
            };
            run::run(files, &flags)
        }
        Command::Check { configs } => Ok(check::check(
            configs
                .iter()
                .map(|path| vm_files::load(path).map_err(|err| err.to_string()))
                .collect(),
        )?),
    }
}
