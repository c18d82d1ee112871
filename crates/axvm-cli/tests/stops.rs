//! `axvm run` prints the full report of a VM that stopped by itself without an exit status
//! (every vCPU halted, or a triple fault), with or without `--watchdog`: the cause, each
//! vCPU's mode, registers and code, and its last exits (issue 11, item 7).

mod common;

use common::{axvm, raw_guest, require_kvm, Scratch};

/// Prints `hi` to COM1 then halts with interrupts off:
/// `mov dx, 0x3f8; mov al, 'h'; out dx, al; mov al, 'i'; out dx, al; cli; hlt`.
const PRINT_THEN_HALT: &[u8] = &[
    0xba, 0xf8, 0x03, 0xb0, 0x68, 0xee, 0xb0, 0x69, 0xee, 0xfa, 0xf4,
];

/// Flat 32-bit protected mode with an IDT of zeros (IDTR {0x7ff, 0x1000}), then `ud2` at
/// 0x802b: a triple fault. See `crates/axvm-kvm/tests/stops.rs` for the listing.
const ZERO_IDT_UD2: &[u8] = &[
    0xfa, 0x66, 0x0f, 0x01, 0x16, 0x48, 0x80, 0x0f, 0x20, 0xc0, 0x0c, 0x01, 0x0f, 0x22, 0xc0, 0x66,
    0xea, 0x17, 0x80, 0x00, 0x00, 0x08, 0x00, 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xd0, 0xbc,
    0x00, 0x70, 0x00, 0x00, 0x0f, 0x01, 0x1d, 0x4e, 0x80, 0x00, 0x00, 0x0f, 0x0b, 0x90, 0x90, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, 0x17, 0x00, 0x30, 0x80, 0x00, 0x00, 0xff, 0x07,
    0x00, 0x10, 0x00, 0x00,
];

/// Whether KVM resets a vCPU before it reports its triple fault (KVM on AMD SVM does; see
/// `crates/axvm-kvm/tests/stops.rs`).
fn kvm_resets_on_shutdown() -> bool {
    std::path::Path::new("/sys/module/kvm_amd").exists()
        && !axvm_kvm::testing::is_software_nested_kvm()
}

fn assert_says(stderr: &str, words: &str) {
    assert!(
        stderr.contains(words),
        "stderr should say `{words}`:\n{stderr}"
    );
}

fn a_halted_vm_gets_the_full_report() {
    require_kvm();
    let scratch = Scratch::new("stops-halt");
    let config = raw_guest(&scratch, PRINT_THEN_HALT);
    let output = axvm(&["run".as_ref(), config.as_os_str()]);
    assert_eq!(output.code(), 1, "{output:#?}");
    assert_eq!(output.stdout, "hi");
    assert_says(
        &output.stderr,
        "every vCPU halted and nothing can wake them",
    );
    assert_says(
        &output.stderr,
        "vCPU 0 halted with interrupts off at RIP 0x800b (real mode)",
    );
    assert_says(&output.stderr, "vCPU 0: halted, real mode, RIP 0x800b");
    assert_says(&output.stderr, "Last 2 exits of vCPU 0, oldest first:");
    assert_says(&output.stderr, "port 0x3f8 write 0x69");
}

fn a_triple_fault_gets_the_full_report_also_under_the_watchdog() {
    require_kvm();
    let scratch = Scratch::new("stops-reset");
    let config = raw_guest(&scratch, ZERO_IDT_UD2);
    for watchdog in [&[][..], &["--watchdog", "5"][..]] {
        let mut args: Vec<&std::ffi::OsStr> = vec!["run".as_ref()];
        args.extend(watchdog.iter().map(std::ffi::OsStr::new));
        args.push(config.as_os_str());
        let output = axvm(&args);
        assert_eq!(output.code(), 1, "{output:#?}");
        assert_says(
            &output.stderr,
            "vCPU 0 reset the machine without an exit status",
        );
        if kvm_resets_on_shutdown() {
            assert_says(&output.stderr, "vCPU 0 shows the reset state");
        } else {
            assert_says(
                &output.stderr,
                "vCPU 0's IDT at 0x1000 (limit 0x7ff) holds only zeros",
            );
            assert_says(
                &output.stderr,
                "vCPU 0 triple-faulted at RIP 0x802b (protected mode): `ud2`",
            );
            assert_says(&output.stderr, "RIP 0x802b (protected mode): ud2; nop; nop");
        }
        assert_says(&output.stderr, "Last 1 exits of vCPU 0, oldest first:");
        assert!(!output.stderr.contains("panicked"), "{}", output.stderr);
    }
}

axvm_test_harness::main!(
    a_halted_vm_gets_the_full_report,
    a_triple_fault_gets_the_full_report_also_under_the_watchdog,
);
