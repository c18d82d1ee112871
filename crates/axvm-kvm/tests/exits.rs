//! Exits of tiny inline real-mode guests through `KvmVm`: the exit device's status, the
//! i8042 reset and self-test, port reads no device claims under each
//! `UnclaimedAccessPolicy`, and string I/O (`rep outsb`), which KVM reports as one exit for
//! the whole string.

mod common;

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::VmOutcome;
use common::guests::{
    EXIT_42, I8042_RESET, I8042_SELF_TEST, STRING_IO, STRING_IO_TEXT, UNCLAIMED_PORT,
    UNCLAIMED_READ,
};
use common::{boot, boot_raw, raw_config, require_kvm};

fn exit_device_status_is_the_outcome() {
    require_kvm();
    let (outcome, _) = boot_raw(EXIT_42);
    assert_eq!(outcome, VmOutcome::Exited(42));
}

fn i8042_reset_exits_with_status_0() {
    require_kvm();
    let (outcome, _) = boot_raw(I8042_RESET);
    assert_eq!(outcome, VmOutcome::Exited(0));
}

fn i8042_answers_its_self_test_at_once() {
    require_kvm();
    let (result, console) = boot(raw_config(), I8042_SELF_TEST, UnclaimedAccessPolicy::Error);
    let outcome = result.unwrap_or_else(|err| panic!("{err}; console {console:?}"));
    assert_eq!(outcome, VmOutcome::Exited(0x55), "console {console:?}");
}

fn unclaimed_port_read_is_an_error_under_the_error_policy() {
    require_kvm();
    let (result, console) = boot(raw_config(), UNCLAIMED_READ, UnclaimedAccessPolicy::Error);
    let err = match result {
        Ok(outcome) => panic!("the VM ended with {outcome:?}; console {console:?}"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("vCPU 0"), "the error names no vCPU: {err}");
    assert!(
        err.contains(&format!("port {UNCLAIMED_PORT:#x}")),
        "the error names no port {UNCLAIMED_PORT:#x}: {err}"
    );
}

fn unclaimed_port_reads_as_zero_under_the_ignore_policy() {
    require_kvm();
    // AL is 0x55 before the IN; the exit status is AL after it.
    let (result, console) = boot(raw_config(), UNCLAIMED_READ, UnclaimedAccessPolicy::Ignore);
    let outcome = result.unwrap_or_else(|err| panic!("the VM failed: {err}; console {console:?}"));
    assert_eq!(outcome, VmOutcome::Exited(0));
}

fn string_io_sends_every_element_to_the_device() {
    require_kvm();
    let (outcome, console) = boot_raw(STRING_IO);
    assert_eq!(outcome, VmOutcome::Exited(0), "console {console:?}");
    assert_eq!(console, STRING_IO_TEXT);
}

axvm_test_harness::main!(
    exit_device_status_is_the_outcome,
    i8042_reset_exits_with_status_0,
    i8042_answers_its_self_test_at_once,
    unclaimed_port_read_is_an_error_under_the_error_policy,
    unclaimed_port_reads_as_zero_under_the_ignore_policy,
    string_io_sends_every_element_to_the_device,
);
