//! The guest programs of `axvm-guests` on real KVM, through `KvmVm`: the demo (two vCPUs,
//! then MMIO, port I/O and MSR exits), the ROM guest (writes to read-only memory, the nested
//! page fault path) and the real-mode guest (a raw image entered in real mode). Also the host
//! check that `axvm check` prints.

mod common;

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::VmOutcome;
use common::{boot, parse_config, require_kvm};

/// Boots a built guest with its config and returns its console, asserting it exited 0.
fn boot_guest(config: &str, image: &[u8]) -> String {
    let (result, console) = boot(parse_config(config), image, UnclaimedAccessPolicy::Ignore);
    match result {
        Ok(VmOutcome::Exited(0)) => console,
        other => panic!("the guest ended with {other:?}, expected Exited(0); console:\n{console}"),
    }
}

/// Asserts that `console` has a line containing each of `expected`, in that order.
fn assert_lines_in_order(console: &str, expected: &[&str]) {
    let mut lines = console.lines();
    for want in expected {
        assert!(
            lines.any(|line| line.contains(want)),
            "no line containing {want:?} (after the previous ones) in the console:\n{console}"
        );
    }
}

fn demo_guest_passes_every_check() {
    require_kvm();
    let console = boot_guest(axvm_guests::DEMO_CONFIG, axvm_guests::DEMO);
    // Each line covers exits the loop handles: a second vCPU, MMIO read/write (Dummy
    // device), port reads/writes of each width (PCI config ports), MSR read/write.
    assert_lines_in_order(
        &console,
        &[
            "vCPU 0",
            "vCPU 1",
            "MMIO OK",
            "port I/O OK",
            "MSR OK",
            "all checks passed",
        ],
    );
    assert!(!console.contains("FAIL"), "console:\n{console}");
    assert!(
        console.trim_end().ends_with("all checks passed"),
        "the guest printed after its last check:\n{console}"
    );
}

fn rom_guest_sees_its_write_to_rom_ignored() {
    require_kvm();
    let console = boot_guest(axvm_guests::ROM_CONFIG, axvm_guests::ROM);
    assert_lines_in_order(&console, &["ROM write ignored"]);
    assert!(!console.contains("FAIL"), "console:\n{console}");
}

fn real_mode_guest_says_hello() {
    require_kvm();
    let console = boot_guest(axvm_guests::REALMODE_CONFIG, axvm_guests::REALMODE);
    assert_eq!(console, "axvm real-mode guest: hello\n");
}

fn host_check_says_vms_can_run() {
    require_kvm();
    let report = axvm_kvm::check_host();
    let findings: Vec<String> = report.findings.iter().map(ToString::to_string).collect();
    assert!(report.can_run_vms(), "findings: {findings:#?}");
    assert!(
        report
            .findings
            .iter()
            .any(|finding| finding.subject == "/dev/kvm" && finding.ok),
        "no finding says /dev/kvm is usable: {findings:#?}"
    );
}

axvm_test_harness::main!(
    demo_guest_passes_every_check,
    rom_guest_sees_its_write_to_rom_ignored,
    real_mode_guest_says_hello,
    host_check_says_vms_can_run,
);
