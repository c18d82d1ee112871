//! The memory map `axvm check` prints names what each region holds: the kernel's ranges,
//! the ramdisk where axvm will put it, the boot data, ACPI and MP areas and the e820 hole
//! for the boot protocols, and each region's planned outcome on this host.

mod common;

use common::{axvm, demo, guest, Output, Scratch};

fn check(config: &std::path::Path) -> Output {
    axvm(&[std::ffi::OsStr::new("check"), config.as_os_str()])
}

/// The map's lines: from "Memory map:" to the verdict.
fn map_lines(output: &Output) -> Vec<String> {
    let map = output
        .stdout
        .split_once("\nMemory map:\n")
        .unwrap_or_else(|| panic!("no memory map: {output:#?}"))
        .1;
    map.lines()
        .take_while(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

/// The line containing `what`, which must also contain each of `wants`.
fn line_with<'a>(lines: &'a [String], what: &str, wants: &[&str]) -> &'a str {
    let line = lines
        .iter()
        .find(|line| line.contains(what))
        .unwrap_or_else(|| panic!("no line with {what:?}: {lines:#?}"));
    for want in wants {
        assert!(line.contains(want), "{want:?} is not in {line:?}");
    }
    line
}

/// Every address line starts with its range, in ascending order, at the same column.
fn assert_sorted_and_aligned(lines: &[String]) {
    let starts: Vec<u64> = lines
        .iter()
        .filter_map(|line| line.trim_start().strip_prefix("0x"))
        .map(|rest| u64::from_str_radix(&rest[..10], 16).expect("hex start"))
        .collect();
    assert!(starts.len() >= 2, "{lines:#?}");
    assert!(
        starts.windows(2).all(|w| w[0] <= w[1]),
        "not sorted: {lines:#?}"
    );
    let columns: Vec<usize> = lines
        .iter()
        .filter(|line| line.trim_start().starts_with("0x"))
        .map(|line| line.find('-').unwrap_or(0))
        .collect();
    assert!(
        columns.windows(2).all(|w| w[0] == w[1]),
        "not aligned: {lines:#?}"
    );
}

#[test]
fn demo_map_names_the_kernel_segments_and_boot_tables() {
    let scratch = Scratch::new("map-demo");
    let output = check(&demo(&scratch));
    assert!(!output.stdout.contains("[FAIL] config"), "{output:#?}");
    let lines = map_lines(&output);
    assert!(lines[0].contains("Elf64 kernel"), "{lines:#?}");
    line_with(
        &lines,
        "[0] RAM",
        &["0x0000000000-0x0001000000", "16 MiB", "MapAlloc: allocated"],
    );
    line_with(
        &lines,
        "GDT and boot page tables",
        &["0x0000001000-0x0000008000", "28 KiB"],
    );
    line_with(&lines, "kernel (Elf64) segment 0", &["0x0000200000-"]);
    line_with(
        &lines,
        "MMIO scratch",
        &["0x00feb00000-0x00feb01000", "4 KiB", "dummy"],
    );
    assert!(
        !lines.iter().any(|l| l.contains("ACPI")),
        "direct starts get no ACPI: {lines:#?}"
    );
    assert_sorted_and_aligned(&lines);
}

#[test]
fn multiboot_map_names_kernel_ramdisk_and_firmware_areas() {
    let scratch = Scratch::new("map-multiboot");
    scratch.copy_image(axvm_guests::RAMDISK_PATH, "ramdisk");
    let config = guest(
        &scratch,
        axvm_guests::MULTIBOOT_PATH,
        "multiboot",
        axvm_guests::MULTIBOOT_CONFIG,
    );
    let output = check(&config);
    assert!(!output.stdout.contains("[FAIL] config"), "{output:#?}");
    let lines = map_lines(&output);
    assert!(lines[0].contains("Multiboot kernel"), "{lines:#?}");
    line_with(
        &lines,
        "[0] RAM",
        &["0x0000000000-0x0008000000", "128 MiB", "allocated"],
    );
    line_with(&lines, "GDT", &["0x0000001000-"]);
    // Firmware's data, as axvm writes it before the kernel runs (boot/bda.rs).
    line_with(
        &lines,
        "BIOS Data Area",
        &["0x0000000400-0x0000000500", "256 B"],
    );
    line_with(
        &lines,
        "EBDA, its first KiB",
        &["0x000009fc00-0x00000a0000", "1 KiB"],
    );
    line_with(
        &lines,
        "boot data area",
        &["0x0000009000-0x000009f000", "Multiboot info (EBX)"],
    );
    line_with(
        &lines,
        "legacy hole",
        &["0x000009fc00-0x0000100000", "e820 reserved"],
    );
    line_with(
        &lines,
        "ACPI tables",
        &["0x00000e0000-0x00000f0000", "64 KiB"],
    );
    line_with(&lines, "MP table", &["0x00000f0000-0x00000f1000"]);
    line_with(&lines, "kernel (Multiboot)", &["0x0000100000-"]);
    // The ramdisk goes page-aligned at the top of RAM: 128 MiB minus its size, rounded down.
    let size = axvm_guests::RAMDISK.len() as u64;
    let at = (0x800_0000 - size) & !0xfff;
    line_with(
        &lines,
        "ramdisk (placed by axvm)",
        &[&format!("{at:#012x}-{:#012x}", at + size)],
    );
    assert_sorted_and_aligned(&lines);
    // The command line the kernel gets: the kernel_path as written, then kernel.cmdline.
    assert!(
        output
            .stdout
            .contains("\n  \"multiboot console=ttyS0 axvm-compat\"\n"),
        "{output:#?}"
    );
}

/// The start and end of the range a map line begins with.
fn range_of(line: &str) -> (u64, u64) {
    let (start, end) = line.trim_start().split_once('-').expect("a range");
    let hex = |text: &str| u64::from_str_radix(text.trim_start_matches("0x"), 16).expect("hex");
    (hex(start), hex(&end[..12]))
}

/// A Multiboot kernel linked at 0x9000 is accepted, and the map shows the boot data moved to
/// the first page after it, clear of it, as `run` puts it.
#[test]
fn a_kernel_at_0x9000_gets_the_boot_data_after_it() {
    let scratch = Scratch::new("map-multiboot-low");
    scratch.copy_image(axvm_guests::RAMDISK_PATH, "ramdisk");
    let config = guest(
        &scratch,
        axvm_guests::MULTIBOOT_LOW_PATH,
        "multiboot-low",
        &axvm_guests::MULTIBOOT_CONFIG.replace(
            "kernel_path = \"multiboot\"",
            "kernel_path = \"multiboot-low\"",
        ),
    );
    let output = check(&config);
    assert_eq!(output.code(), 0, "{output:#?}");
    let lines = map_lines(&output);
    let (kernel_start, kernel_end) = range_of(line_with(&lines, "kernel (Multiboot)", &[]));
    assert_eq!(kernel_start, 0x9000);
    let (data_start, data_end) = range_of(line_with(&lines, "boot data area", &[]));
    assert_eq!(
        data_start,
        kernel_end.next_multiple_of(0x1000),
        "{lines:#?}"
    );
    assert!(data_end <= 0x9_f000, "{lines:#?}");
    line_with(&lines, "ACPI tables", &["0x00000e0000-0x00000f0000"]);
    assert!(
        output
            .stdout
            .contains("\"multiboot-low console=ttyS0 axvm-compat\""),
        "{output:#?}"
    );
}
