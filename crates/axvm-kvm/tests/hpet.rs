//! The emulated HPET as a guest uses it: the HPET guest, configured as the ArceOS
//! hypervisor's x86 configs are (IOAPIC, local APIC and HPET passed through), finds the HPET
//! in ACPI, calibrates it against the ACPI PM timer, takes timer 0's periodic interrupts on
//! IRQ 0 with the PIT silenced, timer 1's one-shot on IRQ 8 and timer 2's level status,
//! then powers off through port 0x604, ending the VM with status 0: with and without the
//! sandbox (whose timer thread may only raise lines). Without the HPET's pass-through the VM
//! has no HPET, and the guest says it finds no table.

mod common;

use axvm::device::UnclaimedAccessPolicy;
use axvm::AxVMConfig;
use axvm_kvm::{BootImages, KvmVm, VmOptions, VmOutcome};
use common::{options, parse_config, require_kvm, run_bounded, Console};

/// Runs the HPET guest under `config`; its outcome and console.
fn run_hpet_guest(config: AxVMConfig, sandbox: bool) -> (VmOutcome, String) {
    let console = Console::default();
    let images = BootImages {
        kernel: axvm_guests::HPET.to_vec(),
        ..Default::default()
    };
    let options = VmOptions {
        sandbox,
        ..options(&console, UnclaimedAccessPolicy::Error)
    };
    let vm = KvmVm::create(config, &images, options)
        .unwrap_or_else(|err| panic!("cannot create the VM: {err}"));
    let outcome = run_bounded(vm, &console);
    let text = console.text();
    let outcome = outcome.unwrap_or_else(|err| panic!("{err}; console:\n{text}"));
    (outcome, text)
}

/// Every line the guest prints when all is well, in order.
const LINES: &[&str] = &[
    "hpet: ACPI HPET table: registers at 0xfed00000, 3 comparators, legacy replacement capable",
    "hpet: rev 1, 3 timers, 64-bit counter, legacy replacement capable, period 10000000 fs",
    "hpet: halted counter reads back what was written",
    "hpet: counter agrees with the ACPI PM timer within 5% over 100 ms",
    "hpet: timer 0 periodic every 10 ms on IRQ 0 (IOAPIC pin 2), PIT silenced: 20 periods, none early",
    "hpet: timer 1 one-shot on IRQ 8 (IOAPIC pin 8): one interrupt, not before its deadline",
    "hpet: timer 2 level-triggered, 32-bit: status bit set at its deadline, cleared by writing 1",
    "hpet: all checks passed",
    "hpet: powering off: 0x2000 (SLP_EN, SLP_TYP 0) to PM1a_CNT at port 0x604",
];

fn assert_passed(sandbox: bool) {
    require_kvm();
    let (outcome, console) = run_hpet_guest(parse_config(axvm_guests::HPET_CONFIG), sandbox);
    assert_eq!(outcome, VmOutcome::Exited(0), "console:\n{console}");
    let printed: Vec<&str> = console.lines().collect();
    assert_eq!(printed, LINES, "console:\n{console}");
}

fn the_hpet_guest_calibrates_takes_interrupts_and_powers_off() {
    assert_passed(false);
}

fn the_hpet_guest_passes_in_the_sandbox() {
    assert_passed(true);
}

fn without_the_pass_through_the_vm_has_no_hpet() {
    require_kvm();
    let mut config = parse_config(axvm_guests::HPET_CONFIG);
    config
        .pass_through_devices
        .retain(|device| device.name != "HPET");
    assert_eq!(config.pass_through_devices.len(), 2, "the APIC rows stay");
    // Unclaimed accesses are errors here: the guest must stop at the missing table, before
    // it touches 0xfed00000.
    let (outcome, console) = run_hpet_guest(config, false);
    assert_eq!(outcome, VmOutcome::Exited(2), "console:\n{console}");
    assert!(
        console.contains("FAIL: no ACPI HPET table"),
        "console:\n{console}"
    );
}

axvm_test_harness::main!(
    the_hpet_guest_calibrates_takes_interrupts_and_powers_off,
    the_hpet_guest_passes_in_the_sandbox,
    without_the_pass_through_the_vm_has_no_hpet,
);
