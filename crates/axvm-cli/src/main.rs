//! `axvm`: run and check VMs from ArceOS hypervisor config files, on Linux KVM.

mod bounded_read;
mod check;
mod cli;
mod host_memory;
mod output;
mod prefixed;
mod run;
mod several;
mod signals;
mod vm_files;
mod warnings;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use output::CommandError;
use signals::SignalStop;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    output::finish(execute(cli.command))
}

/// Runs `command` (`axvm run` of the demo when there is none).
fn execute(command: Option<Command>) -> Result<ExitCode, CommandError> {
    let command = command.unwrap_or(Command::Run {
        configs: Vec::new(),
        unclaimed: cli::Unclaimed::Ignore,
        stats: false,
        trace_exits: None,
        watchdog: None,
        no_seccomp: false,
        gdb: None,
        gdb_wait: false,
    });
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
