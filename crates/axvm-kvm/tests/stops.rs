//! Every stop explains itself (issue 11, items 6 and 7). Each test runs a tiny guest that
//! shows one failure and checks the report's cause line: a guest that prints and then spins
//! in place (the watchdog names the spin and its instruction); and, without any diagnostic
//! asked for, VMs that halt for good or triple-fault, whose [`KvmVm::stop_report`] names the
//! entry point that holds zeros, the empty or all-zero IDT, the BIOS call through an empty
//! IVT vector, and the last instruction before the fault.

mod common;

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use axvm::device::UnclaimedAccessPolicy;
use axvm::AxVMConfig;
use axvm_kvm::{DiagnosticsOptions, KvmVm, VmOptions, VmOutcome};
use common::{built, create, options, raw_builder, raw_config, require_kvm, Console, DEADLINE};

/// Prints `spinning now` to COM1, then spins in place with interrupts off:
/// ```text
/// 8000  cli
/// 8001  mov dx, 0x3f8
/// 8004  mov si, 0x8011        ; the message
/// 8007  lodsb
/// 8008  test al, al
/// 800a  jz 0x800f
/// 800c  out dx, al
/// 800d  jmp 0x8007
/// 800f  jmp 0x800f            ; jmp $
/// 8011  "spinning now\n", 0
/// ```
const PRINT_THEN_SPIN: &[u8] = &[
    0xfa, 0xba, 0xf8, 0x03, 0xbe, 0x11, 0x80, 0xac, 0x84, 0xc0, 0x74, 0x03, 0xee, 0xeb, 0xf8, 0xeb,
    0xfe, 0x73, 0x70, 0x69, 0x6e, 0x6e, 0x69, 0x6e, 0x67, 0x20, 0x6e, 0x6f, 0x77, 0x0a, 0x00,
];

/// Prints `w`, then waits with interrupts off for a flag no one sets:
/// ```text
/// 8000  cli
/// 8001  mov dx, 0x3f8
/// 8004  mov al, 'w'
/// 8006  out dx, al
/// 8007  cmp byte [0x9000], 0
/// 800c  je 0x8007
/// 800e  hlt
/// ```
const PRINT_THEN_POLL_MEMORY: &[u8] = &[
    0xfa, 0xba, 0xf8, 0x03, 0xb0, 0x77, 0xee, 0x80, 0x3e, 0x00, 0x90, 0x00, 0x74, 0xf9, 0xf4,
];

/// `cli; hlt`.
const CLI_HLT: &[u8] = &[0xfa, 0xf4];

/// Switches to flat 32-bit protected mode, loads IDTR = {limit at 0x4e, base 0x1000} (RAM
/// that holds zeros) and runs the 4-byte fault at 0x802b:
/// ```text
/// 8000  cli
/// 8001  lgdt [0x8048]                 ; null, code 0x08, data 0x10 at 0x8030
/// 8007  mov eax, cr0; or al, 1; mov cr0, eax
/// 800f  jmp 0x08:0x8017
/// 8017  mov ax, 0x10; mov ds, ax; mov ss, ax; mov esp, 0x7000
/// 8024  lidt [0x804e]
/// 802b  (the fault)
/// ```
const PROTECTED_MODE_PROLOGUE: [u8; 0x54] = [
    0xfa, 0x66, 0x0f, 0x01, 0x16, 0x48, 0x80, 0x0f, 0x20, 0xc0, 0x0c, 0x01, 0x0f, 0x22, 0xc0, 0x66,
    0xea, 0x17, 0x80, 0x00, 0x00, 0x08, 0x00, 0x66, 0xb8, 0x10, 0x00, 0x8e, 0xd8, 0x8e, 0xd0, 0xbc,
    0x00, 0x70, 0x00, 0x00, 0x0f, 0x01, 0x1d, 0x4e, 0x80, 0x00, 0x00, 0x90, 0x90, 0x90, 0x90, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x9a, 0xcf, 0x00,
    0xff, 0xff, 0x00, 0x00, 0x00, 0x92, 0xcf, 0x00, 0x17, 0x00, 0x30, 0x80, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x10, 0x00, 0x00,
];
/// `ud2` (and two `nop`s).
const UD2: [u8; 4] = [0x0f, 0x0b, 0x90, 0x90];
/// `xor ecx, ecx; div ecx`: a division by zero.
const DIVIDE_BY_ZERO: [u8; 4] = [0x31, 0xc9, 0xf7, 0xf1];

/// After [`PROTECTED_MODE_PROLOGUE`] (whose 4 bytes at 0x802b jump here, to 0x8054): maps
/// the first GiB with one 1 GiB page and turns on long-mode paging, then exits with status
/// 42 through code fetched through that page, as ArceOS and NimbOS boot:
/// ```text
/// 8054  mov dword [0x10000], 0x11003   ; PML4[0] -> the PDPT at 0x11000
/// 805e  mov dword [0x11000], 0x83      ; PDPT[0]: 1 GiB page at 0 (present, writable, PS)
/// 8068  mov eax, cr4; or eax, 0x20; mov cr4, eax          ; PAE
/// 8071  mov eax, 0x10000; mov cr3, eax
/// 8079  mov ecx, 0xc0000080; rdmsr; or eax, 0x100; wrmsr ; EFER.LME
/// 8087  mov eax, cr0; or eax, 0x80000000; mov cr0, eax    ; paging: long (compatibility) mode
/// 8092  mov al, 42; out 0xf4, al; hlt
/// ```
const GIB_PAGE_LONG_MODE: [u8; 67] = [
    0xc7, 0x05, 0x00, 0x00, 0x01, 0x00, 0x03, 0x10, 0x01, 0x00, 0xc7, 0x05, 0x00, 0x10, 0x01, 0x00,
    0x83, 0x00, 0x00, 0x00, 0x0f, 0x20, 0xe0, 0x83, 0xc8, 0x20, 0x0f, 0x22, 0xe0, 0xb8, 0x00, 0x00,
    0x01, 0x00, 0x0f, 0x22, 0xd8, 0xb9, 0x80, 0x00, 0x00, 0xc0, 0x0f, 0x32, 0x0d, 0x00, 0x01, 0x00,
    0x00, 0x0f, 0x30, 0x0f, 0x20, 0xc0, 0x0d, 0x00, 0x00, 0x00, 0x80, 0x0f, 0x22, 0xc0, 0xb0, 0x2a,
    0xe6, 0xf4, 0xf4,
];
/// `jmp 0x8054` from 0x802b (and two `nop`s).
const JUMP_PAST_PROLOGUE: [u8; 4] = [0xeb, 0x27, 0x90, 0x90];

/// [`PROTECTED_MODE_PROLOGUE`] with an IDT limit of `idt_limit` and `fault` at 0x802b.
fn protected_mode_fault(idt_limit: u16, fault: [u8; 4]) -> Vec<u8> {
    let mut image = PROTECTED_MODE_PROLOGUE.to_vec();
    image[0x2b..0x2f].copy_from_slice(&fault);
    image[0x4e..0x50].copy_from_slice(&idt_limit.to_le_bytes());
    image
}

/// Runs `image` with the watchdog on (1 s); returns the report.
fn watchdog_report_of(image: &[u8], printed: &str) -> String {
    let console = Console::default();
    let options = VmOptions {
        diagnostics: DiagnosticsOptions {
            watchdog: Some(Duration::from_secs(1)),
            ..Default::default()
        },
        ..options(&console, UnclaimedAccessPolicy::Ignore)
    };
    let vm = create(raw_config(), image, options);
    let (outcome, report) = finish(vm, &console);
    assert_eq!(outcome, VmOutcome::NoProgress);
    assert_eq!(console.text(), printed);
    report.expect("the watchdog's report")
}

/// Runs `image` under `config` without any diagnostic; returns the outcome and the report.
fn stop_of(config: AxVMConfig, image: &[u8]) -> (VmOutcome, String) {
    let console = Console::default();
    let vm = create(
        config,
        image,
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    assert!(vm.diagnostics().is_none());
    let (outcome, report) = finish(vm, &console);
    (outcome, report.expect("a halt or a reset leaves a report"))
}

/// Runs `vm` to its end on another thread (failing the test after [`DEADLINE`]); returns
/// the outcome and [`KvmVm::stop_report`].
fn finish(vm: KvmVm, console: &Console) -> (VmOutcome, Option<String>) {
    let vm = Arc::new(vm);
    let (done, ended) = mpsc::channel();
    let runner = Arc::clone(&vm);
    thread::spawn(move || {
        let _ = done.send(runner.run());
    });
    let Ok(result) = ended.recv_timeout(DEADLINE) else {
        vm.vm().shutdown();
        panic!(
            "the VM still ran after {DEADLINE:?}; console {:?}",
            console.text()
        );
    };
    let outcome =
        result.unwrap_or_else(|err| panic!("the VM failed: {err}; console {:?}", console.text()));
    let report = vm.stop_report();
    if let Some(report) = &report {
        eprintln!("{outcome:?}:\n{report}");
    }
    (outcome, report)
}

/// Whether KVM resets a vCPU before it reports its triple fault: on AMD SVM, KVM puts the
/// vCPU through INIT (the VMCB is undefined after a shutdown), so the report can only say
/// that it shows the reset state. kvm_pvm and Intel VMX leave it where it faulted.
fn kvm_resets_on_shutdown() -> bool {
    std::path::Path::new("/sys/module/kvm_amd").exists()
        && !axvm_kvm::testing::is_software_nested_kvm()
}

/// Asserts the causes of a triple fault: `idt` and `instruction` where KVM leaves the vCPU
/// where it faulted, the reset state where it does not.
fn assert_fault_named(report: &str, idt: &str, instruction: &str) {
    if kvm_resets_on_shutdown() {
        assert_names(report, "vCPU 0 shows the reset state (CS:IP F000:FFF0)");
        return;
    }
    assert_names(report, idt);
    assert_names(report, instruction);
}

fn assert_names(report: &str, words: &str) {
    assert!(
        report.contains(words),
        "the report should say `{words}`:\n{report}"
    );
}

/// Item 6: the simplest hang, a line then `jmp $`. The watchdog names the spin, where it
/// is, its instruction, and that interrupts are off.
fn a_spin_after_printing_is_named_by_the_watchdog() {
    require_kvm();
    let report = watchdog_report_of(PRINT_THEN_SPIN, "spinning now\n");
    assert_names(
        &report,
        "vCPU 0 spins at RIP 0x800f (jmp short 800Fh) without exits, interrupts off",
    );
    assert!(!report.contains("no known cause fits"), "{report}");
}

/// A small loop without exits (polling memory) is a spin too: its two RIP samples are a few
/// bytes apart, and no exit came between them.
fn a_small_loop_without_exits_is_a_spin() {
    require_kvm();
    let report = watchdog_report_of(PRINT_THEN_POLL_MEMORY, "w");
    assert_names(&report, "vCPU 0 spins at RIP 0x800");
    assert_names(&report, "without exits, interrupts off");
}

/// A raw image loaded one 16-byte segment, or a page, above its entry: the vCPU runs
/// through zeros (`add [bx+si], al`) into the image, which halts. The report blames the
/// entry and says where the image is.
fn an_entry_below_the_image_is_named_when_the_guest_halts() {
    require_kvm();
    for load in [0x8010, 0x9000] {
        let config = built(raw_builder(0x10_0000).kernel_at(load).entry(0x8000));
        let (outcome, report) = stop_of(config, CLI_HLT);
        assert_eq!(outcome, VmOutcome::AllHalted);
        assert_names(
            &report,
            "entry point 0x8000 holds zeros: no image was loaded there",
        );
        assert_names(
            &report,
            &format!("the kernel image was loaded at {load:#x}"),
        );
        assert_names(&report, "vCPU 0 halted with interrupts off");
        assert_names(&report, "vCPU 0: halted, real mode");
    }
}

/// IDTR limit 0, then `ud2`: #UD cannot be delivered, nor the #GP and #DF after it. (In
/// real mode kvm_pvm's emulator ignores the IVT's limit and jumps through vector 6 at
/// 0000:0000 instead of faulting, so these guests switch to protected mode first.)
fn an_empty_idt_and_the_faulting_instruction_are_named() {
    require_kvm();
    let (outcome, report) = stop_of(raw_config(), &protected_mode_fault(0, UD2));
    assert_eq!(outcome, VmOutcome::GuestReset { vcpu: 0 });
    assert_fault_named(
        &report,
        "vCPU 0's IDT is empty (IDTR base 0x1000, limit 0x0)",
        "vCPU 0 triple-faulted at RIP 0x802b (protected mode): `ud2`, the last instruction before the fault",
    );
    assert_names(&report, "system-down at RIP 0x");
}

/// A full-size IDT of zeros, then a division by zero.
fn an_idt_of_zero_gates_is_named() {
    require_kvm();
    let (outcome, report) = stop_of(raw_config(), &protected_mode_fault(0x7ff, DIVIDE_BY_ZERO));
    assert_eq!(outcome, VmOutcome::GuestReset { vcpu: 0 });
    assert_fault_named(
        &report,
        "vCPU 0's IDT at 0x1000 (limit 0x7ff) holds only zeros in its exception gates",
        "(protected mode): `div ecx`, the last instruction",
    );
}

/// A boot sector at 0x7c00 prints with the video BIOS (`mov ax, 0x0e41; int 0x10`). No BIOS
/// set IVT vector 0x10, so the CPU jumps to 0000:0000; this image puts `cli; hlt` there
/// (without it the zeros would run back into the boot sector, forever).
fn a_bios_call_through_an_empty_ivt_vector_is_named() {
    require_kvm();
    let mut image = vec![0u8; 0x7c00];
    image[..2].copy_from_slice(CLI_HLT);
    // 7c00: cli; mov ax, 0x0e41; int 0x10; hlt
    image.extend_from_slice(&[0xfa, 0xb8, 0x41, 0x0e, 0xcd, 0x10, 0xf4]);
    let config = built(raw_builder(0x10_0000).kernel_at(0).entry(0x7c00));
    let (outcome, report) = stop_of(config, &image);
    assert_eq!(outcome, VmOutcome::AllHalted);
    assert_names(
        &report,
        "vCPU 0 called int 0x10 (video services, AH=0x0e: teletype output) at 0x7c04, but IVT vector 0x10 is 0000:0000: the guest expects BIOS services axvm does not provide",
    );
}

/// Whether this host's KVM offers guests 1 GiB pages (`axvm check`'s finding).
fn host_offers_gib_pages() -> bool {
    axvm_kvm::check_host()
        .findings
        .iter()
        .any(|finding| finding.subject == "1 GiB pages (pdpe1gb)" && finding.ok)
}

/// Code mapped with a 1 GiB page, as ArceOS and NimbOS map themselves: where KVM offers 1 GiB
/// pages the guest exits 42; where it does not (kvm_pvm), its first fetch through the page
/// faults on the reserved PS bit, the empty IDT makes that a triple fault, and the report
/// names the page as the cause, first.
fn code_behind_a_gib_page_is_named_where_kvm_offers_none() {
    require_kvm();
    let mut image = protected_mode_fault(0, JUMP_PAST_PROLOGUE);
    image.extend_from_slice(&GIB_PAGE_LONG_MODE);
    let console = Console::default();
    let vm = create(
        raw_config(),
        &image,
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    let (outcome, report) = finish(vm, &console);
    if host_offers_gib_pages() {
        assert_eq!(outcome, VmOutcome::Exited(42), "{report:?}");
        return;
    }
    assert_eq!(outcome, VmOutcome::GuestReset { vcpu: 0 });
    let report = report.expect("a reset leaves a report");
    let cause = report
        .lines()
        .find(|line| line.trim_start().starts_with("- "))
        .unwrap_or_default();
    assert!(
        cause.contains("vCPU 0's page tables map RIP 0x8092 with a 1 GiB page (guest-physical 0x0), but this host's KVM offers no 1 GiB pages"),
        "the first cause should be the 1 GiB page:\n{report}"
    );
}

/// A guest that ends with an exit status leaves no report.
fn an_exit_status_leaves_no_report() {
    require_kvm();
    let console = Console::default();
    // mov al, 3; out 0xf4, al
    let vm = create(
        raw_config(),
        &[0xb0, 0x03, 0xe6, 0xf4],
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    let (outcome, report) = finish(vm, &console);
    assert_eq!(outcome, VmOutcome::Exited(3));
    assert_eq!(report, None);
}

axvm_test_harness::main!(
    a_spin_after_printing_is_named_by_the_watchdog,
    a_small_loop_without_exits_is_a_spin,
    an_entry_below_the_image_is_named_when_the_guest_halts,
    an_empty_idt_and_the_faulting_instruction_are_named,
    an_idt_of_zero_gates_is_named,
    a_bios_call_through_an_empty_ivt_vector_is_named,
    code_behind_a_gib_page_is_named_where_kvm_offers_none,
    an_exit_status_leaves_no_report,
);
