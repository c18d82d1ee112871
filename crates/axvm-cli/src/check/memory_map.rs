//! The memory map `axvm check` prints: each RAM region with its planned outcome on this
//! host, and inside it what axvm puts there (the kernel, the other images, the boot data
//! for the detected format, the e820 reserved hole), all as the host's [`VmPlan`] says;
//! then the devices. Sorted by address,
//! so that a collision is visible as two lines over the same addresses.

use axvm::{AxVMConfig, EmulatedDeviceConfig, EmulatedDeviceType, MappingFlags, VmMemConfig};
use axvm_kvm::VmPlan;
use axvm_kvm::{ImageFormat, RegionFate};

use super::human_size;
use crate::output::{self, outln};

/// One line: a range and what it is.
struct Line {
    start: u64,
    end: u64,
    text: String,
}

impl Line {
    fn new(start: u64, end: u64, text: impl Into<String>) -> Self {
        Self {
            start,
            end,
            text: text.into(),
        }
    }

    fn print(&self, indent: &str) -> output::Result {
        outln!(
            "  {:#012x}-{:#012x} {:>10}  {indent}{}",
            self.start,
            self.end,
            human_size(self.end.saturating_sub(self.start)),
            self.text
        )
    }
}

/// Prints the map of `config` as `plan` lays it out.
pub fn print(config: &AxVMConfig, plan: &VmPlan) -> output::Result {
    let start = match plan.format {
        ImageFormat::Bios => "BIOS start, the kernel as it is".to_string(),
        format => format!("{format:?} kernel"),
    };
    outln!("\nMemory map:\n  ({start}; each region's outcome as planned on this host)")?;
    let mut contents = contents(plan);
    contents.sort_by_key(|line| (line.start, std::cmp::Reverse(line.end)));
    let mut top: Vec<(Line, Vec<Line>)> = Vec::new();
    for (index, region) in config.memory_regions.iter().enumerate() {
        let (start, end) = (region.gpa.as_u64(), region.end().as_u64());
        let inside: Vec<Line>;
        (inside, contents) = contents
            .into_iter()
            .partition(|line| start <= line.start && line.start < end);
        let fate = plan
            .regions
            .get(index)
            .copied()
            .unwrap_or(RegionFate::Allocated);
        top.push((
            Line::new(start, end, region_text(index, region, fate)),
            inside,
        ));
    }
    for line in contents {
        let text = format!("{} (outside RAM: not loaded)", line.text);
        top.push((Line::new(line.start, line.end, text), Vec::new()));
    }
    let mut consoles = 0;
    for device in &config.emu_devices {
        let start = device.base_gpa.as_u64();
        let text = match virtio_kind(device.emu_type) {
            Some(kind) => {
                let first_console = device.emu_type == EmulatedDeviceType::VirtioConsole && {
                    consoles += 1;
                    consoles == 1
                };
                virtio_text(kind, device, first_console)
            }
            None => format!("MMIO {}: {}", device.name, device.emu_type),
        };
        top.push((
            Line::new(start, start.saturating_add(device.length), text),
            Vec::new(),
        ));
    }
    let irqchip = axvm_kvm::has_in_kernel_irqchip();
    for device in &config.pass_through_devices {
        let start = device.base_gpa.as_u64();
        let text = format!("pass-through {} (host {})", device.name, device.base_hpa);
        // What serves it on this host: the irqchip's pages, the emulated HPET; refusals are
        // the check's FAIL lines.
        let text = match axvm_kvm::pass_through_plan(
            device.base_gpa,
            device.base_hpa,
            device.length,
            irqchip,
        ) {
            Ok(served) => format!("{text}: {served}"),
            Err(_) => text,
        };
        top.push((
            Line::new(start, start.saturating_add(device.length), text),
            Vec::new(),
        ));
    }
    top.sort_by_key(|(line, _)| (line.start, std::cmp::Reverse(line.end)));
    for (line, inside) in top {
        line.print("")?;
        for content in inside {
            content.print("  ")?;
        }
    }
    Ok(())
}

/// The short name of a virtio device type, as Linux and QEMU name them.
fn virtio_kind(emu_type: EmulatedDeviceType) -> Option<&'static str> {
    match emu_type {
        EmulatedDeviceType::VirtioBlk => Some("virtio-blk"),
        EmulatedDeviceType::VirtioNet => Some("virtio-net"),
        EmulatedDeviceType::VirtioConsole => Some("virtio-console"),
        _ => None,
    }
}

/// "virtio-blk vda, IRQ 5, disk /images/disk.img (read-only)": the device, its interrupt
/// line and what it is connected to on the host. A virtio console prints to axvm's console;
/// the first one also gets axvm's console input (instead of COM1).
fn virtio_text(kind: &str, device: &EmulatedDeviceConfig, first_console: bool) -> String {
    let backend = match (&device.backend, device.emu_type) {
        (Some(backend), _) => backend.to_string(),
        (None, EmulatedDeviceType::VirtioConsole) if first_console => {
            "axvm's console and its input".to_string()
        }
        (None, EmulatedDeviceType::VirtioConsole) => {
            "axvm's console (output only: the first virtio console gets the input)".to_string()
        }
        (None, _) => "no backend".to_string(),
    };
    format!("{kind} {}, IRQ {}, {backend}", device.name, device.irq_id)
}

/// "[0] RAM rwx--- MapAlloc: allocated": the region, and how the KVM host will give it
/// memory (its [`RegionFate`] in the plan).
fn region_text(index: usize, region: &VmMemConfig, fate: RegionFate) -> String {
    let kind = if region.flags.contains(MappingFlags::WRITE) {
        "RAM"
    } else {
        "ROM"
    };
    let outcome = match fate {
        RegionFate::Allocated => "allocated",
        RegionFate::IdenticalFallback => "identical fallback (allocated elsewhere)",
        RegionFate::Refused => "REFUSED by this host",
    };
    format!(
        "[{index}] {kind} {} {}: {outcome}",
        region.flags, region.map_type
    )
}

/// The images and the boot data the plan writes.
fn contents(plan: &VmPlan) -> Vec<Line> {
    plan.images
        .iter()
        .chain(&plan.boot_data)
        .map(|range| Line::new(range.start, range.end, range.what.clone()))
        .collect()
}
