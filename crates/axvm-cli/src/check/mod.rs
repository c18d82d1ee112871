//! `axvm check`: the host's ability to run VMs, and a config's validity and memory map.
//!
//! Problems (`[FAIL]`) are what `axvm run` would refuse or what this host cannot do; they
//! make the exit status 1. Warnings (`[warn]`) are legal but suspicious (an entry point in
//! zeros, images over each other, memory the host places differently than asked); they are
//! printed and leave the exit status 0, because the VM runs as configured. They come from
//! [`crate::warnings`], which `axvm run` logs too.
//!
//! A config without problems is then created and loaded by `run`'s own code, and dropped
//! before its first instruction (`dry_run.rs`), so `check` refuses exactly what `run`
//! refuses. Without `/dev/kvm` only the plan is checked (and the host report fails).

mod config;
mod dry_run;
mod host;
mod memory_map;

use std::process::ExitCode;

use crate::output::{self, outln};
use crate::vm_files::VmFiles;

/// Prints the host report, then each config's problems, warnings and memory map.
pub fn check(configs: Vec<Result<VmFiles, String>>) -> output::Result<ExitCode> {
    let mut ok = host::print_host()?;
    let mut warnings = 0;
    for files in configs {
        match files {
            Ok(files) => {
                let verdict = config::check_config(&files)?;
                ok &= verdict.ok;
                warnings += verdict.warnings;
            }
            Err(message) => {
                outln!("\nConfig:\n  [FAIL] {message}")?;
                ok = false;
            }
        }
    }
    if !ok {
        outln!("\nProblems found (marked FAIL above).")?;
        Ok(ExitCode::FAILURE)
    } else if warnings > 0 {
        outln!("\nNo problems; {warnings} warning(s) (marked warn above).")?;
        Ok(ExitCode::SUCCESS)
    } else {
        outln!("\nAll is well.")?;
        Ok(ExitCode::SUCCESS)
    }
}

pub(crate) use crate::output::human_size;
