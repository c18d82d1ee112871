//! `axvm run`: the embedded demo, the built guests from config files next to their images,
//! and tiny inline guests that end with a given exit status or touch a port no device
//! claims, under each `--unclaimed` policy. The guest console is on stdout, axvm's own
//! messages on stderr.

mod common;

use std::ffi::OsStr;

use common::{axvm, axvm_fed, guest, raw_guest, realmode_with, require_kvm, run, Scratch};

/// `mov al, 42; out 0xf4, al; jmp $`: exit status 42.
const EXIT_42: &[u8] = &[0xb0, 0x2a, 0xe6, 0xf4, 0xeb, 0xfe];
/// `mov al, 0xfe; out 0x64, al; jmp $`: i8042 reset, exit status 0.
const I8042_RESET: &[u8] = &[0xb0, 0xfe, 0xe6, 0x64, 0xeb, 0xfe];
/// `mov dx, 0xcf9; mov al, 6; out dx, al; jmp $`: a reset through the reset control
/// register, exit status 0.
const RESET_CONTROL_RESET: &[u8] = &[0xba, 0xf9, 0x0c, 0xb0, 0x06, 0xee, 0xeb, 0xfe];
/// Polls COM1's line status until data is ready, reads the byte and exits with it:
/// `mov dx, 0x3fd; 1: in al, dx; test al, 1; jz 1b; mov dx, 0x3f8; in al, dx; out 0xf4, al; jmp $`.
const READ_BYTE: &[u8] = &[
    0xba, 0xfd, 0x03, 0xec, 0xa8, 0x01, 0x74, 0xfb, 0xba, 0xf8, 0x03, 0xec, 0xe6, 0xf4, 0xeb, 0xfe,
];
/// `mov al, 0x55; in al, 0x99; out 0xf4, al; jmp $`: exits with what port 0x99 reads.
const UNCLAIMED_READ: &[u8] = &[0xb0, 0x55, 0xe4, 0x99, 0xe6, 0xf4, 0xeb, 0xfe];

fn run_without_config_boots_the_demo() {
    require_kvm();
    let output = axvm(&["run"]);
    assert_eq!(output.code(), 0, "{output:#?}");
    let mut lines = output.stdout.lines();
    for want in [
        "vCPU 0",
        "vCPU 1",
        "MMIO OK",
        "port I/O OK",
        "MSR OK",
        "all checks passed",
    ] {
        assert!(
            lines.any(|line| line.contains(want)),
            "no line containing {want:?} in order on stdout: {output:#?}"
        );
    }
    // Everything on stdout is the guest's: axvm's own messages go to stderr.
    for line in output.stdout.lines() {
        assert!(
            line.starts_with("axvm demo guest: "),
            "stdout has a line that is not the guest's: {line:?}"
        );
    }
    assert!(!output.stderr.contains("panicked"), "{output:#?}");
}

fn run_real_mode_guest_from_its_config() {
    require_kvm();
    let scratch = Scratch::new("realmode");
    let config = realmode_with(&scratch, |text| text);
    let output = run(&config);
    assert_eq!(output.code(), 0, "{output:#?}");
    assert_eq!(output.stdout, "axvm real-mode guest: hello\n");
}

fn run_rom_guest_from_its_config() {
    require_kvm();
    let scratch = Scratch::new("rom");
    let config = guest(
        &scratch,
        axvm_guests::ROM_PATH,
        "rom",
        axvm_guests::ROM_CONFIG,
    );
    let output = run(&config);
    assert_eq!(output.code(), 0, "{output:#?}");
    assert!(
        output
            .stdout
            .contains("axvm rom guest: ROM write ignored\n"),
        "{output:#?}"
    );
    assert!(!output.stdout.contains("FAIL"), "{output:#?}");
}

/// The HPET guest from its config, whose pass-through rows are the ArceOS hypervisor's x86
/// ones: `axvm run` serves them (the HPET by emulation, its timer thread in the sandbox),
/// and the guest's power-off through port 0x604 ends the run with status 0.
fn run_hpet_guest_with_the_upstream_pass_through_rows_powers_off_with_0() {
    require_kvm();
    let scratch = Scratch::new("hpet");
    let config = guest(
        &scratch,
        axvm_guests::HPET_PATH,
        "hpet",
        axvm_guests::HPET_CONFIG,
    );
    let output = run(&config);
    assert_eq!(output.code(), 0, "{output:#?}");
    assert!(
        output.stdout.contains("hpet: all checks passed\n"),
        "{output:#?}"
    );
    assert!(!output.stdout.contains("FAIL"), "{output:#?}");
    assert!(!output.stderr.contains("panicked"), "{output:#?}");
}

fn exit_status_is_the_guests() {
    require_kvm();
    let scratch = Scratch::new("exit42");
    let output = run(&raw_guest(&scratch, EXIT_42));
    assert_eq!(output.code(), 42, "{output:#?}");
    assert_eq!(output.stdout, "");
}

fn stdin_reaches_the_guests_serial_console() {
    require_kvm();
    let scratch = Scratch::new("stdin");
    let config = raw_guest(&scratch, READ_BYTE);
    let output = axvm_fed(&[OsStr::new("run"), config.as_os_str()], Some(b"Z"));
    assert_eq!(output.code(), i32::from(b'Z'), "{output:#?}");
}

fn keyboard_controller_reset_exits_0() {
    require_kvm();
    let scratch = Scratch::new("reset");
    let output = run(&raw_guest(&scratch, I8042_RESET));
    assert_eq!(output.code(), 0, "{output:#?}");
}

fn a_reset_through_port_0xcf9_exits_0_and_says_so() {
    require_kvm();
    let scratch = Scratch::new("reset-cf9");
    let output = run(&raw_guest(&scratch, RESET_CONTROL_RESET));
    assert_eq!(output.code(), 0, "{output:#?}");
    assert_eq!(
        output.stderr.trim_end(),
        "axvm: VM `axvm-realmode`: the guest reset the machine through port 0xcf9",
        "{output:#?}"
    );
    assert_eq!(output.stdout, "");
}

fn unclaimed_error_stops_the_vm_naming_the_port() {
    require_kvm();
    let scratch = Scratch::new("unclaimed-error");
    let config = raw_guest(&scratch, UNCLAIMED_READ);
    let output = axvm(&[
        OsStr::new("run"),
        OsStr::new("--unclaimed"),
        OsStr::new("error"),
        config.as_os_str(),
    ]);
    let line = common::assert_refused(&output, "port 0x99");
    assert!(line.contains("vCPU 0"), "{line}");
}

fn unclaimed_ignore_reads_zero_quietly_and_logs_it_at_debug() {
    require_kvm();
    let scratch = Scratch::new("unclaimed-ignore");
    let config = raw_guest(&scratch, UNCLAIMED_READ);
    // The default policy; AL was 0x55 before the IN, so status 0 proves the read gave 0.
    let output = run(&config);
    assert_eq!(output.code(), 0, "{output:#?}");
    assert_eq!(
        output.stderr, "",
        "an unclaimed access is no warning: {output:#?}"
    );
    assert_eq!(output.stdout, "");
    // With -vv the first access is logged with the instruction and the nearest device.
    let debug = axvm(&[OsStr::new("-vv"), OsStr::new("run"), config.as_os_str()]);
    assert_eq!(debug.code(), 0, "{debug:#?}");
    let line = debug
        .stderr
        .lines()
        .find(|line| line.contains("port 0x99") && line.starts_with("[DEBUG "))
        .unwrap_or_else(|| panic!("no debug line about port 0x99: {debug:#?}"));
    assert!(line.contains("in al,99h"), "{line}");
    assert!(line.contains("nearest device: `CMOS RTC`"), "{line}");
}

axvm_test_harness::main!(
    run_without_config_boots_the_demo,
    run_real_mode_guest_from_its_config,
    run_rom_guest_from_its_config,
    run_hpet_guest_with_the_upstream_pass_through_rows_powers_off_with_0,
    exit_status_is_the_guests,
    stdin_reaches_the_guests_serial_console,
    keyboard_controller_reset_exits_0,
    a_reset_through_port_0xcf9_exits_0_and_says_so,
    unclaimed_error_stops_the_vm_naming_the_port,
    unclaimed_ignore_reads_zero_quietly_and_logs_it_at_debug,
);
