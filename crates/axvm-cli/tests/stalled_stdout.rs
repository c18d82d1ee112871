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
const DEADLINE: Duration = Duration::from_secs(60);

/// Prints 3 x 64 KiB of 'x' to port 0xe9 (more than the pipe and the console buffer
/// together hold), then exits with status 7 (see `stalled_console.rs` in axvm-kvm).
const FLOOD_DEBUGCON_THEN_EXIT_7: &[u8] = &[
    0xba, 0xe9, 0x00, 0xb9, 0x00, 0x00, 0xbe, 0x03, 0x00, 0xb0, 0x78, 0xee, 0xe2, 0xfb, 0x4e, 0x75,
    0xf8, 0xb0, 0x07, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// Prints 'y' to COM1 forever, waiting for "transmitter holding register empty" before each
/// byte, as a polling driver does.
const POLITE_COM1_FOREVER: &[u8] = &[
    0xba, 0xfd, 0x03, 0xec, 0xa8, 0x20, 0x74, 0xfb, 0xba, 0xf8, 0x03, 0xb0, 0x79, 0xee, 0xeb, 0xf0,
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
    // Held open, never read: the pipe fills and stays full.
    let unread = child.stdout.take();
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
