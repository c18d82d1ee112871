//! The warnings of a config: what is legal but suspicious (an entry point in zeros, images
//! over each other, RAM the host places elsewhere than asked, more RAM than the host has,
//! pass-through over RAM, an `emu_type` the ArceOS numbering does not define).
//!
//! One list for both commands: `axvm check` prints it as `[warn]` lines, and `axvm run`
//! logs it once on stderr before the guest starts. The core only logs these conditions at
//! debug level while it creates the VM, so that `run` does not say them twice.

use axvm::{AxVMConfig, EmulatedDeviceType};
use axvm_kvm::{ImageFormat, PlannedRange, RegionFate, VmPlan};

/// What is legal but suspicious in `config`, as `plan` (the host's plan for it) lays it
/// out: each as "field: what, and what follows", in the order `axvm check` lists them.
/// `axvm run` logs the same ones, so that the two cannot disagree.
pub fn config_warnings(config: &AxVMConfig, plan: &VmPlan) -> Vec<String> {
    let mut warnings = Vec::new();
    for (index, fate) in plan.regions.iter().enumerate() {
        if *fate == RegionFate::IdenticalFallback {
            warnings.push(format!("kernel.memory_regions[{index}]: MapIdentical cannot be honoured by a Linux process: the region will be allocated elsewhere (guest-physical addresses are unchanged)"));
        }
    }
    warnings.extend(crate::host_memory::warning(config));
    entry_warning(config, plan, &mut warnings);
    for (later, image) in plan.images.iter().enumerate() {
        for earlier in plan.images[..later]
            .iter()
            .filter(|other| overlaps(other, image))
        {
            if earlier.field == image.field {
                continue;
            }
            warnings.push(format!(
                "{}: the {} ({:#x}..{:#x}) overlaps the {} ({:#x}..{:#x}): the {} is loaded later and overwrites it",
                earlier.field.unwrap_or("kernel"), earlier.what, earlier.start, earlier.end, image.what, image.start, image.end, image.what
            ));
        }
    }
    for (index, device) in config.pass_through_devices.iter().enumerate() {
        let (start, end) = (
            device.base_gpa.as_u64(),
            device.base_gpa.as_u64().saturating_add(device.length),
        );
        if let Some(ram) = config
            .memory_regions
            .iter()
            .position(|r| r.gpa.as_u64() < end && start < r.end().as_u64())
        {
            warnings.push(format!("devices.passthrough_devices[{index}] ({}): {start:#x}..{end:#x} overlaps RAM kernel.memory_regions[{ram}]: the guest reaches one of them there, not both; move the device or shrink the region", device.name));
        }
    }
    for (index, device) in config.emu_devices.iter().enumerate() {
        if let EmulatedDeviceType::Unknown(value) = device.emu_type {
            warnings.push(format!("devices.emu_devices[{index}] ({}): emu_type {value:#x} is not a type the ArceOS numbering defines: it is treated as 0x0 (Dummy: scratch registers), as the ArceOS hypervisor does; write 0x0 to say so", device.name));
        }
    }
    warnings
}

/// A raw kernel's entry point outside every image it could run: the vCPU would execute
/// zeroed memory (`add [bx+si], al` forever in real mode) instead of the kernel.
fn entry_warning(config: &AxVMConfig, plan: &VmPlan, warnings: &mut Vec<String>) {
    if plan.format != ImageFormat::Raw {
        return;
    }
    let entry = config.cpu_config.bsp_entry.as_u64();
    if config
        .region_containing(config.cpu_config.bsp_entry)
        .is_none()
    {
        return; // refused already: "not inside any memory region"
    }
    let in_image = plan
        .images
        .iter()
        .any(|image| image.start <= entry && entry < image.end);
    let kernel = plan
        .images
        .iter()
        .find(|image| image.field == Some("kernel.kernel_path"));
    if let (false, Some(kernel)) = (in_image, kernel) {
        warnings.push(format!(
            "kernel.entry_point: entry point {entry:#x} is not inside the kernel image ({:#x}..{:#x}): the vCPU will start in memory that holds zeros",
            kernel.start,
            kernel.end
        ));
    }
}

/// Whether two planned ranges share an address.
fn overlaps(a: &PlannedRange, b: &PlannedRange) -> bool {
    a.start < b.end && b.start < a.end
}
