//! The type-1 hypervisor kernel (`hypervisor/`) booted by QEMU with emulated AMD SVM, through
//! `scripts/svm-run.sh`, with the demo VM's config and image as its modules: it must bring up
//! memory, every CPU and SVM detection, list the modules by their file names and exit 0.
//!
//! The script builds the kernel (its own workspace, for x86_64-unknown-none). Skipped when
//! `qemu-system-x86_64` is not installed (CI installs it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use axvm_guests::{DEMO_CONFIG, DEMO_PATH};

/// A fresh directory holding `demo.toml` and `demo`, as the modules are named after them.
fn demo_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("axvm-hv-qemu-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    std::fs::write(dir.join("demo.toml"), DEMO_CONFIG).unwrap_or_else(|e| panic!("demo.toml: {e}"));
    std::fs::copy(DEMO_PATH, dir.join("demo")).unwrap_or_else(|e| panic!("{DEMO_PATH}: {e}"));
    dir
}

fn require_qemu() {
    if let Err(e) = Command::new("qemu-system-x86_64").arg("--version").output() {
        axvm_test_harness::skip(format!("needs qemu-system-x86_64: {e}"));
    }
}

/// `scripts/svm-run.sh --smp CPUS demo.toml demo`, with the outer cargo's code-generation
/// settings kept away from the kernel's build.
fn svm_run(dir: &Path, cpus: u32) -> Output {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/svm-run.sh");
    Command::new(&script)
        .args(["--smp", &cpus.to_string()])
        .arg(dir.join("demo.toml"))
        .arg(dir.join("demo"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()))
}

fn assert_lines(console: &str, wanted: &[String]) {
    for line in wanted {
        assert!(
            console.lines().any(|l| l.starts_with(line.as_str())),
            "no line starting `{line}` in:\n{console}"
        );
    }
}

fn boots(cpus: u32) {
    require_qemu();
    let dir = demo_dir(&format!("smp{cpus}"));
    let output = svm_run(&dir, cpus);
    let console = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{console}\nstderr:\n{stderr}"
    );
    let demo_size = std::fs::metadata(DEMO_PATH).map(|m| m.len()).unwrap_or(0);
    let mut wanted = vec![
        "axvm-hv: booting (Multiboot v1)".to_string(),
        "axvm-hv: frame allocator checks passed".to_string(),
        format!("axvm-hv: {cpus} CPU(s) up"),
        format!("axvm-hv:   demo.toml ({} bytes at ", DEMO_CONFIG.len()),
        format!("axvm-hv:   demo ({demo_size} bytes at "),
    ];
    wanted.extend((0..cpus).map(|cpu| format!("axvm-hv: cpu {cpu}: SVM enabled")));
    assert_lines(&console, &wanted);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The BSP alone.
fn boots_on_one_cpu() {
    boots(1);
}

/// The BSP and an AP started by INIT-SIPI-SIPI.
fn boots_on_two_cpus() {
    boots(2);
}

axvm_test_harness::main!(boots_on_one_cpu, boots_on_two_cpus);
