//! The arm64 guests (`guests-arm64`) under `qemu-system-aarch64 -M virt,gic-version=3 -cpu
//! max` (TCG: no KVM needed), whose board the arm64 contract mirrors: the PL011 at
//! 0x0900_0000, the GICv3, PSCI over HVC answered by QEMU itself.
//!
//! QEMU has neither axvm's exit device nor the scratch device, and passes x0 = the device
//! tree only to a Linux `Image`, so the guests run here as their flat `.bin` Images and:
//! status 0 ends in PSCI SYSTEM_OFF (QEMU exits 0), a non-zero status prints
//! `axvm-rt: exit status N ...` and resets (QEMU exits with `-no-reboot`), and the demo
//! skips its MMIO check (no `/axvm-exit@9100000` in QEMU's tree). Skipped when
//! `qemu-system-aarch64` is not installed, unless `AXVM_REQUIRE_KVM=1` (CI must not pass by
//! skipping).

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use axvm_guests::{
    ARM_DEMO_BIN_PATH, ARM_DEMO_CONFIG, ARM_DEMO_PATH, ARM_EXITLOOP_BIN_PATH, ARM_EXITLOOP_CONFIG,
    ARM_EXITLOOP_PATH, ARM_EXIT_BIN_PATH, ARM_EXIT_CONFIG, ARM_EXIT_PATH, ARM_EXIT_STATUS,
    ARM_TIMER_BIN_PATH, ARM_TIMER_CONFIG, ARM_TIMER_PATH,
};

const QEMU: &str = "qemu-system-aarch64";
/// A guest still running after this long is stuck (they take about a second): the test
/// fails instead of hanging. Not a timing assertion.
const STUCK_AFTER: Duration = Duration::from_secs(120);
/// The line the runtime prints when a non-zero exit status finds no exit device.
const RESET_LINE: &str = "axvm-rt: exit status";

/// What one QEMU run printed and how it ended.
struct Run {
    console: String,
    code: Option<i32>,
}

fn require_qemu() {
    if let Err(e) = Command::new(QEMU).arg("--version").output() {
        if std::env::var(axvm_test_harness::REQUIRE_KVM).as_deref() == Ok("1") {
            panic!(
                "{}=1 but {QEMU} cannot run: {e}",
                axvm_test_harness::REQUIRE_KVM
            );
        }
        axvm_test_harness::skip(format!("needs {QEMU} (Debian: qemu-system-arm): {e}"));
    }
}

/// Boots `kernel` on `cpus` vCPUs and waits for QEMU to end.
fn run_qemu(kernel: &str, cpus: u32) -> Run {
    run_qemu_with(kernel, cpus, &[])
}

/// Boots `kernel` on `cpus` vCPUs with more QEMU arguments and waits for QEMU to end.
fn run_qemu_with(kernel: &str, cpus: u32, more: &[&str]) -> Run {
    require_qemu();
    let mut child = Command::new(QEMU)
        .args(["-M", "virt,gic-version=3", "-cpu", "max", "-m", "128M"])
        .args(["-nographic", "-no-reboot", "-kernel", kernel])
        .args(["-smp", &cpus.to_string()])
        .args(more)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{QEMU}: {e}"));
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let code = wait_or_kill(&mut child, kernel);
    let console = stdout.join().unwrap_or_default().replace('\r', "");
    let stderr = stderr.join().unwrap_or_default();
    let Some(code) = code else {
        panic!("{QEMU} -kernel {kernel} was still running after {STUCK_AFTER:?}:\n{console}\nstderr:\n{stderr}");
    };
    assert!(stderr.trim().is_empty(), "{QEMU} complained:\n{stderr}");
    Run { console, code }
}

fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    })
}

/// QEMU's exit code (`Some(None)` for a signal), or `None` after killing a stuck QEMU.
fn wait_or_kill(child: &mut Child, kernel: &str) -> Option<Option<i32>> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status.code()),
            Ok(None) if started.elapsed() < STUCK_AFTER => thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            Err(e) => panic!("waiting for {QEMU} -kernel {kernel}: {e}"),
        }
    }
}

impl Run {
    /// Asserts QEMU exited 0 and every line of `wanted` starts a console line.
    fn expect_lines(&self, wanted: &[&str]) {
        assert_eq!(
            self.code,
            Some(0),
            "QEMU's exit code; console:\n{}",
            self.console
        );
        for line in wanted {
            assert!(
                self.console.lines().any(|l| l.starts_with(line)),
                "no line starting `{line}` in:\n{}",
                self.console
            );
        }
    }

    /// Asserts the guest reported no failure and ended by PSCI SYSTEM_OFF: the runtime
    /// prints [`RESET_LINE`] before any other way out, and QEMU exited 0.
    fn expect_clean_power_off(&self) {
        assert!(
            !self.console.contains("FAIL"),
            "a check failed:\n{}",
            self.console
        );
        assert!(
            !self.console.contains("panic"),
            "the guest panicked:\n{}",
            self.console
        );
        assert!(
            !self.console.contains(RESET_LINE),
            "the guest did not power off with status 0:\n{}",
            self.console
        );
    }
}

/// Both vCPUs say hello (vCPU 1 started by PSCI CPU_ON, a second CPU_ON answered
/// ALREADY_ON), the device tree at x0 has the FDT magic, the MMIO check knows it is not on
/// axvm, and the guest powers off.
fn arm_demo_runs_on_two_vcpus() {
    let run = run_qemu(ARM_DEMO_BIN_PATH, 2);
    run.expect_lines(&[
        "axvm arm64 demo guest: hello from vCPU 0 (BSP)",
        "axvm arm64 demo guest: hello from vCPU 1 (AP)",
        "axvm arm64 demo guest: device tree OK",
        "axvm arm64 demo guest: MMIO skipped (not axvm)",
        "axvm arm64 demo guest: all checks passed",
    ]);
    run.expect_clean_power_off();
}

/// With one vCPU, CPU_ON of vCPU 1 fails and the demo says so with status 3 (printed,
/// as QEMU has no exit device).
fn arm_demo_on_one_vcpu_fails_at_cpu_on() {
    let run = run_qemu(ARM_DEMO_BIN_PATH, 1);
    run.expect_lines(&[
        "FAIL: PSCI CPU_ON of vCPU 1 returned",
        "axvm-rt: exit status 3 (no exit device at 0x9100000): PSCI SYSTEM_RESET",
    ]);
    assert!(
        !run.console.contains("all checks passed"),
        "{}",
        run.console
    );
}

/// Booted as an ELF, QEMU passes x0 = 0 (no device tree): the demo's x0 check fails with
/// status 7 rather than reading a tree that is not there.
fn arm_demo_elf_under_qemu_has_no_device_tree_in_x0() {
    let run = run_qemu(ARM_DEMO_PATH, 2);
    run.expect_lines(&[
        "axvm arm64 demo guest: hello from vCPU 1 (AP)",
        "FAIL: x0 is 0x0, not a device tree's address",
        "axvm-rt: exit status 7 ",
    ]);
}

/// QEMU's own device tree with an `/axvm-exit@9100000` node added (dumped by QEMU, edited
/// as source with `dtc`): what the guests take for axvm. Skips the test without `dtc`.
fn qemu_tree_with_axvm_node(dir: &std::path::Path) -> std::path::PathBuf {
    require_qemu();
    let dumped = dir.join("virt.dtb");
    let dump = Command::new(QEMU)
        .args(["-M"])
        .arg(format!("virt,gic-version=3,dumpdtb={}", dumped.display()))
        .args(["-cpu", "max", "-m", "128M", "-smp", "2", "-nographic"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{QEMU} dumpdtb: {e}"));
    assert!(dumped.exists(), "{QEMU} dumped no tree: {dump:?}");
    let source = match Command::new("dtc")
        .args(["-q", "-I", "dtb", "-O", "dts"])
        .arg(&dumped)
        .output()
    {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        Ok(out) => panic!("dtc could not read QEMU's tree: {out:?}"),
        Err(e) => axvm_test_harness::skip(format!("needs dtc (device-tree-compiler): {e}")),
    };
    let root_end = source
        .rfind("};")
        .expect("a device tree source ends with the root's `};`");
    let node = "\taxvm-exit@9100000 {\n\t\tcompatible = \"axvm,exit-device\";\n\t\treg = <0x00 0x9100000 0x00 0x1000>;\n\t};\n";
    let edited = dir.join("virt-axvm.dts");
    std::fs::write(
        &edited,
        format!("{}{node}{}", &source[..root_end], &source[root_end..]),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", edited.display()));
    let tree = dir.join("virt-axvm.dtb");
    let status = Command::new("dtc")
        .args(["-q", "-I", "dts", "-O", "dtb", "-o"])
        .arg(&tree)
        .arg(&edited)
        .status()
        .unwrap_or_else(|e| panic!("dtc: {e}"));
    assert!(
        status.success(),
        "dtc could not compile {}",
        edited.display()
    );
    tree
}

/// With `/axvm-exit@9100000` in its device tree the demo believes it is on axvm and runs
/// the MMIO check, whose first store to the scratch device (absent in QEMU) aborts:
/// reported as an unexpected exception at 0x0a10_0000, status 100.
fn arm_demo_takes_the_axvm_node_for_axvm() {
    let dir = std::env::temp_dir().join(format!("axvm-arm64-qemu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let tree = qemu_tree_with_axvm_node(&dir);
    let tree = tree.to_str().expect("a UTF-8 temporary path");
    let run = run_qemu_with(ARM_DEMO_BIN_PATH, 2, &["-dtb", tree]);
    run.expect_lines(&[
        "axvm arm64 demo guest: device tree OK",
        "guest exception: ESR_EL1 ",
        "axvm-rt: exit status 100 ",
    ]);
    assert!(run.console.contains("FAR_EL1 0xa100000"), "{}", run.console);
    assert!(!run.console.contains("MMIO skipped"), "{}", run.console);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Ten virtual timer interrupts through the GICv3, in 100 ms to 1 s of the counter.
fn arm_timer_takes_ten_ticks() {
    let run = run_qemu(ARM_TIMER_BIN_PATH, 1);
    run.expect_lines(&["axvm arm64 timer guest: 10 ticks in "]);
    run.expect_clean_power_off();
}

/// The exit guest's status reaches the exit path: without an exit device, the runtime
/// prints it and resets.
fn arm_exit_reports_status_42() {
    let run = run_qemu(ARM_EXIT_BIN_PATH, 1);
    let reset = format!(
        "axvm-rt: exit status {ARM_EXIT_STATUS} (no exit device at 0x9100000): PSCI SYSTEM_RESET"
    );
    run.expect_lines(&["axvm arm64 exit guest: exiting with status 42", &reset]);
}

/// Off axvm the exit loop has no scratch device: it says so and powers off.
fn arm_exitloop_skips_the_loop_off_axvm() {
    let run = run_qemu(ARM_EXITLOOP_BIN_PATH, 1);
    run.expect_lines(&["axvm arm64 exit-loop guest: skipped (not axvm: no scratch device)"]);
    run.expect_clean_power_off();
}

/// Each guest is an AArch64 ELF64 entered at its first byte, 0x4008_0000 (what the configs
/// say), and its `.bin` is an arm64 Image of the same bytes with text_offset 0x8_0000.
fn arm_images_are_elf_at_0x40080000_and_images_with_text_offset() {
    let guests = [
        (
            ARM_DEMO_PATH,
            ARM_DEMO_BIN_PATH,
            ARM_DEMO_CONFIG,
            "arm-demo",
        ),
        (
            ARM_TIMER_PATH,
            ARM_TIMER_BIN_PATH,
            ARM_TIMER_CONFIG,
            "arm-timer",
        ),
        (
            ARM_EXIT_PATH,
            ARM_EXIT_BIN_PATH,
            ARM_EXIT_CONFIG,
            "arm-exit",
        ),
        (
            ARM_EXITLOOP_PATH,
            ARM_EXITLOOP_BIN_PATH,
            ARM_EXITLOOP_CONFIG,
            "arm-exitloop",
        ),
    ];
    for (elf_path, bin_path, config, name) in guests {
        let elf = std::fs::read(elf_path).unwrap_or_else(|e| panic!("{elf_path}: {e}"));
        let bin = std::fs::read(bin_path).unwrap_or_else(|e| panic!("{bin_path}: {e}"));
        let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        assert!(
            elf.starts_with(b"\x7fELF\x02\x01"),
            "{name}: not an ELF64 LE file"
        );
        assert_eq!(
            u16::from_le_bytes([elf[18], elf[19]]),
            183,
            "{name}: e_machine"
        );
        assert_eq!(u64_at(&elf, 24), 0x4008_0000, "{name}: e_entry");
        assert_eq!(&bin[56..60], b"ARM\x64", "{name}.bin: Image magic");
        assert_eq!(u64_at(&bin, 8), 0x8_0000, "{name}.bin: text_offset");
        assert!(
            u64_at(&bin, 16) >= bin.len() as u64,
            "{name}.bin: image_size"
        );
        // The first instruction is `b` (0b000101 in bits 31..26), over the header.
        assert_eq!(bin[3] >> 2, 0b000101, "{name}.bin: code0 is not a branch");
        for wanted in [
            format!("kernel_path = \"{name}\""),
            "entry_point = 0x4008_0000".into(),
            "kernel_load_addr = 0x4008_0000".into(),
            "[0x4000_0000, 0x800_0000, 0x7, 0]".into(),
        ] {
            assert!(config.contains(&wanted), "{name}'s config lacks `{wanted}`");
        }
    }
}

axvm_test_harness::main!(
    arm_demo_runs_on_two_vcpus,
    arm_demo_on_one_vcpu_fails_at_cpu_on,
    arm_demo_elf_under_qemu_has_no_device_tree_in_x0,
    arm_demo_takes_the_axvm_node_for_axvm,
    arm_timer_takes_ten_ticks,
    arm_exit_reports_status_42,
    arm_exitloop_skips_the_loop_off_axvm,
    arm_images_are_elf_at_0x40080000_and_images_with_text_offset,
);
