//! `axvm check` on arm64: what this host's KVM offers, then each config's problems and where
//! its images go on the virt board.

use std::process::ExitCode;

use axvm_kvm_arm64::{
    check_host, device_tree, layout_of, plan_images, BootLayout, GicVersion, HostReport,
};
use axvm_virt::image::LoadPlan;
use axvm_virt::pass_through::pass_through_plan;

use crate::output::{self, outln};
use crate::vm_files::{config_error, VmFiles};

/// Prints the host report, then each config's verdict and boot layout.
pub fn check(configs: Vec<Result<VmFiles, String>>) -> output::Result<ExitCode> {
    let host = print_host()?;
    let mut ok = host.is_some();
    for files in configs {
        match files {
            Ok(files) => ok &= check_config(&files, host.as_ref())?,
            Err(message) => {
                outln!("\nConfig:\n  [FAIL] {message}")?;
                ok = false;
            }
        }
    }
    if ok {
        outln!("\nAll is well.")?;
        Ok(ExitCode::SUCCESS)
    } else {
        outln!("\nProblems found (marked FAIL above).")?;
        Ok(ExitCode::FAILURE)
    }
}

fn print_host() -> output::Result<Option<HostReport>> {
    outln!("Host (arm64 KVM):")?;
    let report = match check_host() {
        Ok(report) => report,
        Err(err) => {
            outln!("  [FAIL] {err}")?;
            return Ok(None);
        }
    };
    outln!("  [ ok ] /dev/kvm: API version {}", report.api_version)?;
    match report.gic {
        Some(GicVersion::V3) => outln!(
            "  [ ok ] vGIC: GICv3 in the kernel{}",
            if report.gic_v2_too { " (GICv2 too)" } else { "" }
        )?,
        Some(GicVersion::V2) => outln!("  [ ok ] vGIC: GICv2 in the kernel (no GICv3 here)")?,
        None => outln!("  [FAIL] vGIC: neither a GICv3 nor a GICv2 in the kernel; guests get no timer interrupts")?,
    }
    outln!(
        "  [ ok ] guest-physical addresses: up to {} bits",
        report.ipa_bits
    )?;
    let psci = if report.psci_0_2 { "[ ok ]" } else { "[FAIL]" };
    outln!("  {psci} PSCI 0.2 in the kernel (CPU_ON, SYSTEM_OFF, SYSTEM_RESET)")?;
    outln!("  [info] up to {} vCPUs per VM", report.max_vcpus)?;
    let offered = [
        ("PMUv3", report.pmu_v3),
        ("SVE", report.sve),
        ("pointer authentication", report.pointer_auth),
    ];
    for (feature, present) in offered {
        let state = if present { "offered" } else { "not offered" };
        outln!("  [info] {feature}: {state} by this host; axvm does not give it to guests yet")?;
    }
    Ok((report.gic.is_some() && report.psci_0_2).then_some(report))
}

/// One config: validation, the board's RAM rules, where the images go. `true` when fine.
fn check_config(files: &VmFiles, host: Option<&HostReport>) -> output::Result<bool> {
    let config = &files.config;
    outln!("\nConfig {} (VM `{}`):", files.origin, config.name)?;
    let verdict = verdict(files);
    for line in &verdict.served {
        outln!("  [ ok ] {line}")?;
    }
    for problem in &verdict.problems {
        outln!("  [FAIL] {problem}")?;
    }
    let (Some(plan), true) = (verdict.plan, verdict.problems.is_empty()) else {
        return Ok(false);
    };
    print_layout(&layout_of(&plan, files.images.dtb.is_none()))?;
    let Some(gic) = host.and_then(|host| host.gic) else {
        return Ok(true);
    };
    match device_tree(config, &files.images, &plan, gic) {
        Ok(blob) => outln!("  [ ok ] device tree: {} bytes, GIC{gic:?}", blob.len())?,
        Err(err) => {
            outln!("  [FAIL] {err}")?;
            return Ok(false);
        }
    }
    Ok(true)
}

/// What `check` found in a config before printing it.
struct Verdict {
    /// "pass-through `NAME` (host ADDR): what serves it", for each row the board serves.
    served: Vec<String>,
    /// The core's validation's, the pass-through rows' and the image plan's problems.
    problems: Vec<String>,
    /// Where the images go, when they fit.
    plan: Option<LoadPlan>,
}

fn verdict(files: &VmFiles) -> Verdict {
    let config = &files.config;
    let mut problems = Vec::new();
    if let Err(err) = config.clone().into_valid() {
        problems.push(config_error(&files.origin, err).to_string());
    }
    let mut served = Vec::new();
    for device in &config.pass_through_devices {
        let (gpa, hpa) = (device.base_gpa.as_u64(), device.base_hpa.as_u64());
        match pass_through_plan(gpa, hpa, device.length) {
            Ok(by) => served.push(format!(
                "pass-through `{}` (host {hpa:#x}): {by}",
                device.name
            )),
            Err(reason) => problems.push(format!(
                "devices.passthrough_devices `{}`: {reason}",
                device.name
            )),
        }
    }
    let plan = plan_images(config, &files.images)
        .map_err(|err| problems.push(err.to_string()))
        .ok();
    Verdict {
        served,
        problems,
        plan,
    }
}

/// Where vCPU 0 starts, the device tree and the initrd.
fn print_layout(layout: &BootLayout) -> output::Result {
    outln!(
        "  [ ok ] kernel: {:?}, vCPU 0 starts at {:#x}",
        layout.format,
        layout.entry
    )?;
    let source = if layout.dtb_generated {
        "generated by axvm"
    } else {
        "kernel.dtb_path"
    };
    outln!(
        "  [ ok ] device tree at {:#x} (x0 at entry), {source}",
        layout.dtb
    )?;
    if let Some((start, end)) = layout.initrd {
        outln!("  [ ok ] initrd at {start:#x}..{end:#x}")?;
    }
    Ok(())
}
