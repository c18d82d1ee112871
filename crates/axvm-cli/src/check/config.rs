//! The config part of `axvm check`: every refusal `axvm run` would make, what this host
//! cannot do (MapReserved), and warnings for what is legal but suspicious.

use axvm::device::AxVmDevices;
use axvm::{AxVMConfig, EmulatedDeviceConfig, EmulatedDeviceType};
use axvm_kvm::{is_virtio, kernel_cmdline, ImageFormat, VmPlan};

use super::dry_run::{self, DryRun};
use super::memory_map;
use crate::output::{self, outln};
use crate::vm_files::VmFiles;

/// The outcome of checking a config.
pub struct Verdict {
    /// No problems.
    pub ok: bool,
    /// How many warnings were printed.
    pub warnings: usize,
}

/// Prints the config's problems, warnings and memory map.
pub fn check_config(files: &VmFiles) -> output::Result<Verdict> {
    let config = &files.config;
    outln!(
        "\nConfig {} (VM {} `{}`, {} vCPU(s)):",
        files.origin,
        config.id,
        config.name,
        config.cpu_num
    )?;
    // What this host will do comes from the host crate's plan, the one `axvm run` loads by.
    let mut plan = VmPlan::sketch(config, &files.images);
    let mut problems: Vec<String> = config.problems().iter().map(ToString::to_string).collect();
    problems.extend(plan.host_refusals(config).iter().map(ToString::to_string));
    // Unknown types are warned about below; giving them as Dummy keeps add_emulated from
    // logging the same warning on stderr. The host's virtio devices are Dummy here too: `run`
    // adds them before the core looks at the rows, so the core only checks their windows.
    let devices: Vec<_> = config
        .emu_devices
        .iter()
        .filter(|device| !axvm_kvm::is_virtio(device.emu_type))
        .cloned()
        .map(as_dummy_if_unknown_or_virtio)
        .collect();
    if let Err(err) = AxVmDevices::default().add_emulated(&devices) {
        problems.push(err.to_string());
    }
    // Image placement only means something once the regions themselves are sound.
    if problems.is_empty() {
        match VmPlan::for_valid_config(config, &files.images) {
            Ok(checked) => plan = checked,
            Err(err) => problems.push(err.to_string()),
        }
    }
    // Then what `run` does before the first guest instruction, by `run`'s own code.
    let created = problems.is_empty().then(|| dry_run::create_and_drop(files));
    if let Some(DryRun::Refused(message)) = &created {
        problems.push(message.clone());
    }
    let warnings = crate::warnings::config_warnings(config, &plan);
    for problem in &problems {
        outln!("  [FAIL] {problem}")?;
    }
    for warning in &warnings {
        outln!("  [warn] {warning}")?;
    }
    if problems.is_empty() && warnings.is_empty() {
        outln!("  [ok  ] valid")?;
    }
    match created {
        Some(DryRun::Created) => outln!("  [ok  ] created and loaded as `axvm run` does, stopped before the first guest instruction")?,
        Some(DryRun::NoKvm) => outln!("  [note] not created: /dev/kvm cannot be opened, so only the plan was checked; `axvm run` may still refuse what only KVM can tell")?,
        _ => {}
    }
    outln!("\nStart:\n  {}", plan.start)?;
    print_cmdline(config, &plan)?;
    memory_map::print(config, &plan)?;
    Ok(Verdict {
        ok: problems.is_empty(),
        warnings: warnings.len(),
    })
}

/// The command line the kernel gets: `kernel.cmdline` with the `virtio_mmio.device=`
/// entries axvm appends, when the kernel's boot protocol passes one; for Multiboot, after
/// the kernel's name, quoted so that the space ending a line without arguments shows.
fn print_cmdline(config: &AxVMConfig, plan: &VmPlan) -> output::Result {
    let line = plan.cmdline.as_deref();
    if plan.format == ImageFormat::Multiboot {
        outln!(
            "\nKernel command line (Multiboot: the kernel_path as written, then kernel.cmdline, as QEMU and GRUB pass it):\n  \"{}\"",
            line.unwrap_or_default()
        )?;
    } else if plan.format.is_boot_protocol() {
        outln!(
            "\nKernel command line ({:?}):\n  {}",
            plan.format,
            line.unwrap_or("(empty)")
        )?;
    } else if kernel_cmdline(config).is_some() {
        outln!(
            "\nKernel command line: none is passed (a {:?} kernel has no boot protocol to take one)",
            plan.format
        )?;
    }
    Ok(())
}

fn as_dummy_if_unknown_or_virtio(mut device: EmulatedDeviceConfig) -> EmulatedDeviceConfig {
    if matches!(device.emu_type, EmulatedDeviceType::Unknown(_)) || is_virtio(device.emu_type) {
        device.emu_type = EmulatedDeviceType::Dummy;
    }
    device
}
