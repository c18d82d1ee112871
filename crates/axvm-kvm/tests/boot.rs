//! How vCPUs start: the `BootPlan` chosen from the image format (raw → real mode at the
//! config's entry, ELF64 → long mode at the ELF entry), and the register state a guest
//! actually finds there, checked by tiny guests that exit with a status computed from it.

mod common;

use axvm::device::UnclaimedAccessPolicy;
use axvm::GuestPhysAddr;
use axvm_kvm::{CpuMode, ImageFormat, VmOutcome};
use common::guests::{elf64, EXIT_1, EXIT_42, LONG_MODE_OK, LONG_MODE_STATE, REAL_MODE_STATE};
use common::{boot_raw, built, create, options, parse_config, raw_builder, require_kvm, Console};

fn demo_plan_is_elf64_in_long_mode_at_the_elf_entry() {
    require_kvm();
    let console = Console::default();
    let vm = create(
        parse_config(axvm_guests::DEMO_CONFIG),
        axvm_guests::DEMO,
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    let plan = vm.plan();
    assert_eq!(plan.format, ImageFormat::Elf64);
    assert!(
        matches!(plan.bsp.mode, CpuMode::Long { .. }),
        "mode {:?}",
        plan.bsp.mode
    );
    assert_eq!(plan.bsp_entry, GuestPhysAddr::new(0x20_0000));
    assert_eq!(plan.ap_entry, plan.bsp_entry);
}

fn real_mode_plan_is_raw_in_real_mode_at_the_config_entry() {
    require_kvm();
    let console = Console::default();
    let vm = create(
        parse_config(axvm_guests::REALMODE_CONFIG),
        axvm_guests::REALMODE,
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    let plan = vm.plan();
    assert_eq!(plan.format, ImageFormat::Raw);
    assert_eq!(plan.bsp.mode, CpuMode::Real);
    assert_eq!(plan.bsp_entry, GuestPhysAddr::new(0x8000));
}

fn real_mode_entry_has_zero_segments_and_ip_at_the_entry() {
    require_kvm();
    let (outcome, _) = boot_raw(REAL_MODE_STATE);
    assert_eq!(
        outcome,
        VmOutcome::Exited(7),
        "CS, DS, ES, SS must be 0 and execution must start at 0x8000"
    );
}

fn raw_image_starts_at_the_config_entry_point() {
    require_kvm();
    // The image holds two stubs: EXIT_1 at the load address, EXIT_42 right after it. Only
    // entering at the config's entry_point gives 42. The second load address is above 64 KiB,
    // where CS must carry part of the address.
    let image = [EXIT_1, EXIT_42].concat();
    for load in [0x8000u64, 0x1_2340] {
        let entry = load + EXIT_1.len() as u64;
        let config = built(raw_builder(0x10_0000).kernel_at(load).entry(entry));
        let console = Console::default();
        let vm = create(
            config,
            &image,
            options(&console, UnclaimedAccessPolicy::Ignore),
        );
        assert_eq!(vm.plan().bsp_entry, GuestPhysAddr::new(entry));
        let outcome = common::run_bounded(vm, &console)
            .unwrap_or_else(|err| panic!("load {load:#x}: the VM failed: {err}"));
        assert_eq!(
            outcome,
            VmOutcome::Exited(42),
            "load {load:#x}, entry {entry:#x}"
        );
    }
}

fn elf_guest_starts_in_long_mode_at_its_elf_entry() {
    require_kvm();
    // The config's entry_point (0x8000, inside RAM) differs from the ELF entry: the ELF
    // entry wins, as for the demo.
    let elf = elf64(
        0x20_0000,
        LONG_MODE_STATE.len() as u64,
        0x20_0000,
        LONG_MODE_STATE,
    );
    let config = built(raw_builder(0x100_0000).kernel_at(0x20_0000).entry(0x8000));
    let console = Console::default();
    let vm = create(
        config,
        &elf,
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    assert_eq!(vm.plan().format, ImageFormat::Elf64);
    assert_eq!(vm.plan().bsp_entry, GuestPhysAddr::new(0x20_0000));
    let outcome = common::run_bounded(vm, &console).expect("the VM failed");
    assert_eq!(
        outcome,
        VmOutcome::Exited(LONG_MODE_OK),
        "CS must be 0x8 with paging and PAE on"
    );
}

axvm_test_harness::main!(
    demo_plan_is_elf64_in_long_mode_at_the_elf_entry,
    real_mode_plan_is_raw_in_real_mode_at_the_config_entry,
    real_mode_entry_has_zero_segments_and_ip_at_the_entry,
    raw_image_starts_at_the_config_entry_point,
    elf_guest_starts_in_long_mode_at_its_elf_entry,
);
