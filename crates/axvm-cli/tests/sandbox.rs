//! The seccomp sandbox of `axvm run`: every thread of a running VM is confined
//! (`Seccomp: 2` in its /proc status), `--no-seccomp` leaves them all unconfined, and a
//! system call outside a thread's list ends axvm with a message naming it and the thread,
//! and status 159 (128 + SIGSYS). The rest of the suite runs with the sandbox on, which is
//! how each list was checked against what the threads really do.

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;

use common::{raw_guest, require_kvm, Scratch, DEADLINE};

/// Prints "R\n" through the debug port 0xe9, then spins:
/// `mov al,'R'; out 0xe9,al; mov al,10; out 0xe9,al; 1: jmp 1b`.
const READY_THEN_SPIN: &[u8] = &[0xb0, 0x52, 0xe6, 0xe9, 0xb0, 0x0a, 0xe6, 0xe9, 0xeb, 0xfe];

/// `mov al, 0; out 0xf4, al`: exits with status 0 at once.
const EXIT_0: &[u8] = &[0xb0, 0x00, 0xe6, 0xf4];

/// The status of axvm ended by a blocked system call.
const BLOCKED_SYSCALL_STATUS: i32 = 128 + libc::SIGSYS;

/// Starts `axvm run EXTRA.. CONFIG` with stdin a pipe (so the console-input thread runs
/// too) and waits until the guest printed "R": every thread of the run is started then.
fn start_spinning(scratch: &Scratch, extra: &[&str]) -> Child {
    let config = raw_guest(scratch, READY_THEN_SPIN);
    let mut child = Command::new(env!("CARGO_BIN_EXE_axvm"))
        .arg("run")
        .args(extra)
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start axvm");
    let mut stdout = child.stdout.take().expect("piped");
    let (ready, is_ready) = mpsc::channel();
    thread::spawn(move || {
        let mut text = Vec::new();
        let mut chunk = [0; 64];
        while let Ok(n @ 1..) = stdout.read(&mut chunk) {
            text.extend_from_slice(&chunk[..n]);
            if text.ends_with(b"R\n") {
                let _ = ready.send(());
            }
        }
    });
    if is_ready.recv_timeout(DEADLINE).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("the guest did not print R");
    }
    child
}

/// Each thread of process `pid`: its name and the `Seccomp:` mode of its status.
fn seccomp_modes(pid: u32) -> Vec<(String, u32)> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("cannot list the tasks");
    tasks
        .map(|task| {
            let dir = task.expect("a task").path();
            let name = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let status = std::fs::read_to_string(dir.join("status")).unwrap_or_default();
            let mode = status
                .lines()
                .find_map(|line| line.strip_prefix("Seccomp:"))
                .and_then(|mode| mode.trim().parse().ok())
                .unwrap_or_else(|| panic!("no Seccomp line for {name}: {status}"));
            (name.trim().to_string(), mode)
        })
        .collect()
}

/// The threads of a running `axvm run EXTRA..`, then the run killed.
fn threads_of_a_run(extra: &[&str]) -> Vec<(String, u32)> {
    let scratch = Scratch::new("sandbox-threads");
    let mut child = start_spinning(&scratch, extra);
    let modes = seccomp_modes(child.id());
    let _ = child.kill();
    let _ = child.wait();
    modes
}

fn every_thread_of_a_run_is_confined() {
    require_kvm();
    let modes = threads_of_a_run(&[]);
    let names: Vec<&str> = modes.iter().map(|(name, _)| name.as_str()).collect();
    for expected in [
        "axvm",
        "axvm-signals",
        "axvm-console",
        "console-input",
        "axvm-watcher",
        "vcpu0",
    ] {
        assert!(names.contains(&expected), "no thread {expected}: {modes:?}");
    }
    assert!(
        modes.iter().all(|(_, mode)| *mode == 2),
        "a thread runs without its filter: {modes:?}"
    );
}

fn no_seccomp_leaves_every_thread_unconfined() {
    require_kvm();
    let modes = threads_of_a_run(&["--no-seccomp"]);
    assert!(modes.iter().any(|(name, _)| name == "vcpu0"), "{modes:?}");
    assert!(
        modes.iter().all(|(_, mode)| *mode == 0),
        "a thread is confined despite --no-seccomp: {modes:?}"
    );
}

/// `axvm run EXTRA.. CONFIG` of a guest that exits 0, with the test hook that makes each
/// vCPU thread call `getppid` (in no list) before the guest's first instruction.
fn run_with_a_blocked_syscall(extra: &[&str]) -> std::process::Output {
    let scratch = Scratch::new("sandbox-blocked");
    let config = raw_guest(&scratch, EXIT_0);
    Command::new(env!("CARGO_BIN_EXE_axvm"))
        .arg("run")
        .args(extra)
        .arg(&config)
        .env_remove("RUST_LOG")
        .env("AXVM_TEST_BLOCKED_SYSCALL", "1")
        .stdin(Stdio::null())
        .output()
        .expect("cannot run axvm")
}

fn a_blocked_syscall_ends_axvm_with_a_message() {
    require_kvm();
    let output = run_with_a_blocked_syscall(&[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(BLOCKED_SYSCALL_STATUS),
        "stderr: {stderr}"
    );
    assert_eq!(
        stderr.trim_end(),
        format!(
            "axvm: blocked system call {} (getppid) on thread vcpu0; this is a bug in axvm's \
             seccomp filter, run with --no-seccomp to debug (VmOptions::sandbox = false in \
             the library)",
            libc::SYS_getppid
        )
    );
}

fn no_seccomp_lets_the_same_call_through() {
    require_kvm();
    let output = run_with_a_blocked_syscall(&["--no-seccomp"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

axvm_test_harness::main!(
    every_thread_of_a_run_is_confined,
    no_seccomp_leaves_every_thread_unconfined,
    a_blocked_syscall_ends_axvm_with_a_message,
    no_seccomp_lets_the_same_call_through,
);
