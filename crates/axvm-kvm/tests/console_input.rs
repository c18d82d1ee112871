//! Console input (`VmOptions::console_input`): what the host's reader holds reaches a guest
//! that reads COM1, in order and whole, even when it is larger than the UART's 64-byte
//! receive FIFO; the reader runs on its own thread, so the guest simply polls "data ready".

mod common;

use std::io::Cursor;

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::{VmOptions, VmOutcome};
use common::guests::{READ_BYTE, READ_LINE_LENGTH};
use common::{create, raw_config, require_kvm, run_bounded, Console};

/// Runs `guest` with `input` as its console input and returns how it ended.
fn run_with_input(guest: &[u8], input: Vec<u8>) -> VmOutcome {
    let console = Console::default();
    let options = VmOptions {
        console: Box::new(console.clone()),
        console_input: Some(Box::new(Cursor::new(input))),
        unclaimed: UnclaimedAccessPolicy::Error,
        ..Default::default()
    };
    let vm = create(raw_config(), guest, options);
    run_bounded(vm, &console).unwrap_or_else(|err| panic!("the VM failed: {err}"))
}

fn the_guest_reads_the_byte_the_host_sends() {
    require_kvm();
    assert_eq!(
        run_with_input(READ_BYTE, b"A".to_vec()),
        VmOutcome::Exited(b'A')
    );
}

fn input_larger_than_the_fifo_reaches_the_guest_whole() {
    require_kvm();
    // 199 bytes and a newline: three FIFOs' worth, so the input thread must wait for room.
    let mut line = vec![b'x'; 199];
    line.push(b'\n');
    assert_eq!(
        run_with_input(READ_LINE_LENGTH, line),
        VmOutcome::Exited(200)
    );
}

axvm_test_harness::main!(
    the_guest_reads_the_byte_the_host_sends,
    input_larger_than_the_fifo_reaches_the_guest_whole,
);
