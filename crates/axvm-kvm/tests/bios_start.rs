//! The ArceOS hypervisor's x86 start (issue 14, item 2): a config that loads a BIOS image
//! holding `entry_point` starts vCPU 0 there in real mode and copies the kernel as it is,
//! though the kernel has a Multiboot header; a BIOS image elsewhere is only copied, and the
//! kernel's format decides as before. The guests: `bios-stub` (what axvm-bios-x86 does) and
//! `biosboot` (checks EAX, EBX, ESP, CR0 and its stack, and which entry ran).

mod common;

use axvm::{AxVMConfig, GuestPhysAddr};
use axvm_kvm::{BootImages, CpuMode, ImageFormat, KvmVm, StartPolicy, VmOutcome, VmPlan};
use common::{options, parse_config, require_kvm, run_bounded, Console};

use axvm::device::UnclaimedAccessPolicy;

/// The upstream-style config, with `edit` (from, to) applied.
fn config(edit: Option<(&str, &str)>) -> AxVMConfig {
    let text = match edit {
        Some((from, to)) => {
            assert!(axvm_guests::BIOSBOOT_CONFIG.contains(from), "no {from:?}");
            axvm_guests::BIOSBOOT_CONFIG.replace(from, to)
        }
        None => axvm_guests::BIOSBOOT_CONFIG.to_string(),
    };
    parse_config(&text)
}

fn images() -> BootImages {
    BootImages {
        kernel: axvm_guests::BIOSBOOT.to_vec(),
        bios: Some(axvm_guests::BIOS_STUB.to_vec()),
        kernel_name: Some("biosboot".into()),
        ..BootImages::default()
    }
}

/// Creates and runs the VM; returns its plan, how it ended and what it printed.
fn boot(config: AxVMConfig) -> (axvm_kvm::BootPlan, VmOutcome, String) {
    let console = Console::default();
    let vm = KvmVm::create(
        config,
        &images(),
        options(&console, UnclaimedAccessPolicy::Ignore),
    )
    .unwrap_or_else(|err| panic!("cannot create the VM: {err}"));
    let plan = vm.plan();
    let outcome = run_bounded(vm, &console)
        .unwrap_or_else(|err| panic!("the VM failed: {err}; console: {:?}", console.text()));
    (plan, outcome, console.text())
}

/// The plan, with no VM: the BIOS start with its reason, the kernel at its load address as
/// it is, no boot-protocol data, no command line.
fn the_plan_is_the_bios_start_without_a_vm() {
    let plan = VmPlan::for_config(&config(None), &images()).unwrap();
    assert_eq!(plan.format, ImageFormat::Bios);
    assert_eq!(plan.bsp_entry, GuestPhysAddr::new(0x8000));
    assert!(plan.start.starts_with("BIOS start"), "{}", plan.start);
    assert!(
        plan.start
            .contains("its Multiboot header is left to the BIOS"),
        "{}",
        plan.start
    );
    let kernel = plan
        .images
        .iter()
        .find(|image| image.field == Some("kernel.kernel_path"))
        .unwrap();
    let len = axvm_guests::BIOSBOOT.len() as u64;
    assert_eq!((kernel.start, kernel.end), (0x20_0000, 0x20_0000 + len));
    assert_eq!(plan.cmdline, None);
    assert!(
        plan.boot_data
            .iter()
            .all(|range| !range.what.contains("GDT")
                && !range.what.contains("ACPI")
                && !range.what.contains("Multiboot")),
        "{:?}",
        plan.boot_data
    );
}

/// The kernel, entered by the stub, finds what the stub set: EAX magic, EBX 0, ESP
/// 0x7000, protected mode without paging, and a stack it can push to.
fn the_stub_enters_the_kernel_as_axvisor_does() {
    require_kvm();
    let (plan, outcome, console) = boot(config(None));
    assert_eq!(plan.format, ImageFormat::Bios);
    assert_eq!(plan.bsp_entry, GuestPhysAddr::new(0x8000));
    assert_eq!(plan.bsp.mode, CpuMode::Real);
    assert_eq!(plan.bsp.start, StartPolicy::AtBoot);
    assert_eq!(plan.info, None);
    assert_eq!(outcome, VmOutcome::Exited(0), "console:\n{console}");
    assert_eq!(
        console,
        "biosboot: entered at 0x200000, the BIOS stub's jump\n\
         biosboot: eax 0x2badb002 ebx 0x0 esp 0x7000\n\
         biosboot: protected mode, paging off\n\
         biosboot: stack usable at entry\n\
         biosboot: all checks passed\n"
    );
}

/// With more vCPUs only vCPU 0 starts in the BIOS; the others wait for INIT-SIPI-SIPI, as
/// axvisor starts only the primary vCPU (the guest never wakes them, and still passes).
fn other_vcpus_wait_for_a_sipi() {
    require_kvm();
    let two = AxVMConfig {
        cpu_num: 2,
        phys_cpu_sets: Some(vec![1, 1]),
        ..config(None)
    };
    let (plan, outcome, console) = boot(two);
    assert_eq!(plan.ap.start, StartPolicy::WaitForSipi);
    assert_eq!(outcome, VmOutcome::Exited(0), "console:\n{console}");
    assert_eq!(
        console.matches("biosboot: entered at").count(),
        1,
        "only vCPU 0 ran the stub:\n{console}"
    );
    assert!(
        console.ends_with("biosboot: all checks passed\n"),
        "{console}"
    );
}

/// A BIOS image that does not hold `entry_point` is only copied: the kernel's Multiboot
/// header decides, as before, and the kernel says it was entered as Multiboot (with EBX the
/// information block and ESP the stack axvm gives Multiboot kernels).
fn a_bios_elsewhere_leaves_format_detection_as_it_was() {
    require_kvm();
    let elsewhere = config(Some(("entry_point = 0x8000", "entry_point = 0x20_0000")));
    let plan = VmPlan::for_config(&elsewhere, &images()).unwrap();
    assert_eq!(plan.format, ImageFormat::Multiboot);
    assert!(
        plan.start.contains("does not hold entry_point 0x200000"),
        "{}",
        plan.start
    );
    let (boot, outcome, console) = boot(elsewhere);
    assert_eq!(boot.format, ImageFormat::Multiboot);
    assert_eq!(outcome, VmOutcome::Exited(0x7d), "console:\n{console}");
    let info = boot.info.expect("a Multiboot information block").as_u64();
    assert!(
        console.contains(&format!(
            "biosboot: FAIL: entered at the Multiboot header's entry (eax 0x2badb002 ebx {info:#x} esp 0x7000)"
        )),
        "{console}"
    );
}

/// Without a BIOS image the kernel is a Multiboot kernel, as it always was.
fn no_bios_image_is_multiboot() {
    let without = BootImages {
        bios: None,
        ..images()
    };
    let plan = VmPlan::for_config(&config(None), &without).unwrap();
    assert_eq!(plan.format, ImageFormat::Multiboot);
    assert!(plan.start.starts_with("Multiboot: "), "{}", plan.start);
}

/// The `sipi` guest: vCPU 0, started the BIOS way, starts vCPU 1 with INIT-SIPI-SIPI through
/// its local APIC; a second SIPI is ignored. `scripts/svm-compat.sh` compares the same lines
/// under the SVM hypervisor, whose local APIC is `axvm-pc`'s.
fn a_waiting_ap_is_started_by_init_sipi_sipi() {
    require_kvm();
    let console = Console::default();
    let images = BootImages {
        kernel: axvm_guests::SIPI.to_vec(),
        bios: Some(axvm_guests::SIPI.to_vec()),
        kernel_name: Some("sipi".into()),
        ..BootImages::default()
    };
    let vm = KvmVm::create(
        parse_config(axvm_guests::SIPI_CONFIG),
        &images,
        options(&console, UnclaimedAccessPolicy::Ignore),
    )
    .unwrap_or_else(|err| panic!("cannot create the VM: {err}"));
    let outcome = run_bounded(vm, &console)
        .unwrap_or_else(|err| panic!("the VM failed: {err}; console: {:?}", console.text()));
    let text = console.text();
    assert_eq!(outcome, VmOutcome::Exited(0), "console:\n{text}");
    assert_eq!(
        text,
        "sipi: vCPU 0 sends INIT-SIPI-SIPI (vector 0x09) to APIC ID 1\n\
         sipi: vCPU 1 started at 0x9000\n\
         sipi: the second SIPI was ignored\n"
    );
}

axvm_test_harness::main!(
    a_waiting_ap_is_started_by_init_sipi_sipi,
    the_plan_is_the_bios_start_without_a_vm,
    the_stub_enters_the_kernel_as_axvisor_does,
    other_vcpus_wait_for_a_sipi,
    a_bios_elsewhere_leaves_format_detection_as_it_was,
    no_bios_image_is_multiboot,
);
