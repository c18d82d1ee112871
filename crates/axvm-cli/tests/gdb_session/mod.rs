//! The GDB tests' side of a session: `axvm run --gdb` started and read, Debian's `gdb`
//! driven in batch mode, both sides' output kept for failure messages, and which debug
//! stops the host delivers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::{run, skip, DEADLINE};

/// Skips the calling test when `gdb` cannot run here (CI installs it).
pub fn require_gdb() {
    if let Err(err) = Command::new("gdb").arg("--version").output() {
        skip(format!("needs gdb: {err}"));
    }
}

/// A running `axvm run --gdb 127.0.0.1:0 ...`: the child, the port it listens on, and its
/// output so far.
pub struct Served {
    pub child: Child,
    pub port: u16,
    pub stdout: thread::JoinHandle<String>,
    pub stderr: mpsc::Receiver<String>,
}

/// Starts `axvm run --gdb 127.0.0.1:0 EXTRA.. CONFIG` and reads the port it prints.
pub fn serve(config: &Path, extra: &[&str]) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axvm"))
        .args(["run", "--gdb", "127.0.0.1:0"])
        .args(extra)
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start axvm");
    let mut stdout = child.stdout.take().expect("piped");
    let stdout = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let (lines, stderr) = mpsc::channel();
    let pipe = BufReader::new(child.stderr.take().expect("piped"));
    thread::spawn(move || {
        for line in pipe.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let first = stderr.recv_timeout(DEADLINE).unwrap_or_default();
    let port = first
        .strip_prefix("axvm: GDB can connect to 127.0.0.1:")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("axvm did not say where GDB connects: {first:?}")
        });
    Served {
        child,
        port,
        stdout,
        stderr,
    }
}

impl Served {
    /// Waits for axvm's end once GDB is done: how it ended, its stdout and the rest of its
    /// stderr, with `gdb_output` for the failure messages.
    pub fn finish(mut self, gdb_output: String) -> Session {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("cannot wait for axvm") {
                break Some(status);
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(10));
        };
        // The reader ends at axvm's end of stderr.
        let stderr: Vec<String> = self.stderr.iter().collect();
        let stdout = self.stdout.join().expect("stdout reader");
        let session = Session {
            gdb: gdb_output,
            status,
            stdout,
            stderr: stderr.join("\n"),
        };
        assert!(
            session.status.is_some(),
            "axvm still ran {DEADLINE:?} after GDB was done; killed it\n{session}"
        );
        session
    }
}

/// A finished GDB session: what GDB printed, and how axvm ended and what it printed.
pub struct Session {
    pub gdb: String,
    /// `None` when axvm had to be killed.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

impl Session {
    /// Fails, showing GDB's output and axvm's end and stderr, unless GDB printed `text`.
    pub fn assert_gdb_printed(&self, text: &str) {
        assert!(
            self.gdb.contains(text),
            "GDB did not print {text:?}\n{self}"
        );
    }

    /// Fails unless axvm said on stderr that this host does not stop for `what`.
    pub fn assert_refusal_explained(&self, what: &str) {
        let said = self.stderr.lines().any(|line| {
            line.starts_with("axvm: this host's KVM does not stop for") && line.contains(what)
        });
        assert!(said, "axvm did not say it refuses {what}\n{self}");
    }

    /// Fails, showing both sides, unless axvm exited with status 0.
    pub fn assert_axvm_succeeded(&self) {
        let code = self.status.and_then(|status| status.code());
        assert_eq!(code, Some(0), "axvm did not succeed\n{self}");
    }
}

/// Both sides of a session, for failure messages: a VM that ended under GDB (a
/// "SIGKILL" to GDB) explains itself in axvm's stderr.
impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- GDB ---\n{}\n--- axvm ({:?}) stderr ---\n{}",
            self.gdb, self.status, self.stderr
        )
    }
}

/// Starts `gdb -batch -nx` connected to `port`, running `commands`, on `elf` if any.
pub fn start_gdb(port: u16, elf: Option<&Path>, commands: &[String]) -> Child {
    let mut gdb = Command::new("gdb");
    gdb.args([
        "-batch",
        "-nx",
        "-ex",
        &format!("target remote 127.0.0.1:{port}"),
    ]);
    for command in commands {
        gdb.args(["-ex", command]);
    }
    gdb.args(elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start gdb")
}

/// Runs gdb as [`start_gdb`] does to its end; its stdout and stderr together.
pub fn gdb(port: u16, elf: Option<&Path>, commands: &[String]) -> String {
    let child = start_gdb(port, elf, commands);
    wait_gdb(child)
}

pub fn wait_gdb(child: Child) -> String {
    let output = thread::spawn(move || {
        let output = child.wait_with_output().expect("gdb failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    });
    wait_thread(output)
}

/// The demo's symbols GDB knows, without the hash Rust appends (`demo::bsp` for
/// `demo::bsp::h888...`): their addresses.
pub fn demo_symbols(elf: &Path) -> HashMap<String, u64> {
    let output = Command::new("gdb")
        .args(["-batch", "-nx", "-ex", "info functions ^demo::", "-ex"])
        .arg("info variables ^demo::")
        .arg(elf)
        .output()
        .expect("cannot run gdb");
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| {
            let (addr, name) = line.trim().split_once(char::is_whitespace)?;
            let addr = u64::from_str_radix(addr.strip_prefix("0x")?, 16).ok()?;
            let name = name.trim();
            let name = name.rsplit_once("::h").map_or(name, |(base, _)| base);
            Some((name.to_string(), addr))
        })
        .collect()
}

pub fn symbol(symbols: &HashMap<String, u64>, name: &str) -> u64 {
    *symbols
        .get(name)
        .unwrap_or_else(|| panic!("no symbol {name} in the demo: {symbols:?}"))
}

/// What the demo prints without GDB.
pub fn demo_output_without_gdb(config: &Path) -> String {
    let plain = run(config);
    assert_eq!(plain.code(), 0, "{plain:#?}");
    plain.stdout
}

pub fn cmds(commands: &[&str]) -> Vec<String> {
    commands.iter().map(|c| c.to_string()).collect()
}

/// Sends gdb SIGINT (what Ctrl-C does) once it said SPINNING and the guest had time to
/// reach its loop; gdb's whole output once it ended.
pub fn interrupt_when_spinning(mut gdb: Child) -> String {
    let stderr = gdb.stderr.take().expect("piped");
    let stderr = thread::spawn(move || read_all(stderr));
    let mut stdout = BufReader::new(gdb.stdout.take().expect("piped"));
    let mut seen = String::new();
    while !seen.contains("SPINNING") {
        if stdout.read_line(&mut seen).unwrap_or(0) == 0 {
            let _ = gdb.kill();
            panic!("gdb ended before the guest spun: {seen}");
        }
    }
    thread::sleep(Duration::from_millis(500));
    // SAFETY: kill with a child's pid and a signal number.
    unsafe { libc::kill(gdb.id() as libc::pid_t, libc::SIGINT) };
    let rest = thread::spawn(move || read_all(stdout));
    let rest = wait_thread(rest);
    let _ = gdb.wait();
    seen + &rest + &wait_thread(stderr)
}

pub fn read_all(mut pipe: impl Read) -> String {
    let mut text = String::new();
    let _ = pipe.read_to_string(&mut text);
    text
}

/// `thread`'s result, or a failure once [`DEADLINE`] passed.
pub fn wait_thread(thread: thread::JoinHandle<String>) -> String {
    let start = Instant::now();
    while !thread.is_finished() {
        assert!(
            start.elapsed() < DEADLINE,
            "gdb still ran after the deadline"
        );
        thread::sleep(Duration::from_millis(10));
    }
    thread.join().expect("reader thread")
}

/// Which debug stops the host's KVM delivers, known independently of axvm (whose probe
/// the tests check against it).
#[derive(Debug)]
pub struct HostStops {
    /// `break`: the guest's `int3` reaches KVM (on kvm_pvm, as an emulation failure).
    pub int3: bool,
    /// `hbreak`: DR0-DR3 execute breakpoints.
    pub execute: bool,
    /// `watch`: DR0-DR3 data breakpoints.
    pub data: bool,
}

/// kvm_pvm emulates guest kernel code, and its emulator checks no data breakpoints. Under
/// the kvm-amd harness, whose `KVM_AMD_L0` says what runs its L1 ("qemu-tcg 7.2.22"), QEMU's
/// TCG delivers the L2 guest's `int3` without checking KVM's `#BP` intercept, and before
/// QEMU 9.1 arms no DR7 a VMRUN loads. Anywhere else (VT-x, AMD-V) KVM stops for all.
pub fn host_stops() -> HostStops {
    if Path::new("/sys/module/kvm_pvm").exists() {
        return HostStops {
            int3: true,
            execute: true,
            data: false,
        };
    }
    let l0 = std::env::var("KVM_AMD_L0").unwrap_or_default();
    if let Some(version) = l0.strip_prefix("qemu-tcg ") {
        let mut numbers = version.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
        let major_minor = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        let debug_registers = major_minor >= (9, 1);
        return HostStops {
            int3: false,
            execute: debug_registers,
            data: debug_registers,
        };
    }
    HostStops {
        int3: true,
        execute: true,
        data: true,
    }
}

/// Process `pid`'s threads, each as its name and whether seccomp confines it, once `ready`
/// holds for them or [`DEADLINE`] passed.
pub fn wait_for_threads(
    pid: u32,
    ready: impl Fn(&[(String, bool)]) -> bool,
) -> Vec<(String, bool)> {
    let start = Instant::now();
    loop {
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("the tasks")
            .filter_map(|task| {
                let dir = task.ok()?.path();
                let name = std::fs::read_to_string(dir.join("comm")).ok()?;
                let status = std::fs::read_to_string(dir.join("status")).ok()?;
                Some((name.trim().to_string(), status.contains("Seccomp:\t2")))
            })
            .collect::<Vec<_>>();
        if ready(&threads) || start.elapsed() > DEADLINE {
            return threads;
        }
        thread::sleep(Duration::from_millis(10));
    }
}
