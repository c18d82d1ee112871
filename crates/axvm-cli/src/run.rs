//! `axvm run`.

use std::process::ExitCode;

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::{KvmVm, VmOptions, VmOutcome};

use crate::cli::Unclaimed;
use crate::vm_files::{config_error, VmFiles};

/// Boots the VM and maps how it ended to the command's exit status.
pub fn run(files: VmFiles, unclaimed: Unclaimed) -> Result<ExitCode, String> {
    let options = VmOptions {
        console: Box::new(std::io::stdout()),
        unclaimed: match unclaimed {
            Unclaimed::Ignore => UnclaimedAccessPolicy::Ignore,
            Unclaimed::Error => UnclaimedAccessPolicy::Error,
        },
        ..Default::default()
    };
    files
        .config
        .validate()
        .map_err(|err| config_error(&files.origin, err).to_string())?;
    let name = files.config.name.clone();
    let vm = KvmVm::create(files.config, &files.images, options)
        .map_err(|err| format!("cannot create VM `{name}` ({}): {err}", files.origin))?;
    let outcome = vm
        .run()
        .map_err(|err| format!("VM `{name}` failed: {err}"))?;
    log::info!("VM `{name}` ended: {outcome:?}");
    match outcome {
        VmOutcome::Exited(status) => Ok(ExitCode::from(status)),
        VmOutcome::GuestReset { vcpu } => Err(format!(
            "VM `{name}`: vCPU {vcpu} reset the machine without an exit status (on x86 usually a triple fault: an exception the guest could not handle)"
        )),
        VmOutcome::AllHalted => Err(format!("VM `{name}`: every vCPU halted and nothing can wake them")),
        VmOutcome::Stopped => Ok(ExitCode::SUCCESS),
    }
}
