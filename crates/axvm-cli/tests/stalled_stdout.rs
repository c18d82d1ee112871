//! `axvm run` with its stdout a pipe nobody reads (`axvm run vm.toml | sleep 60`): the
//! guest's exit status still ends axvm, with a word about the output that was lost, and
//! `--watchdog` still stops a guest stuck waiting for the console.

mod common;

use std::ffi::OsStr;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::{raw_guest, require_kvm, Scratch};

/// The longest axvm may take here; only turns a hang into a failure.
const DEADLINE: Duration = Duration::from_secs(90);

/// Prints 80 KiB to port 0xe9 (more than the shrunk pipe, the console buffer and the write
/// in flight together hold), then exits with status 7: `mov dx,0xe9; mov bx,5; 1: mov si,0; mov cx,0x4000;
/// rep outsb; dec bx; jnz 1b; mov al,7; out 0xf4,al; jmp $`. 80 KiB, not more, so that a
/// nested KVM whose exits cost ~100 µs each gets through it well inside the deadline.
const FLOOD_DEBUGCON_THEN_EXIT_7: &[u8] = &[
    0xba, 0xe9, 0x00, 0xbb, 0x05, 0x00, 0xbe, 0x00, 0x00, 0xb9, 0x00, 0x40, 0xf3, 0x6e, 0x4b, 0x75,
    0xf5, 0xb0, 0x07, 0xe6, 0xf4, 0xeb, 0xfe,
];
/// Prints 60 KiB through COM1 with `rep outsb` (`rep outsb`: at most the console buffer, so
/// nothing is dropped), then 'y' to COM1 forever, waiting for "transmitter holding register
/// empty" before each byte, as a polling driver does (the test shrinks the pipe, so few of
/// these slow, exit-per-byte writes fill it): `mov dx,0x3f8; mov bx,15; 1: mov si,0;
/// mov cx,0x1000; rep outsb;
/// dec bx; jnz 1b; 2: mov dx,0x3fd; 3: in al,dx; test al,0x20; jz 3b; mov dx,0x3f8;
/// mov al,'y'; out dx,al; jmp 2b`.
const POLITE_COM1_FOREVER: &[u8] = &[
    0xba, 0xf8, 0x03, 0xbb, 0x0f, 0x00, 0xbe, 0x00, 0x00, 0xb9, 0x00, 0x10, 0xf3, 0x6e, 0x4b, 0x75,
    0xf5, 0xba, 0xfd, 0x03, 0xec, 0xa8, 0x20, 0x74, 0xfb, 0xba, 0xf8, 0x03, 0xb0, 0x79, 0xee, 0xeb,
    0xf0,
];

/// Runs `axvm ARGS` with stdout a pipe this test never reads; returns its exit status and
/// stderr. Kills it and fails the test if it runs longer than [`DEADLINE`].
fn run_unread(args: &[&OsStr]) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axvm"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start axvm");
    // Held open, never read: the pipe fills and stays full. Its smallest size (a page)
    // makes it full sooner.
    let unread = child.stdout.take();
    if let Some(pipe) = &unread {
        use std::os::fd::AsRawFd;
        // SAFETY: F_SETPIPE_SZ on a pipe this test owns; failure only leaves it larger.
        unsafe { libc::fcntl(pipe.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    }
    let mut stderr = child.stderr.take().expect("piped");
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = wait_bounded(&mut child);
    drop(unread);
    (status, stderr.join().expect("stderr reader panicked"))
}

fn wait_bounded(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("cannot wait for axvm") {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("axvm with an unread stdout still ran after {DEADLINE:?}; killed it");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn the_guests_status_ends_axvm_and_the_lost_output_is_counted() {
    require_kvm();
    let scratch = Scratch::new("stalled-stdout");
    let config = raw_guest(&scratch, FLOOD_DEBUGCON_THEN_EXIT_7);
    let (status, stderr) = run_unread(&[OsStr::new("run"), config.as_os_str()]);
    assert_eq!(status.code(), Some(7), "stderr: {stderr}");
    assert!(stderr.contains("were not written"), "{stderr}");
    assert!(stderr.contains("were dropped"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn the_watchdog_stops_a_guest_waiting_for_the_console() {
    require_kvm();
    let scratch = Scratch::new("stalled-stdout-watchdog");
    let config = raw_guest(&scratch, POLITE_COM1_FOREVER);
    let (status, stderr) = run_unread(&[
        OsStr::new("run"),
        OsStr::new("--watchdog"),
        OsStr::new("1"),
        config.as_os_str(),
    ]);
    assert_eq!(status.code(), Some(1), "stderr: {stderr}");
    assert!(
        stderr.contains("0x3fd"),
        "no report naming the polled LSR: {stderr}"
    );
    // The polite guest lost nothing: it waited.
    assert!(!stderr.contains("were dropped"), "{stderr}");
}

axvm_test_harness::main!(
    the_guests_status_ends_axvm_and_the_lost_output_is_counted,
    the_watchdog_stops_a_guest_waiting_for_the_console,
);
