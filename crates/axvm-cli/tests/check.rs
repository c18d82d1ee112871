//! `axvm check`: with no config it reports on the host (exit 0 where VMs can run); with a
//! config it also validates it and prints its memory map, and exits 1 naming the field of
//! the first problem.

mod common;

use common::{axvm, demo, realmode_with, replace, require_kvm, Scratch};

fn check(config: &std::path::Path) -> common::Output {
    axvm(&[std::ffi::OsStr::new("check"), config.as_os_str()])
}

fn check_without_config_reports_the_host() {
    require_kvm();
    let output = axvm(&["check"]);
    assert_eq!(output.code(), 0, "{output:#?}");
    let text = &output.stdout;
    assert!(text.starts_with("Host:\n"), "{text}");
    assert!(
        text.contains("[ok  ] /dev/kvm: present and accessible"),
        "{text}"
    );
    assert!(text.contains("KVM_CAP_USER_MEMORY: present"), "{text}");
    assert!(!text.contains("[FAIL]"), "{text}");
    assert!(!text.contains("Config"), "no config was given: {text}");
    assert!(text.trim_end().ends_with("All is well."), "{text}");
}

fn check_demo_config_prints_valid_and_its_memory_map() {
    require_kvm();
    let scratch = Scratch::new("check-demo");
    let output = check(&demo(&scratch));
    assert_eq!(output.code(), 0, "{output:#?}");
    let text = &output.stdout;
    assert!(text.contains("(VM 0 `axvm-demo`, 2 vCPU(s)):"), "{text}");
    assert!(text.contains("[ok  ] valid"), "{text}");
    let map = text
        .split_once("\nMemory map:\n")
        .unwrap_or_else(|| panic!("no memory map: {text}"))
        .1;
    let ram = map
        .lines()
        .find(|line| line.contains("[0]"))
        .unwrap_or_else(|| panic!("no line for memory region 0: {map}"));
    for want in [
        "0x0000000000-0x0001000000",
        "16 MiB",
        "[0] RAM rwx--- MapAlloc: allocated",
    ] {
        assert!(
            ram.contains(want),
            "{want:?} is not in the RAM line {ram:?}"
        );
    }
    let scratch_device = map
        .lines()
        .find(|line| line.contains("scratch"))
        .unwrap_or_else(|| panic!("no line for the scratch device: {map}"));
    for want in ["0x00feb00000-0x00feb01000", "4 KiB", "MMIO", "dummy"] {
        assert!(
            scratch_device.contains(want),
            "{want:?} is not in the device line {scratch_device:?}"
        );
    }
}

/// The `Start:` section of `check`'s output: its one line.
fn start_line(text: &str) -> &str {
    text.split_once("\nStart:\n  ")
        .unwrap_or_else(|| panic!("no Start section: {text}"))
        .1
        .lines()
        .next()
        .unwrap_or_default()
}

/// An ArceOS hypervisor x86 config (entry_point in the BIOS image): `check` says it starts
/// in the BIOS, and why; with the entry elsewhere, that the kernel's Multiboot header
/// decides and the BIOS is only copied.
fn check_says_which_start_it_uses_and_why() {
    require_kvm();
    let scratch = Scratch::new("check-bios-start");
    scratch.copy_image(axvm_guests::BIOS_STUB_PATH, "bios-stub");
    scratch.copy_image(axvm_guests::BIOSBOOT_PATH, "biosboot");
    let config = scratch.write("biosboot.toml", axvm_guests::BIOSBOOT_CONFIG);
    let output = check(&config);
    assert_eq!(output.code(), 0, "{output:#?}");
    let stub_end = 0x8000 + axvm_guests::BIOS_STUB.len();
    assert_eq!(
        start_line(&output.stdout),
        format!("BIOS start (the ArceOS hypervisor's x86 start): entry_point 0x8000 lies in the BIOS image at 0x8000..{stub_end:#x}, so vCPU 0 starts there in 16-bit real mode (CS 0, IP 0x8000) and the other vCPUs wait for INIT-SIPI-SIPI; the kernel is copied as it is to kernel_load_addr 0x200000 (its Multiboot header is left to the BIOS)")
    );
    assert!(
        output
            .stdout
            .contains("(BIOS start, the kernel as it is; each region"),
        "{}",
        output.stdout
    );
    let elsewhere = replace(
        axvm_guests::BIOSBOOT_CONFIG,
        "entry_point = 0x8000",
        "entry_point = 0x20_0000",
    );
    let config = scratch.write("elsewhere.toml", elsewhere);
    let output = check(&config);
    assert_eq!(output.code(), 0, "{output:#?}");
    assert_eq!(
        start_line(&output.stdout),
        format!("Multiboot: a Multiboot v1 header in the first 8 KiB; the BIOS image at 0x8000..{stub_end:#x} does not hold entry_point 0x200000, so it is only copied there")
    );
}

fn check_bad_config_exits_1_naming_the_field() {
    // The config problem makes the exit status 1 whatever the host; no KVM needed.
    let scratch = Scratch::new("check-bad");
    let config = realmode_with(&scratch, |text| {
        replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0],",
            "[0x0, 0x10_0000, 0x7, 0], [0xf_f000, 0x2000, 0x7, 0],",
        )
    });
    let output = check(&config);
    assert_eq!(output.code(), 1, "{output:#?}");
    let text = &output.stdout;
    let fail = text
        .lines()
        .find(|line| line.contains("[FAIL]") && line.contains("config field"))
        .unwrap_or_else(|| panic!("no config problem reported: {text}"));
    assert!(fail.contains("kernel.memory_regions[1]"), "{fail}");
    assert!(!text.contains("[ok  ] valid"), "{text}");
    assert!(text.contains("Problems found"), "{text}");
    assert!(!output.stderr.contains("panicked"), "{output:#?}");
}

fn check_unreadable_config_exits_1() {
    let scratch = Scratch::new("check-missing");
    let output = check(&scratch.path("absent.toml"));
    assert_eq!(output.code(), 1, "{output:#?}");
    assert!(
        output.stdout.contains("[FAIL] cannot read config"),
        "{output:#?}"
    );
}

/// A known device type that axvm does not emulate is refused by `run`, so by `check` too.
/// (Unknown types are warned about instead: see `check_warnings.rs`.)
fn check_refuses_what_run_refuses_unemulated_emu_type() {
    require_kvm();
    let scratch = Scratch::new("check-emu-type");
    let config = realmode_with(&scratch, |text| {
        replace(
            &text,
            "emu_devices = []",
            "emu_devices = [[\"blk\", 0xfeb0_0000, 0x1000, 0, 0xE1, []]]",
        )
    });
    let output = check(&config);
    assert_eq!(output.code(), 1, "{output:#?}");
    let fail = output
        .stdout
        .lines()
        .find(|line| line.starts_with("  [FAIL]"))
        .unwrap_or_else(|| panic!("no FAIL line: {output:#?}"));
    assert!(fail.contains("devices.emu_devices[0] (blk)"), "{fail}");
    assert!(fail.contains("virtio block"), "{fail}");
}

/// `check` should list every problem of a config and still print its memory map. Today the
/// config is validated while it is read (`vm_files::load`), so `check` stops at the first
/// problem and prints no map.
fn check_lists_every_problem() {
    let scratch = Scratch::new("check-two-problems");
    let config = realmode_with(&scratch, |text| {
        let text = replace(&text, "cpu_num = 1", "cpu_num = 0");
        replace(&text, "entry_point = 0x8000", "entry_point = 0x20_0000")
    });
    let output = check(&config);
    assert_eq!(output.code(), 1, "{output:#?}");
    assert!(output.stdout.contains("base.cpu_num"), "{output:#?}");
    assert!(output.stdout.contains("kernel.entry_point"), "{output:#?}");
    assert!(output.stdout.contains("Memory map:"), "{output:#?}");
}

/// Likewise for a 64-bit ELF guest without RAM at 0x1000..0x8000 for the boot page tables.
fn check_refuses_what_run_refuses_no_boot_table_ram() {
    let scratch = Scratch::new("check-boot-ram");
    scratch.copy_image(axvm_guests::DEMO_PATH, "demo");
    let config = scratch.write(
        "vm.toml",
        replace(
            axvm_guests::DEMO_CONFIG,
            "[0x0, 0x100_0000, 0x7, 0]",
            "[0x10_0000, 0xf0_0000, 0x7, 0]",
        ),
    );
    let output = check(&config);
    assert_eq!(output.code(), 1, "{output:#?}");
    assert!(
        output.stdout.contains("kernel.memory_regions"),
        "{output:#?}"
    );
}

axvm_test_harness::main!(
    check_says_which_start_it_uses_and_why,
    check_without_config_reports_the_host,
    check_demo_config_prints_valid_and_its_memory_map,
    check_bad_config_exits_1_naming_the_field,
    check_unreadable_config_exits_1,
    check_refuses_what_run_refuses_unemulated_emu_type,
    check_lists_every_problem,
    check_refuses_what_run_refuses_no_boot_table_ram,
);
