//! Kernels built for QEMU's PC, started by axvm the way QEMU starts them: the Multiboot kernel
//! (its command line, fw_cfg, the ACPI MADT, its ramdisk module, and its APs brought up with
//! INIT-SIPI-SIPI, with 1 and 4 vCPUs), the PVH kernel (as ELF64 and ELF32), each printing
//! the BIOS Data Area, CMOS and fw_cfg values QEMU's PC gives it, the bzImage with a ramdisk it
//! verifies, the timer guest (PIT interrupts through the IOAPIC at the right rate), and the
//! wake-up guest, halted with interrupts on until the host injects an interrupt from another
//! thread (and, with two vCPUs, woken by an IPI from the other vCPU).

mod common;

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use axvm::device::UnclaimedAccessPolicy;
use axvm::AxVMConfig;
use axvm_kvm::{BootImages, KvmVm, VmOutcome};
use common::{options, parse_config, require_kvm, run_bounded, Console, DEADLINE};

/// Creates a VM from a guest's config with its kernel, and the test ramdisk when the config
/// names one (as the `axvm` command would read it).
fn create(config: AxVMConfig, kernel: &[u8], console: &Console) -> KvmVm {
    create_with(config, kernel, None, console)
}

/// The kernel's name the tests pass, as `axvm run` passes a config's `kernel_path`: the
/// guests' configs name their images by the guest's name.
fn kernel_name(kernel: &[u8]) -> Option<String> {
    let named = [
        (axvm_guests::MULTIBOOT, "multiboot"),
        (axvm_guests::MULTIBOOT_LOW, "multiboot-low"),
    ];
    named
        .iter()
        .find(|(image, _)| *image == kernel)
        .map(|(_, name)| name.to_string())
}

fn create_with(
    config: AxVMConfig,
    kernel: &[u8],
    ramdisk: Option<&[u8]>,
    console: &Console,
) -> KvmVm {
    let images = BootImages {
        kernel: kernel.to_vec(),
        ramdisk: ramdisk.map(<[u8]>::to_vec),
        kernel_name: kernel_name(kernel),
        ..Default::default()
    };
    KvmVm::create(
        config,
        &images,
        options(console, UnclaimedAccessPolicy::Ignore),
    )
    .unwrap_or_else(|err| panic!("cannot create the VM: {err}"))
}

/// Boots a guest (with the test ramdisk) to its end and returns its console, asserting it
/// exited 0 without FAIL.
fn boot_guest(config: AxVMConfig, kernel: &[u8]) -> String {
    let console = Console::default();
    let vm = create_with(config, kernel, Some(axvm_guests::RAMDISK), &console);
    let outcome = run_bounded(vm, &console);
    let text = console.text();
    assert!(
        matches!(outcome, Ok(VmOutcome::Exited(0))),
        "the guest ended with {outcome:?}; console:\n{text}"
    );
    assert!(!text.contains("FAIL"), "console:\n{text}");
    text
}

fn assert_has_lines(console: &str, expected: &[&str]) {
    for want in expected {
        assert!(
            console.lines().any(|line| line == *want),
            "no line {want:?} in the console:\n{console}"
        );
    }
}

fn with_cpus(config: &str, cpu_num: usize) -> AxVMConfig {
    AxVMConfig {
        cpu_num,
        ..parse_config(config)
    }
}

/// The lines of `rt::firmware::report` for `cpus` CPUs and 128 MiB of RAM at 0: the BIOS
/// Data Area and EBDA as SeaBIOS fills them with axvm's devices, CMOS's memory sizes, and
/// fw_cfg's CPU counts and RAM-only `etc/e820`, as QEMU gives them for `-smp cpus -m 128M`.
fn firmware_lines(cpus: usize) -> Vec<String> {
    [
        "bda: COM 0x3f8 0x0 0x0 0x0, LPT 0x0 0x0 0x0, equipment 0x206",
        "bda: base memory 639 KiB, EBDA segment 0x9fc0 (1 KiB)",
        "bda: keyboard buffer 0x1e-0x3e head 0x1e tail 0x1e, flags 0x0 0x10",
        "bda: COM timeouts 10 0 0 0, hard disks 0, disk control 0xc0",
        "bda: timer ticks agree with the RTC",
        "cmos: base 640 KiB, extended 65535 KiB, above 16 MiB 1792 x 64 KiB",
        &format!("fw_cfg: {cpus} CPUs, max {cpus}"),
        "fw_cfg: e820 0x0 +0x8000000 type 1",
    ]
    .map(String::from)
    .to_vec()
}

/// `console`'s lines from the first `bda: ` line on, as many as [`firmware_lines`] has.
fn assert_firmware_lines(console: &str, cpus: usize) {
    let expected = firmware_lines(cpus);
    let got: Vec<&str> = console
        .lines()
        .skip_while(|line| !line.starts_with("bda: "))
        .take(expected.len())
        .collect();
    assert_eq!(got, expected, "console:\n{console}");
}

fn multiboot_kernel_sees_its_cmdline_memory_and_cpus_and_starts_its_aps() {
    require_kvm();
    for cpus in [1, 4] {
        let console = boot_guest(
            with_cpus(axvm_guests::MULTIBOOT_CONFIG, cpus),
            axvm_guests::MULTIBOOT,
        );
        assert_has_lines(
            &console,
            &[
                "multiboot: entry stack usable",
                "cmdline: multiboot console=ttyS0 axvm-compat",
                &format!("fw_cfg: {cpus} CPUs, 128 MiB"),
                &format!("ACPI: {cpus} CPUs"),
                &format!("APs started: {}", cpus - 1),
                &format!("module: {} bytes", axvm_guests::RAMDISK.len()),
                "multiboot: all checks passed",
            ],
        );
        assert_firmware_lines(&console, cpus);
    }
}

/// The Multiboot guest linked at 0x9000, over the PC layout's boot data area, as boot
/// loaders built as Multiboot kernels are: axvm moves its information after it, so it reads
/// its command line, memory map and module there (under QEMU, whose loader writes them at
/// 0x9500 and then loads the kernel over them, it cannot).
fn multiboot_kernel_linked_at_0x9000_reads_its_information() {
    require_kvm();
    let console = boot_guest(
        parse_config(axvm_guests::MULTIBOOT_CONFIG),
        axvm_guests::MULTIBOOT_LOW,
    );
    assert_has_lines(
        &console,
        &[
            "multiboot: entry stack usable",
            "cmdline: multiboot-low console=ttyS0 axvm-compat",
            "memory: mem_upper and mmap agree with fw_cfg",
            &format!("module: {} bytes", axvm_guests::RAMDISK.len()),
            "APs started: 3",
            "multiboot: all checks passed",
        ],
    );
    assert!(
        !console.contains("inside this image"),
        "console:\n{console}"
    );
}

/// The PVH guest with its ELF headers loaded read-only at 0xff000, inside the legacy area
/// below its 1 MiB text, as `ld -Ttext=0x100000` emits: it boots as the plain one does.
fn pvh_kernel_with_its_elf_headers_at_0xff000_boots() {
    require_kvm();
    let console = boot_guest(
        parse_config(axvm_guests::PVH_CONFIG),
        axvm_guests::PVH_LOWHDR,
    );
    assert_has_lines(
        &console,
        &[
            "cmdline: console=ttyS0 axvm-compat",
            "ACPI: 2 CPUs",
            "pvh: all checks passed",
        ],
    );
}

fn pvh_kernel_reads_its_start_info() {
    require_kvm();
    // The same program as an ELF64 and as an i386 ELF32: both boot through PVH.
    for kernel in [axvm_guests::PVH, axvm_guests::PVH_ELF32] {
        let console = boot_guest(parse_config(axvm_guests::PVH_CONFIG), kernel);
        assert_has_lines(
            &console,
            &[
                "pvh: start_info magic 0x336ec578 version 1",
                "cmdline: console=ttyS0 axvm-compat",
                &format!("module: {} bytes", axvm_guests::RAMDISK.len()),
                "pvh: all checks passed",
            ],
        );
        assert_firmware_lines(&console, 2);
    }
}

fn bzimage_reads_its_zero_page_and_verifies_its_ramdisk() {
    require_kvm();
    let console = boot_guest(
        parse_config(axvm_guests::BZIMAGE_CONFIG),
        axvm_guests::BZIMAGE,
    );
    assert_has_lines(
        &console,
        &[
            &format!("bzimage: ramdisk OK ({} bytes)", axvm_guests::RAMDISK.len()),
            "bzimage: all checks passed",
        ],
    );
    assert!(
        console.contains("bzimage: cmdline: console=ttyS0"),
        "console:\n{console}"
    );
}

fn pit_interrupts_arrive_through_the_ioapic_at_their_rate() {
    require_kvm();
    let console = Console::default();
    let vm = create(
        parse_config(axvm_guests::TIMER_CONFIG),
        axvm_guests::TIMER,
        &console,
    );
    let outcome = run_bounded(vm, &console);
    let text = console.text();
    assert!(
        matches!(outcome, Ok(VmOutcome::Exited(0))),
        "ended with {outcome:?}; console:
{text}"
    );
    assert_has_lines(&text, &["timer: rate OK"]);
}

/// Runs the wake-up guest and, once it says it waits, injects vector 0x40 into vCPU 0 from
/// this thread; returns the console after the VM ended.
fn wake_with_injected_interrupt(config: AxVMConfig) -> String {
    let console = Console::default();
    let vm = Arc::new(create(config, axvm_guests::WAKEUP, &console));
    let (done, ended) = mpsc::channel();
    let runner = Arc::clone(&vm);
    thread::spawn(move || {
        let _ = done.send(runner.run());
    });
    let start = Instant::now();
    while !console.text().contains("wakeup: waiting for an interrupt") {
        assert!(
            start.elapsed() < DEADLINE,
            "the guest never waited; console:\n{}",
            console.text()
        );
        if let Ok(result) = ended.try_recv() {
            panic!(
                "the VM ended before waiting: {result:?}; console:\n{}",
                console.text()
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
    // Give the vCPU time to reach HLT: the interrupt must wake it, not find it running.
    thread::sleep(Duration::from_millis(100));
    vm.vm()
        .inject_interrupt_to_vcpu(&[0], 0x40)
        .expect("inject");
    let outcome = ended.recv_timeout(DEADLINE).unwrap_or_else(|_| {
        vm.vm().shutdown();
        panic!(
            "the injected interrupt did not wake the guest; console:\n{}",
            console.text()
        )
    });
    let text = console.text();
    assert!(
        matches!(outcome, Ok(VmOutcome::Exited(0))),
        "ended with {outcome:?}; console:\n{text}"
    );
    text
}

fn an_interrupt_injected_from_another_thread_wakes_a_halted_vcpu() {
    require_kvm();
    let console = wake_with_injected_interrupt(parse_config(axvm_guests::WAKEUP_CONFIG));
    assert_has_lines(&console, &["wakeup: woken by vector 0x40"]);
}

fn an_ipi_between_guest_vcpus_wakes_the_other_one() {
    require_kvm();
    let console = wake_with_injected_interrupt(parse_config(axvm_guests::WAKEUP_SMP_CONFIG));
    assert!(
        console.contains("wakeup: IPI received on vCPU 1"),
        "console:\n{console}"
    );
}

fn injecting_into_a_vcpu_the_vm_lacks_is_refused() {
    require_kvm();
    let console = Console::default();
    let vm = create(
        parse_config(axvm_guests::WAKEUP_CONFIG),
        axvm_guests::WAKEUP,
        &console,
    );
    let err = vm
        .vm()
        .inject_interrupt_to_vcpu(&[5], 0x40)
        .expect_err("vCPU 5 does not exist");
    assert!(err.to_string().contains("vCPU 5"), "{err}");
}

axvm_test_harness::main!(
    multiboot_kernel_sees_its_cmdline_memory_and_cpus_and_starts_its_aps,
    multiboot_kernel_linked_at_0x9000_reads_its_information,
    pvh_kernel_with_its_elf_headers_at_0xff000_boots,
    pvh_kernel_reads_its_start_info,
    bzimage_reads_its_zero_page_and_verifies_its_ramdisk,
    pit_interrupts_arrive_through_the_ioapic_at_their_rate,
    an_interrupt_injected_from_another_thread_wakes_a_halted_vcpu,
    an_ipi_between_guest_vcpus_wakes_the_other_one,
    injecting_into_a_vcpu_the_vm_lacks_is_refused,
);
