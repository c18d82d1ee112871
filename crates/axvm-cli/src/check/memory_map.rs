//! The memory map `axvm check` prints: each RAM region with its planned outcome on this
//! host, and inside it what axvm puts there (the kernel, the other images, the boot data
//! for the detected format, the e820 reserved hole); then the devices. Sorted by address,
//! so that a collision is visible as two lines over the same addresses.

use axvm::{AxVMConfig, MappingFlags, VmMemConfig, VmMemMappingType};
use axvm_kvm::boot::e820::{e820_map, E820Kind};
use axvm_kvm::boot::mptable::MAX_MP_CPUS;
use axvm_kvm::platform::pc::layout::{
    ACPI_END, ACPI_START, BOOT_INFO_END, BOOT_INFO_START, BOOT_TABLES_END, BOOT_TABLES_START,
    GDT_END, GDT_START, HIGH_MEMORY_START, LEGACY_HOLE_START, MPTABLE_END, MPTABLE_START,
};
use axvm_kvm::ImageFormat;

use super::config::Plan;
use super::human_size;

/// The GDT axvm writes for every start but real mode.
const GDT: (u64, u64) = (GDT_START, GDT_END);
/// The GDT and the page tables identity-mapping 4 GiB, for the 64-bit starts.
const BOOT_PAGE_TABLES: (u64, u64) = (BOOT_TABLES_START, BOOT_TABLES_END);

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

    fn print(&self, indent: &str) {
        println!(
            "  {:#012x}-{:#012x} {:>10}  {indent}{}",
            self.start,
            self.end,
            human_size(self.end.saturating_sub(self.start)),
            self.text
        );
    }
}

/// Prints the map of `config` as `plan` lays it out.
pub fn print(config: &AxVMConfig, plan: &Plan) {
    println!(
        "\nMemory map:\n  ({:?} kernel; each region's outcome as planned on this host)",
        plan.format
    );
    let mut contents = contents(config, plan);
    contents.sort_by_key(|line| (line.start, std::cmp::Reverse(line.end)));
    let mut top: Vec<(Line, Vec<Line>)> = Vec::new();
    for (index, region) in config.memory_regions.iter().enumerate() {
        let (start, end) = (region.gpa.as_u64(), region.end().as_u64());
        let inside: Vec<Line>;
        (inside, contents) = contents
            .into_iter()
            .partition(|line| start <= line.start && line.start < end);
        top.push((Line::new(start, end, region_text(index, region)), inside));
    }
    for line in contents {
        let text = format!("{} (outside RAM: not loaded)", line.text);
        top.push((Line::new(line.start, line.end, text), Vec::new()));
    }
    for device in &config.emu_devices {
        let start = device.base_gpa.as_u64();
        let text = format!("MMIO {}: {}", device.name, device.emu_type);
        top.push((
            Line::new(start, start.saturating_add(device.length), text),
            Vec::new(),
        ));
    }
    for device in &config.pass_through_devices {
        let start = device.base_gpa.as_u64();
        let text = format!("pass-through {} (host {})", device.name, device.base_hpa);
        top.push((
            Line::new(start, start.saturating_add(device.length), text),
            Vec::new(),
        ));
    }
    top.sort_by_key(|(line, _)| (line.start, std::cmp::Reverse(line.end)));
    for (line, inside) in top {
        line.print("");
        for content in inside {
            content.print("  ");
        }
    }
}

/// "[0] RAM rwx--- MapAlloc: allocated": the region, and how the KVM host will give it
/// memory (a Linux process can only allocate anywhere: see `axvm_kvm::KvmHal`).
fn region_text(index: usize, region: &VmMemConfig) -> String {
    let kind = if region.flags.contains(MappingFlags::WRITE) {
        "RAM"
    } else {
        "ROM"
    };
    let outcome = match region.map_type {
        VmMemMappingType::MapAlloc => "allocated",
        VmMemMappingType::MapIdentical => "identical fallback (allocated elsewhere)",
        VmMemMappingType::MapReserved => "REFUSED by this host",
    };
    format!(
        "[{index}] {kind} {} {}: {outcome}",
        region.flags, region.map_type
    )
}

/// The images and the boot data axvm writes for `plan.format`.
fn contents(config: &AxVMConfig, plan: &Plan) -> Vec<Line> {
    let mut lines: Vec<Line> = plan
        .images
        .iter()
        .map(|image| {
            Line::new(
                image.start,
                image.start.saturating_add(image.len),
                image.what.clone(),
            )
        })
        .collect();
    let boot_info = match plan.format {
        ImageFormat::Raw => return lines,
        ImageFormat::Elf64 => {
            lines.push(Line::new(
                BOOT_PAGE_TABLES.0,
                BOOT_PAGE_TABLES.1,
                "GDT and boot page tables (axvm writes them)",
            ));
            return lines;
        }
        ImageFormat::BzImage => {
            lines.push(Line::new(
                BOOT_PAGE_TABLES.0,
                BOOT_PAGE_TABLES.1,
                "GDT and boot page tables (axvm writes them)",
            ));
            "boot data area: command line, zero page (RSI)"
        }
        ImageFormat::Multiboot => {
            lines.push(Line::new(GDT.0, GDT.1, "GDT (axvm writes it)"));
            "boot data area: command line, module list, memory map, Multiboot info (EBX)"
        }
        ImageFormat::Pvh => {
            lines.push(Line::new(GDT.0, GDT.1, "GDT (axvm writes it)"));
            "boot data area: command line, module list, memory map, hvm_start_info (EBX)"
        }
    };
    lines.push(Line::new(BOOT_INFO_START, BOOT_INFO_END, boot_info));
    lines.push(Line::new(ACPI_START, ACPI_END, "ACPI tables, RSDP first"));
    if config.cpu_num <= MAX_MP_CPUS {
        lines.push(Line::new(
            MPTABLE_START,
            MPTABLE_END,
            "MP floating pointer and MP table",
        ));
    }
    for entry in e820_map(config)
        .iter()
        .filter(|e| e.kind == E820Kind::Reserved)
    {
        let end = entry.addr + entry.size;
        let why = if LEGACY_HOLE_START <= entry.addr && end <= HIGH_MEMORY_START {
            "e820 reserved: the legacy hole (EBDA, VGA, option ROMs, BIOS)"
        } else {
            "e820 reserved (read-only memory)"
        };
        lines.push(Line::new(entry.addr, end, why));
    }
    lines
}
