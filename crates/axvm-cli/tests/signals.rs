//! SIGTERM and SIGINT during `axvm run`: the VMs stop, the reports (`--stats`) print, the
//! `--trace-exits` file is complete, axvm says `axvm: stopped by SIGTERM` and exits 128 + the
//! signal; with several VMs all stop; a second signal exits at once even when axvm is stuck.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{raw_config, replace, require_kvm, Scratch, DEADLINE};

/// Writes COM1's scratch register once, prints "R\n" through the debug port 0xe9, then
/// writes the scratch register forever: `mov dx,0x3ff; out dx,al; mov al,'R'; out 0xe9,al;
/// mov al,10; out 0xe9,al; 1: out dx,al; jmp 1b`. The first write comes before "R", so the
/// statistics have a row for 0x3ff however soon after "R" the signal arrives (on a slow
/// nested KVM it came before the loop's first exit).
const READY_THEN_SPIN: &[u8] = &[
    0xba, 0xff, 0x03, 0xee, 0xb0, 0x52, 0xe6, 0xe9, 0xb0, 0x0a, 0xe6, 0xe9, 0xee, 0xeb, 0xfd,
];

/// A spinning guest's config named `name` with VM id `id` in `scratch` (the image shared
/// by all).
fn spinning_guest(scratch: &Scratch, id: u32, name: &str) -> std::path::PathBuf {
    scratch.write("spin.bin", READY_THEN_SPIN);
    let config = replace(
        &raw_config("spin.bin"),
        "name = \"axvm-realmode\"",
        &format!("name = \"{name}\""),
    );
    let config = replace(&config, "id = 0", &format!("id = {id}"));
    scratch.write(&format!("{name}.toml"), config)
}

/// Starts `axvm run ARGS` with stdout piped and `stderr`.
fn spawn(args: &[&std::ffi::OsStr], stderr: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_axvm"))
        .arg("run")
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("cannot start axvm")
}

/// Reads `child`'s stdout on a thread until it holds `count` lines ending in "R"; returns
/// the reader, which goes on reading to the end. Fails after [`DEADLINE`].
fn wait_until_ready(child: &mut Child, count: usize) -> thread::JoinHandle<String> {
    let mut stdout = child.stdout.take().expect("piped");
    let (ready, is_ready) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut text = Vec::new();
        let mut chunk = [0; 256];
        let mut told = false;
        while let Ok(n @ 1..) = stdout.read(&mut chunk) {
            text.extend_from_slice(&chunk[..n]);
            let lines = String::from_utf8_lossy(&text);
            if !told && lines.matches("R\n").count() >= count {
                told = true;
                let _ = ready.send(());
            }
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    if is_ready.recv_timeout(DEADLINE).is_err() {
        let _ = child.kill();
        panic!("the guest(s) did not print R: {}", reader.join().unwrap());
    }
    reader
}

fn signal(child: &Child, signal: i32) {
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: sends a signal to the child this test started (and has not reaped).
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Waits for `child`, killing it and failing the test after [`DEADLINE`].
fn wait(child: &mut Child) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("cannot wait for axvm") {
            return status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("axvm still ran {DEADLINE:?} after the signal");
        }
        thread::sleep(Duration::from_millis(5));
    }
}

fn stderr_file(scratch: &Scratch) -> (std::path::PathBuf, Stdio) {
    let path = scratch.path("stderr");
    let file = File::create(&path).expect("a file for stderr");
    (path, Stdio::from(file))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("axvm's stderr")
}

fn sigterm_stops_the_vm_prints_the_stats_and_completes_the_trace() {
    require_kvm();
    let scratch = Scratch::new("sigterm");
    let config = spinning_guest(&scratch, 0, "spin");
    let trace = scratch.path("exits.jsonl");
    let (stderr_path, stderr) = stderr_file(&scratch);
    let mut child = spawn(
        &[
            config.as_os_str(),
            "--stats".as_ref(),
            "--trace-exits".as_ref(),
            trace.as_os_str(),
        ],
        stderr,
    );
    let stdout = wait_until_ready(&mut child, 1);
    signal(&child, libc::SIGTERM);
    let status = wait(&mut child);
    let stderr = read(&stderr_path);
    let stdout = stdout.join().expect("the stdout reader");
    assert_eq!(status.code(), Some(143), "{status:?}\n{stderr}");
    assert_eq!(stdout, "R\n");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        stderr.lines().last(),
        Some("axvm: stopped by SIGTERM"),
        "{stderr}"
    );
    assert!(stderr.contains("exit statistics: "), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|line| line.contains("io-write") && line.contains("port 0x3ff")),
        "no row for port 0x3ff: {stderr}"
    );
    // The whole trace reached the file: every line is complete JSON; the first is the
    // scratch-register write, the next two the debug-port writes, the rest the spin, but for
    // the stop's kick at the end.
    let text = std::fs::read_to_string(&trace).expect("the trace file");
    assert!(text.ends_with('\n'), "the trace ends mid-line: {text:?}");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.len() >= 3, "{text}");
    assert_eq!(lines[0]["port"], 0x3ff, "{text}");
    assert!(
        lines[1..3].iter().all(|line| line["port"] == 0xe9),
        "{text}"
    );
    let spin = match lines.last() {
        Some(last) if last["kind"] == "interrupted" => &lines[3..lines.len() - 1],
        _ => &lines[3..],
    };
    assert!(spin.iter().all(|line| line["port"] == 0x3ff), "{text}");
}

fn sigint_stops_every_vm_of_several() {
    require_kvm();
    let scratch = Scratch::new("sigint-several");
    let a = spinning_guest(&scratch, 1, "vm-a");
    let b = spinning_guest(&scratch, 2, "vm-b");
    let (stderr_path, stderr) = stderr_file(&scratch);
    let mut child = spawn(&[a.as_os_str(), b.as_os_str()], stderr);
    let stdout = wait_until_ready(&mut child, 2);
    signal(&child, libc::SIGINT);
    let status = wait(&mut child);
    let stderr = read(&stderr_path);
    let stdout = stdout.join().expect("the stdout reader");
    assert_eq!(status.code(), Some(130), "{status:?}\n{stderr}");
    let mut lines: Vec<&str> = stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["[vm-a] R", "[vm-b] R"]);
    assert_eq!(
        stderr.lines().collect::<Vec<_>>(),
        [
            "axvm: [vm-a] status 0: stopped by SIGINT",
            "axvm: [vm-b] status 0: stopped by SIGINT",
            "axvm: stopped by SIGINT",
        ],
        "{stderr}"
    );
}

/// A pipe filled to the brim that nobody reads: a write to it blocks for ever. Returns the
/// read end (to be kept open) and the write end.
fn full_pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) returns.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let set_nonblocking = |on: bool| {
        let fd = write.as_raw_fd();
        // SAFETY: reads and sets the status flags of a descriptor this test owns.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            let flags = if on {
                flags | libc::O_NONBLOCK
            } else {
                flags & !libc::O_NONBLOCK
            };
            assert_eq!(libc::fcntl(fd, libc::F_SETFL, flags), 0);
        }
    };
    set_nonblocking(true);
    let mut file = File::from(write.try_clone().expect("dup"));
    while file.write(&[b'x'; 4096]).is_ok() {}
    while file.write(b"x").is_ok() {}
    set_nonblocking(false);
    (read, write)
}

/// With stderr a full pipe, the first signal's stop can never finish (the stats cannot be
/// written); the second signal must end axvm anyway, with 128 + its number. The two
/// signals differ, so they cannot merge into one; when both are pending at once they are
/// taken in either order, hence either status.
fn a_second_signal_exits_even_when_axvm_is_stuck() {
    require_kvm();
    let scratch = Scratch::new("second-signal");
    let config = spinning_guest(&scratch, 0, "spin");
    let (_reader, stderr) = full_pipe();
    let mut child = spawn(
        &[config.as_os_str(), "--stats".as_ref()],
        Stdio::from(stderr),
    );
    let stdout = wait_until_ready(&mut child, 1);
    signal(&child, libc::SIGTERM);
    signal(&child, libc::SIGINT);
    let status = wait(&mut child);
    let _ = stdout.join();
    assert!(
        matches!(status.code(), Some(130 | 143)),
        "{status:?}: expected 130 or 143"
    );
}

axvm_test_harness::main!(
    sigterm_stops_the_vm_prints_the_stats_and_completes_the_trace,
    sigint_stops_every_vm_of_several,
    a_second_signal_exits_even_when_axvm_is_stuck,
);
