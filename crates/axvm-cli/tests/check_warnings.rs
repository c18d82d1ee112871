//! `axvm check` warnings: what is legal but suspicious is printed as `[warn]` naming the
//! field, and leaves the exit status 0 when there is nothing worse; what this host refuses
//! (MapReserved) is a `[FAIL]` with the fix.

mod common;

use common::{axvm, realmode_with, replace, require_kvm, Output, Scratch};

fn check(config: &std::path::Path) -> Output {
    axvm(&[std::ffi::OsStr::new("check"), config.as_os_str()])
}

/// Checks the real-mode guest's config edited by `edit`.
fn check_edited(tag: &str, edit: impl FnOnce(String) -> String) -> Output {
    let scratch = Scratch::new(tag);
    check(&realmode_with(&scratch, edit))
}

/// The `[warn]` lines of the config part.
fn warnings(output: &Output) -> Vec<&str> {
    let config = output.stdout.split_once("\nConfig ").map_or("", |(_, c)| c);
    config
        .lines()
        .filter(|l| l.starts_with("  [warn] "))
        .collect()
}

/// Asserts exit 0, no config FAIL, and exactly one warning, containing each of `wants`.
fn assert_one_warning(output: &Output, wants: &[&str]) {
    assert_eq!(
        output.code(),
        0,
        "warnings alone must not fail: {output:#?}"
    );
    assert!(!output.stdout.contains("[FAIL]"), "{output:#?}");
    let warnings = warnings(output);
    assert_eq!(warnings.len(), 1, "{warnings:#?}\n{output:#?}");
    for want in wants {
        assert!(
            warnings[0].contains(want),
            "{want:?} is not in {:?}",
            warnings[0]
        );
    }
    assert!(
        output.stdout.contains("No problems; 1 warning(s)"),
        "{output:#?}"
    );
    assert!(!output.stderr.contains("panicked"), "{output:#?}");
}

fn entry_point_outside_the_raw_image_warns() {
    require_kvm();
    let output = check_edited("warn-entry", |text| {
        replace(&text, "entry_point = 0x8000", "entry_point = 0x7c00")
    });
    let image_end = 0x8000 + axvm_guests::REALMODE.len();
    assert_one_warning(
        &output,
        &[
            "kernel.entry_point: entry point 0x7c00 is not inside the kernel image",
            &format!("(0x8000..{image_end:#x})"),
            "the vCPU will start in memory that holds zeros",
        ],
    );
}

fn overlapping_images_warn() {
    require_kvm();
    let output = check_edited("warn-overlap", |text| {
        replace(
            &text,
            "kernel_load_addr = 0x8000",
            "kernel_load_addr = 0x8000\nbios_path = \"realmode\"\nbios_load_addr = 0x8010",
        )
    });
    assert_one_warning(
        &output,
        &[
            "kernel.bios_load_addr: the BIOS image (0x8010..",
            "overlaps the kernel image (raw) (0x8000..",
        ],
    );
}

fn pass_through_over_ram_warns() {
    require_kvm();
    // The IOAPIC page, which this host can pass through, over a RAM region put there.
    let output = check_edited("warn-passthrough", |text| {
        let text = replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0],",
            "[0x0, 0x10_0000, 0x7, 0], [0xfec0_0000, 0x1000, 0x7, 0],",
        );
        replace(
            &text,
            "passthrough_devices = []",
            "passthrough_devices = [[\"ioapic\", 0xfec0_0000, 0xfec0_0000, 0x1000, 0]]",
        )
    });
    assert_one_warning(
        &output,
        &[
            "devices.passthrough_devices[0] (ioapic)",
            "overlaps RAM kernel.memory_regions[1]",
        ],
    );
}

fn unknown_emu_type_warns_and_is_treated_as_dummy() {
    require_kvm();
    let output = check_edited("warn-emu-type", |text| {
        replace(
            &text,
            "emu_devices = []",
            "emu_devices = [[\"mystery\", 0xfeb0_0000, 0x1000, 0, 0x77, []]]",
        )
    });
    assert_one_warning(
        &output,
        &[
            "devices.emu_devices[0] (mystery): emu_type 0x77",
            "treated as 0x0 (Dummy",
        ],
    );
    // Said once, on stdout: the device manager's log line is not repeated on stderr.
    assert_eq!(output.stderr, "", "{output:#?}");
}

fn map_identical_warns_that_this_host_allocates_elsewhere() {
    require_kvm();
    let output = check_edited("warn-identical", |text| {
        replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0]",
            "[0x0, 0x10_0000, 0x7, 1]",
        )
    });
    assert_one_warning(
        &output,
        &["kernel.memory_regions[0]: MapIdentical cannot be honoured by a Linux process: the region will be allocated elsewhere (guest-physical addresses are unchanged)"],
    );
    assert!(
        output
            .stdout
            .contains("[0] RAM rwx--- MapIdentical: identical fallback"),
        "the map shows the planned outcome: {output:#?}"
    );
}

fn map_reserved_fails_with_the_fix() {
    require_kvm();
    let output = check_edited("fail-reserved", |text| {
        replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0],",
            "[0x0, 0x10_0000, 0x7, 0], [0x200_0000, 0x1000, 0x7, 2],",
        )
    });
    assert_eq!(output.code(), 1, "{output:#?}");
    let fail = output
        .stdout
        .lines()
        .find(|line| line.starts_with("  [FAIL]"))
        .unwrap_or_else(|| panic!("no FAIL line: {output:#?}"));
    for want in [
        "kernel.memory_regions[1]",
        "MapReserved",
        "this host refuses it",
        "use map_type 0 (MapAlloc)",
    ] {
        assert!(fail.contains(want), "{want:?} is not in {fail:?}");
    }
    assert!(
        output.stdout.contains("MapReserved: REFUSED by this host"),
        "{output:#?}"
    );
}

/// The pass-through rows of the ArceOS hypervisor's x86_64 example config.
const ARCEOS_PASS_THROUGH: &str = r#"passthrough_devices = [
    ["IO APIC", 0xfec0_0000, 0xfec0_0000, 0x1000, 0x1],
    ["Local APIC", 0xfee0_0000, 0xfee0_0000, 0x1000, 0x1],
    ["HPET", 0xfed0_0000, 0xfed0_0000, 0x1000, 0x1],
]"#;

fn pass_through_this_host_cannot_map_fails_as_run_would() {
    require_kvm();
    // A device page that is neither an interrupt controller's nor the HPET's is
    // host-physical memory a Linux process cannot map: `axvm run` refuses it, so check must.
    let without_end = ARCEOS_PASS_THROUGH.trim_end_matches(']');
    let rows = format!("{without_end}    [\"NIC\", 0xfe00_0000, 0xfe00_0000, 0x1000, 0x1],\n]");
    let output = check_edited("fail-nic", |text| {
        replace(&text, "passthrough_devices = []", &rows)
    });
    assert_eq!(output.code(), 1, "{output:#?}");
    let fails: Vec<&str> = output
        .stdout
        .lines()
        .filter(|l| l.starts_with("  [FAIL]"))
        .collect();
    assert_eq!(fails.len(), 1, "only the NIC is refused: {output:#?}");
    for want in [
        "NIC",
        "0xfe000000",
        "cannot map host-physical memory",
        "remove the entry",
    ] {
        assert!(fails[0].contains(want), "{want:?} is not in {:?}", fails[0]);
    }
}

/// The ArceOS hypervisor's x86 configs pass the local APIC, IOAPIC and HPET through: the
/// first two are KVM's in-kernel irqchip, the HPET is emulated; the map says which.
fn pass_through_of_the_pc_platform_devices_is_served() {
    require_kvm();
    let output = check_edited("ok-platform", |text| {
        replace(&text, "passthrough_devices = []", ARCEOS_PASS_THROUGH)
    });
    assert!(!output.stdout.contains("[FAIL]"), "{output:#?}");
    for want in [
        "pass-through Local APIC (host 0xfee00000): local APIC (KVM's in-kernel irqchip)",
        "pass-through IO APIC (host 0xfec00000): IOAPIC (KVM's in-kernel irqchip)",
        "pass-through HPET (host 0xfed00000): HPET (emulated)",
    ] {
        assert!(output.stdout.contains(want), "{want:?}: {output:#?}");
    }
}

/// This host's MemTotal in bytes.
fn host_memory() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").expect("/proc/meminfo");
    let line = text
        .lines()
        .find(|line| line.starts_with("MemTotal:"))
        .expect("MemTotal");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|kib| kib.parse().ok())
        .expect("MemTotal in kB");
    kib * 1024
}

/// More RAM than the host has (1 TiB here, on a host with less) is legal, since guest RAM
/// is only reserved as the guest touches it, but warned about.
fn ram_larger_than_the_host_warns() {
    require_kvm();
    let ram = (host_memory() + 1).next_power_of_two().max(1 << 40);
    let output = check_edited("warn-ram", |text| {
        replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0]",
            &format!("[0x0, {ram:#x}, 0x7, 0]"),
        )
    });
    assert_one_warning(
        &output,
        &[
            &format!(
                "kernel.memory_regions: {:.1} TiB of guest RAM is more than this host's",
                ram as f64 / (1u64 << 40) as f64
            ),
            "of memory (MemTotal)",
            "give the VM less RAM",
        ],
    );
}

axvm_test_harness::main!(
    ram_larger_than_the_host_warns,
    entry_point_outside_the_raw_image_warns,
    overlapping_images_warn,
    pass_through_over_ram_warns,
    unknown_emu_type_warns_and_is_treated_as_dummy,
    map_identical_warns_that_this_host_allocates_elsewhere,
    map_reserved_fails_with_the_fix,
    pass_through_this_host_cannot_map_fails_as_run_would,
    pass_through_of_the_pc_platform_devices_is_served,
);
