//! `axvm check`: the host's ability to run VMs, and a config's validity and memory map.

use std::process::ExitCode;

use axvm::device::AxVmDevices;
use axvm::{AxVMConfig, GuestPhysAddr};
use axvm_kvm::boot::{check_placement, kernel_layout};

use crate::vm_files::VmFiles;

/// Prints the host report, then (with a config) its problems and memory map.
pub fn check(files: Option<Result<VmFiles, String>>) -> ExitCode {
    let host = axvm_kvm::check_host();
    println!("Host:");
    for finding in &host.findings {
        println!("  {finding}");
    }
    let mut ok = host.can_run_vms();
    if let Some(files) = files {
        ok &= match files {
            Ok(files) => check_config(&files),
            Err(message) => {
                println!("\nConfig:\n  [FAIL] {message}");
                false
            }
        };
    }
    if ok {
        println!("\nAll is well.");
        ExitCode::SUCCESS
    } else {
        println!("\nProblems found (marked FAIL above).");
        ExitCode::FAILURE
    }
}

fn check_config(files: &VmFiles) -> bool {
    let config = &files.config;
    println!(
        "\nConfig {} (VM {} `{}`, {} vCPU(s)):",
        files.origin, config.id, config.name, config.cpu_num
    );
    let mut problems: Vec<String> = config.problems().iter().map(ToString::to_string).collect();
    if let Err(err) = AxVmDevices::default().add_emulated(&config.emu_devices) {
        problems.push(err.to_string());
    }
    // Image placement only means something once the regions themselves are sound.
    if problems.is_empty() {
        if let Err(err) = check_placement(config, &files.images) {
            problems.push(err.to_string());
        }
    }
    let layout = kernel_layout(&files.images.kernel, config.image_config.kernel_load_gpa);
    for problem in &problems {
        println!("  [FAIL] {problem}");
    }
    if problems.is_empty() {
        println!("  [ok  ] valid");
    }
    print_memory_map(config, layout.ok().map(|l| l.ranges).unwrap_or_default());
    problems.is_empty()
}

fn print_memory_map(config: &AxVMConfig, kernel_ranges: Vec<(GuestPhysAddr, u64)>) {
    println!("\nMemory map:");
    for (index, region) in config.memory_regions.iter().enumerate() {
        let holds: Vec<String> = kernel_ranges
            .iter()
            .filter(|(gpa, _)| region.contains(*gpa))
            .map(|(gpa, len)| format!("kernel {gpa}+{len:#x}"))
            .collect();
        let holds = if holds.is_empty() {
            String::from("RAM")
        } else {
            format!("RAM: {}", holds.join(", "))
        };
        println!(
            "  {:#012x}-{:#012x} {:>9} {} {:<12} [{index}] {holds}",
            region.gpa.as_u64(),
            region.end().as_u64(),
            human_size(region.size),
            region.flags,
            region.map_type.to_string(),
        );
    }
    for device in &config.emu_devices {
        println!(
            "  {:#012x}-{:#012x} {:>9} MMIO   {} ({})",
            device.base_gpa.as_u64(),
            device.base_gpa.as_u64().saturating_add(device.length),
            human_size(device.length),
            device.name,
            device.emu_type
        );
    }
    for device in &config.pass_through_devices {
        println!(
            "  {:#012x}-{:#012x} {:>9} pass-through {} (host {})",
            device.base_gpa.as_u64(),
            device.base_gpa.as_u64().saturating_add(device.length),
            human_size(device.length),
            device.name,
            device.base_hpa
        );
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{} {name}", bytes / unit);
        }
    }
    format!("{bytes:#x} B")
}
