//! The type-1 hypervisor kernel (`hypervisor/`) booted by QEMU with emulated AMD SVM, through
//! `scripts/svm-run.sh`, with a VM's config and images as its modules: it brings up memory,
//! every CPU and SVM, runs the VM through the core, and ends QEMU with the guest's status. A
//! VM it cannot run, and a vCPU that stops, are reported on its console with the reason.
//!
//! (`scripts/svm-compat.sh` compares the guests' output with the KVM host's; this test covers
//! what only the hypervisor says.) The script builds the kernel (its own workspace, for
//! x86_64-unknown-none). Skipped when `qemu-system-x86_64` is not installed (CI installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use axvm_guests::{DEMO_CONFIG, DEMO_PATH, REALMODE_CONFIG};

/// A fresh directory for one test's config and images (modules are named after the files).
fn work_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("axvm-hv-qemu-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// A directory holding `demo.toml` and `demo`.
fn demo_dir(test: &str) -> PathBuf {
    let dir = work_dir(test);
    std::fs::write(dir.join("demo.toml"), DEMO_CONFIG).unwrap_or_else(|e| panic!("demo.toml: {e}"));
    std::fs::copy(DEMO_PATH, dir.join("demo")).unwrap_or_else(|e| panic!("{DEMO_PATH}: {e}"));
    dir
}

/// A directory holding the realmode guest's config with `code` as its raw image: a guest of a
/// few instructions, written here, for what no guest program should do.
fn raw_guest_dir(test: &str, code: &[u8]) -> PathBuf {
    let dir = work_dir(test);
    std::fs::write(dir.join("realmode.toml"), REALMODE_CONFIG)
        .unwrap_or_else(|e| panic!("realmode.toml: {e}"));
    std::fs::write(dir.join("realmode"), code).unwrap_or_else(|e| panic!("realmode: {e}"));
    dir
}

fn require_qemu() {
    if let Err(e) = Command::new("qemu-system-x86_64").arg("--version").output() {
        axvm_test_harness::skip(format!("needs qemu-system-x86_64: {e}"));
    }
}

/// `scripts/svm-run.sh --smp CPUS <config> <images>` in `dir`, with the outer cargo's
/// code-generation settings kept away from the kernel's build.
fn svm_run(dir: &Path, cpus: u32, config: &str, images: &[&str]) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/svm-run.sh");
    Command::new(&script)
        .args(["--smp", &cpus.to_string()])
        .arg(dir.join(config))
        .args(images.iter().map(|image| dir.join(image)))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()))
}

/// The run's console and its exit status, which must be `status`.
fn expect_status(output: &Output, status: i32) -> String {
    let console = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(status),
        "{console}\nstderr:\n{stderr}"
    );
    console
}

fn assert_lines(console: &str, wanted: &[String]) {
    for line in wanted {
        assert!(
            console.lines().any(|l| l.starts_with(line.as_str())),
            "no line starting `{line}` in:\n{console}"
        );
    }
}

fn assert_contains(console: &str, wanted: &[&str]) {
    for text in wanted {
        assert!(console.contains(text), "no `{text}` in:\n{console}");
    }
}

/// The demo VM on two CPUs: the platform comes up (memory, both CPUs with SVM enabled), the
/// modules are found by name, both vCPUs run, and QEMU ends with the guest's status 0.
fn demo_runs_on_two_cpus() {
    require_qemu();
    let dir = demo_dir("demo");
    let console = expect_status(&svm_run(&dir, 2, "demo.toml", &["demo"]), 0);
    let demo_size = std::fs::metadata(DEMO_PATH).map(|m| m.len()).unwrap_or(0);
    let mut wanted = vec![
        "axvm-hv: booting (Multiboot v1)".to_string(),
        "axvm-hv: frame allocator checks passed".to_string(),
        "axvm-hv: 2 CPU(s) up".to_string(),
        format!("axvm-hv: module demo.toml ({} bytes)", DEMO_CONFIG.len()),
        format!("axvm-hv: module demo ({demo_size} bytes)"),
        "axvm-hv: VM `axvm-demo` from demo.toml: 2 vCPU(s), ELF64".to_string(),
        "axvm demo guest: hello from vCPU 1 (AP)".to_string(),
        "axvm demo guest: all checks passed".to_string(),
        "axvm-hv: vCPU 0: ".to_string(),
    ];
    wanted.extend((0..2).map(|cpu| format!("axvm-hv: cpu {cpu}: SVM enabled")));
    assert_lines(&console, &wanted);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Each vCPU runs on a CPU of its own: a 2-vCPU VM on one CPU is refused before it is
/// created, naming the field and the QEMU option that fixes it, and QEMU ends with 1.
fn too_few_cpus_is_refused_naming_cpu_num() {
    require_qemu();
    let dir = demo_dir("one-cpu");
    let console = expect_status(&svm_run(&dir, 1, "demo.toml", &["demo"]), 1);
    assert_contains(
        &console,
        &["base.cpu_num = 2", "1 CPU(s)", "give QEMU -smp 2"],
    );
    assert!(!console.contains("axvm demo guest"), "{console}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A config whose image is not among the modules is refused naming the field, the path and
/// how to pass it.
fn missing_image_is_named() {
    require_qemu();
    let dir = demo_dir("no-image");
    std::fs::rename(dir.join("demo"), dir.join("other")).unwrap_or_else(|e| panic!("{e}"));
    let console = expect_status(&svm_run(&dir, 2, "demo.toml", &["other"]), 1);
    assert_contains(
        &console,
        &[
            "kernel.kernel_path = \"demo\" names no Multiboot module",
            "-initrd \"demo.toml,demo\"",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An exit the backend cannot handle (string I/O, `rep outsb`) stops the VM with a report on
/// the console: the exit's code and information, the instruction disassembled, the
/// registers; QEMU ends with 1, as `axvm run` does for a failed VM.
fn unhandled_exit_is_reported_with_registers_and_instruction() {
    require_qemu();
    // mov dx, 0x3f8; mov cx, 4; rep outsb; hlt
    let code = [0xba, 0xf8, 0x03, 0xb9, 0x04, 0x00, 0xf3, 0x6e, 0xf4];
    let dir = raw_guest_dir("unhandled", &code);
    let console = expect_status(&svm_run(&dir, 1, "realmode.toml", &["realmode"]), 1);
    assert_contains(
        &console,
        &[
            "axvm-hv: VM `axvm-realmode`: vCPU 0: string I/O",
            "#VMEXIT Ioio (EXITCODE 0x7b)",
            "port 0x3f8",
            "rep outsb",
            "RDX 0x00000000000003f8",
            "RCX 0x0000000000000004",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A triple fault (an interrupt through an empty real-mode IDT) stops the VM, reported with
/// the vCPU's state, and QEMU ends with 1.
fn triple_fault_is_reported() {
    require_qemu();
    // lidt [0x8010] (limit 0); int3; hlt; padding; the 6-byte IDT pseudo-descriptor of zeros
    let mut code = vec![0x0f, 0x01, 0x1e, 0x10, 0x80, 0xcc, 0xf4];
    code.resize(0x16, 0);
    let dir = raw_guest_dir("triple-fault", &code);
    let console = expect_status(&svm_run(&dir, 1, "realmode.toml", &["realmode"]), 1);
    assert_contains(
        &console,
        &[
            "vCPU 0 reset the machine without an exit status",
            "triple fault",
            "RFLAGS",
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

axvm_test_harness::main!(
    demo_runs_on_two_cpus,
    too_few_cpus_is_refused_naming_cpu_num,
    missing_image_is_named,
    unhandled_exit_is_reported_with_registers_and_instruction,
    triple_fault_is_reported
);
