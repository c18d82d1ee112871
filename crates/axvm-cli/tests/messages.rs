//! Refusals and failures say what happened and what to do, each in its own words (issue
//! 10, item 6): a region without READ and KVM's memory-slot limit get different advice, and
//! a vCPU KVM gave up on is reported as KVM said it (exit reason, sub-error, data, registers,
//! the guest's instruction), not as a Rust debug dump.

mod common;

use common::{assert_refused, raw_guest, realmode_with, replace, require_kvm, run, Scratch};

fn a_region_without_read_is_told_to_add_read() {
    require_kvm();
    let scratch = Scratch::new("msg-no-read");
    let config = realmode_with(&scratch, |text| {
        replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0],",
            "[0x0, 0x10_0000, 0x7, 0], [0x20_0000, 0x1000, 0x2, 0],",
        )
    });
    let line = assert_refused(&run(&config), "kernel.memory_regions[1]");
    assert!(line.contains("add READ (0x1) to its flags"), "{line}");
    for wrong in ["smaller", "split", "move it", "slots"] {
        assert!(
            !line.contains(wrong),
            "{wrong:?} is no advice for it: {line}"
        );
    }
}

fn a_region_above_the_address_width_is_told_to_move_below_it() {
    require_kvm();
    let scratch = Scratch::new("msg-high");
    let config = realmode_with(&scratch, |text| {
        replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0],",
            "[0x0, 0x10_0000, 0x7, 0], [0xf_ffff_ffff_f000, 0x2000, 0x7, 0],",
        )
    });
    let line = assert_refused(&run(&config), "kernel.memory_regions[1]");
    assert!(line.contains("guest-physical address space"), "{line}");
    assert!(line.contains("move it below"), "{line}");
    assert!(!line.contains("READ"), "{line}");
}

/// `jmp 0x9000:0`: code at 0x90000, where the config has no RAM. KVM cannot fetch the
/// instruction and gives up on the vCPU with an emulation failure.
const JUMP_OUT_OF_RAM: &[u8] = &[0xea, 0x00, 0x00, 0x00, 0x90];

fn kvm_giving_up_on_a_vcpu_is_reported_as_kvm_said_it() {
    require_kvm();
    let scratch = Scratch::new("msg-internal");
    let config = raw_guest(&scratch, JUMP_OUT_OF_RAM);
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0],",
            "[0x0, 0x8_0000, 0x7, 0],",
        ),
    )
    .expect("config");
    let output = run(&config);
    assert_eq!(output.code(), 1, "{output:#?}");
    let line = output.stderr.lines().last().unwrap_or_default();
    for want in [
        "vCPU 0",
        "KVM_EXIT_INTERNAL_ERROR (0x11)",
        "sub-error 0x1 KVM_INTERNAL_ERROR_EMULATION",
        "data [",
        "RIP 0x0 CS 0x9000 (base 0x90000)",
        "guest code at RIP 0x0 (real mode): 0x90000 is not in guest RAM",
    ] {
        assert!(line.contains(want), "{want:?} is not in {line}");
    }
    assert!(!line.contains("InternalError {"), "{line}");
}

/// Real mode: DS = 0xa000 (no RAM, no device there), `mov word [0], 0x2a` at 0x8005, a read
/// back, and the read byte (zero) sent to the exit port.
const MMIO_WRITE_THEN_EXIT: &[u8] = &[
    0xb8, 0x00, 0xa0, // mov ax, 0xa000
    0x8e, 0xd8, // mov ds, ax
    0xc7, 0x06, 0x00, 0x00, 0x2a, 0x00, // 0x8005: mov word [0], 0x2a
    0xa0, 0x00, 0x00, // 0x800b: mov al, [0]
    0xe6, 0xf4, // out 0xf4, al
];

/// The debug line of an unclaimed access names the instruction that made it, though KVM
/// exits from an MMIO write only once it is done, with RIP at the next instruction.
fn an_unclaimed_mmio_write_names_its_own_instruction() {
    require_kvm();
    let scratch = Scratch::new("msg-mmio-write");
    let config = raw_guest(&scratch, MMIO_WRITE_THEN_EXIT);
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0],",
            "[0x0, 0x8_0000, 0x7, 0],",
        ),
    )
    .expect("config");
    let output = common::axvm(&["-vv".as_ref(), "run".as_ref(), config.as_os_str()]);
    assert_eq!(output.code(), 0, "{output:#?}");
    let line = output
        .stderr
        .lines()
        .find(|line| line.contains("write at MMIO 0xa0000") && line.contains("guest at"))
        .unwrap_or_else(|| panic!("no line for the write: {output:#?}"));
    assert!(
        line.ends_with(
            "guest at RIP 0x800b (real mode), past the access: mov word ptr [0],2Ah at 0x8005"
        ),
        "{line}"
    );
    let read = output
        .stderr
        .lines()
        .find(|line| line.contains("read at MMIO 0xa0000") && line.contains("guest at"));
    if let Some(read) = read {
        // A read waits for its value: RIP is still at it.
        assert!(
            read.contains("RIP 0x800b (real mode): mov al,[0]"),
            "{read}"
        );
    }
}

axvm_test_harness::main!(
    an_unclaimed_mmio_write_names_its_own_instruction,
    a_region_without_read_is_told_to_add_read,
    a_region_above_the_address_width_is_told_to_move_below_it,
    kvm_giving_up_on_a_vcpu_is_reported_as_kvm_said_it,
);
