//! The last step of `axvm check`: the VM created and loaded by the very code `axvm run`
//! uses ([`run::create_vm_from`]), then dropped before any vCPU runs. What only KVM can
//! tell (its objects, the memory slots, the images written into guest RAM, the boot data
//! laid out) is then checked as `run` checks it, so "All is well" means `run` starts the
//! guest.
//!
//! Without `/dev/kvm` nothing can be created: the host report fails already, and the
//! config is checked as far as the plan goes ([`axvm_kvm::VmPlan`], which holds every
//! refusal that needs no KVM object).

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::{DiagnosticsOptions, HostLimits, VmOptions};

use crate::run;
use crate::vm_files::VmFiles;

/// What creating the VM gave.
pub enum DryRun {
    /// Created and loaded; nothing ran.
    Created,
    /// Refused, in `run`'s words.
    Refused(String),
    /// `/dev/kvm` cannot be opened: nothing was created.
    NoKvm,
}

/// Creates and loads the VM of `files` as `axvm run` does (the console to nowhere, no
/// input, no diagnostics: none of them refuses anything), and drops it.
pub fn create_and_drop(files: &VmFiles) -> DryRun {
    if HostLimits::query().is_none() {
        return DryRun::NoKvm;
    }
    let options = VmOptions {
        console: Box::new(std::io::sink()),
        console_input: None,
        extra_devices: Vec::new(),
        unclaimed: UnclaimedAccessPolicy::Ignore,
        diagnostics: DiagnosticsOptions::default(),
        // The VM never runs: nothing to confine, and this thread goes on checking.
        sandbox: false,
        gdb: None,
    };
    // `check` prints the config's warnings on stdout; creation logs them only at debug
    // level, and whatever else it would warn of is no business of a check: only errors may
    // reach stderr meanwhile.
    let level = log::max_level();
    log::set_max_level(level.min(log::LevelFilter::Error));
    let created = run::create_vm_from(&files.origin, files.config.clone(), &files.images, options);
    log::set_max_level(level);
    match created {
        Ok(_) => DryRun::Created,
        Err(message) => DryRun::Refused(message),
    }
}
