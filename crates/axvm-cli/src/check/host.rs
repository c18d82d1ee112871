//! The host part of `axvm check`: the findings of [`axvm_kvm::check_host`], each failing
//! one completed with what it breaks and what to do where the finding does not say, so the
//! report never stops at "missing".

use axvm_kvm::HostFinding;

use crate::output::{self, outln};

/// Prints the host findings; returns whether VMs can run here.
pub fn print_host() -> output::Result<bool> {
    let report = axvm_kvm::check_host();
    outln!("Host:")?;
    for finding in &report.findings {
        match advice(finding) {
            Some(extra) => outln!("  {finding}; {extra}"),
            None => outln!("  {finding}"),
        }?;
    }
    Ok(report.can_run_vms())
}

/// The consequence or fix a failing finding lacks, by what was checked.
fn advice(finding: &HostFinding) -> Option<String> {
    if finding.ok {
        return None;
    }
    let detail = finding.detail.as_str();
    let subject = finding.subject.as_str();
    let text = match subject {
        "/dev/kvm" if detail.starts_with("cannot be opened") => {
            "no VM can run: check that /dev/kvm is the KVM character device (`ls -l /dev/kvm` shows `c` and `10, 232`) and that a KVM module is loaded (`lsmod | grep kvm`)"
        }
        "/dev/kvm" => "no VM can run until this is fixed",
        "KVM" => "no VM can run: check `dmesg` for KVM errors and that a KVM module is loaded",
        "KVM API version" => {
            "axvm cannot talk to this KVM: run a Linux kernel that reports API version 12 (every kernel since 2.6.22)"
        }
        "KVM implementation" => {
            "for full speed and unmodified kernels, run on hardware virtualization (bare metal, or a cloud VM with nested VT-x/AMD-V enabled)"
        }
        capability if capability.starts_with("KVM_CAP_") && finding.fatal => {
            "no VM can run: use a Linux kernel 5.10 or later, which has every capability axvm uses"
        }
        capability if capability.starts_with("KVM_CAP_") => {
            "VMs still run; use a Linux kernel 5.10 or later to have it"
        }
        _ => return None,
    };
    Some(text.to_string())
}
