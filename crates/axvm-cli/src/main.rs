//! `axvm`: run and check VMs from ArceOS hypervisor config files, on Linux KVM.

// The modules every host shares; then the x86 PC host's (`axvm-kvm`) and the arm64 virt
// board's (`axvm-kvm-arm64`): one command, the same flags, on either.
mod bounded_read;
mod cli;
mod output;
mod signals;
mod vm_files;

#[cfg(target_arch = "x86_64")]
mod check;
#[cfg(target_arch = "x86_64")]
mod host_memory;
#[cfg(target_arch = "x86_64")]
mod prefixed;
#[cfg(target_arch = "x86_64")]
mod run;
#[cfg(target_arch = "x86_64")]
mod several;
#[cfg(target_arch = "x86_64")]
mod warnings;

#[cfg(target_arch = "aarch64")]
mod arm64;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use output::CommandError;
#[cfg(target_arch = "x86_64")]
use signals::SignalStop;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    output::finish(execute(cli.command))
}

/// Runs `command` (`axvm run` of the demo when there is none) on the arm64 host.
#[cfg(target_arch = "aarch64")]
fn execute(command: Option<Command>) -> Result<ExitCode, CommandError> {
    arm64::execute(command.unwrap_or_else(Command::demo))
}

/// Runs `command` (`axvm run` of the demo when there is none).
#[cfg(target_arch = "x86_64")]
fn execute(command: Option<Command>) -> Result<ExitCode, CommandError> {
    let command = command.unwrap_or_else(Command::demo);
    match command {
        Command::Run {
            configs,
            unclaimed,
            stats,
            trace_exits,
            watchdog,
            no_seccomp,
            gdb,
            gdb_wait,
        } => {
            let sandbox = !no_seccomp;
            let signals = SignalStop::install(sandbox)?;
            let flags = run::RunFlags {
                unclaimed,
                stats,
                trace_exits: trace_exits.as_deref(),
                watchdog,
                sandbox,
            };
            let gdb = gdb.map(|address| run::Gdb {
                address,
                wait: gdb_wait,
            });
            match configs.as_slice() {
                [] | [_] => {
                    let files = match configs.first() {
                        Some(path) => vm_files::load(path),
                        None => vm_files::demo(),
                    };
                    let files = files.map_err(|err| err.to_string())?;
                    run::run(files, &flags, gdb, &signals)
                }
                _ if gdb.is_some() => Err("--gdb debugs one VM: give it with a single config"
                    .to_string()
                    .into()),
                several => several::run_several(several, &flags, &signals),
            }
        }
        Command::Check { configs } => Ok(check::check(
            configs
                .iter()
                .map(|path| vm_files::load(path).map_err(|err| err.to_string()))
                .collect(),
        )?),
    }
}

/// axvm's own messages go to stderr, so they never mix with the guest console on stdout.
fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        2 => log::LevelFilter::Debug,
        _ => log::LevelFilter::Trace,
    };
    env_logger::Builder::new()
        .filter_level(level)
        .parse_default_env()
        .format_timestamp(None)
        .target(env_logger::Target::Stderr)
        .init();
}
