//! axvm's own output failing: a closed pipe ends axvm quietly by SIGPIPE, as Unix tools
//! end (`axvm check | head -1`); any other write error gives one line on stderr and exit
//! status 1 (`axvm check > /dev/full`); never a panic (exit status 101).

mod common;

use std::fs::{File, OpenOptions};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{require_kvm, Scratch, DEADLINE};

/// Starts the built `axvm` with `args`, its stdout and stderr as given.
fn spawn(args: &[&str], stdout: Stdio, stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_axvm"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("cannot start axvm")
}

/// Waits for `child`, killing it and failing the test after [`DEADLINE`].
fn wait(mut child: Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("cannot wait for axvm") {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("axvm still ran after {DEADLINE:?}");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The write end of a pipe whose read end is already closed: every write fails with EPIPE.
fn pipe_nobody_reads() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

fn dev_full() -> Stdio {
    Stdio::from(
        OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full"),
    )
}

/// What `axvm` wrote to the file behind `path` (its stderr), once it ended.
fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).expect("axvm's stderr file")
}

fn check_into_a_closed_pipe_ends_by_sigpipe_without_a_word() {
    let scratch = Scratch::new("epipe");
    let stderr = scratch.path("stderr");
    let child = spawn(
        &["check"],
        pipe_nobody_reads(),
        Stdio::from(File::create(&stderr).unwrap()),
    );
    let status = wait(child);
    assert_eq!(
        status.signal(),
        Some(libc::SIGPIPE),
        "{status:?}; stderr:\n{}",
        read(&stderr)
    );
    assert_eq!(read(&stderr), "", "a closed pipe is no error to report");
}

fn check_into_a_full_device_gives_one_line_and_status_1() {
    let scratch = Scratch::new("enospc");
    let stderr = scratch.path("stderr");
    let child = spawn(
        &["check"],
        dev_full(),
        Stdio::from(File::create(&stderr).unwrap()),
    );
    let status = wait(child);
    assert_eq!(
        status.code(),
        Some(1),
        "{status:?}; stderr:\n{}",
        read(&stderr)
    );
    assert_eq!(
        read(&stderr),
        "axvm: cannot write to stdout: No space left on device\n"
    );
}

/// The one-line reason for a missing config cannot be written: still status 1, no panic.
fn a_reason_into_a_full_stderr_still_gives_status_1() {
    let child = spawn(&["run", "/nonexistent/vm.toml"], Stdio::null(), dev_full());
    let status = wait(child);
    assert_eq!(status.code(), Some(1), "{status:?}");
}

/// The reason into a closed stderr pipe: ended by SIGPIPE, like any other write to it.
fn a_reason_into_a_closed_pipe_ends_by_sigpipe() {
    let child = spawn(
        &["run", "/nonexistent/vm.toml"],
        Stdio::null(),
        pipe_nobody_reads(),
    );
    let status = wait(child);
    assert_eq!(status.signal(), Some(libc::SIGPIPE), "{status:?}");
}

/// The guest's console on a closed pipe: one clear line on stderr (no Rust Debug form of
/// the error), and the guest runs to its end (the demo exits 0).
fn a_closed_console_pipe_is_one_clear_line() {
    require_kvm();
    let scratch = Scratch::new("console-epipe");
    let stderr = scratch.path("stderr");
    let child = spawn(
        &["run"],
        pipe_nobody_reads(),
        Stdio::from(File::create(&stderr).unwrap()),
    );
    let status = wait(child);
    let stderr = read(&stderr);
    assert_eq!(status.code(), Some(0), "{status:?}; stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(
        lines[0].ends_with("cannot write the guest console: its reader went away (broken pipe); the guest's further console output is dropped"),
        "{stderr}"
    );
}

axvm_test_harness::main!(
    a_closed_console_pipe_is_one_clear_line,
    check_into_a_closed_pipe_ends_by_sigpipe_without_a_word,
    check_into_a_full_device_gives_one_line_and_status_1,
    a_reason_into_a_full_stderr_still_gives_status_1,
    a_reason_into_a_closed_pipe_ends_by_sigpipe,
);
