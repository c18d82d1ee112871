//! `axvm run --gdb HOST:PORT [--gdb-wait]`, driven by Debian's `gdb` in batch mode against
//! the demo guest's ELF (which has symbols, though no debug info): a breakpoint at a
//! function, a single step, registers, static variables, a port-write watch, a hardware
//! breakpoint, Ctrl-C, detach, and the guest running on to its normal exit with the console
//! output of a run without GDB. They run on kvm_pvm, which lacks only data watchpoints
//! (refused there, which the watchpoint test checks; on hardware KVM it checks the hit).

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{assert_refused, axvm, demo, raw_guest, require_kvm, run, skip, Scratch, DEADLINE};

/// Skips the calling test when `gdb` cannot run here (CI installs it).
fn require_gdb() {
    if let Err(err) = Command::new("gdb").arg("--version").output() {
        skip(format!("needs gdb: {err}"));
    }
}

/// A running `axvm run --gdb 127.0.0.1:0 ...`: the child, the port it listens on, and its
/// output so far.
struct Served {
    child: Child,
    port: u16,
    stdout: thread::JoinHandle<String>,
    stderr: mpsc::Receiver<String>,
}

/// Starts `axvm run --gdb 127.0.0.1:0 EXTRA.. CONFIG` and reads the port it prints.
fn serve(config: &Path, extra: &[&str]) -> Served {
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
    /// Waits for axvm's end: its exit code, stdout and the rest of its stderr.
    fn finish(mut self) -> (i32, String, String) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("cannot wait for axvm") {
                break status;
            }
            if start.elapsed() > DEADLINE {
                let _ = self.child.kill();
                panic!("axvm still ran {DEADLINE:?} after GDB was done");
            }
            thread::sleep(Duration::from_millis(10));
        };
        // The reader ends at axvm's end of stderr.
        let stderr: Vec<String> = self.stderr.iter().collect();
        let stdout = self.stdout.join().expect("stdout reader");
        (
            status.code().expect("axvm was killed"),
            stdout,
            stderr.join("\n"),
        )
    }
}

/// Starts `gdb -batch -nx` connected to `port`, running `commands`, on `elf` if any.
fn start_gdb(port: u16, elf: Option<&Path>, commands: &[String]) -> Child {
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
fn gdb(port: u16, elf: Option<&Path>, commands: &[String]) -> String {
    let child = start_gdb(port, elf, commands);
    wait_gdb(child)
}

fn wait_gdb(child: Child) -> String {
    let output = thread::spawn(move || {
        let output = child.wait_with_output().expect("gdb failed");
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    });
    wait_thread(output)
}

/// The demo's symbols GDB knows, without the hash Rust appends (`demo::bsp` for
/// `demo::bsp::h888...`): their addresses.
fn demo_symbols(elf: &Path) -> HashMap<String, u64> {
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

fn symbol(symbols: &HashMap<String, u64>, name: &str) -> u64 {
    *symbols
        .get(name)
        .unwrap_or_else(|| panic!("no symbol {name} in the demo: {symbols:?}"))
}

/// What the demo prints without GDB.
fn demo_output_without_gdb(config: &Path) -> String {
    let plain = run(config);
    assert_eq!(plain.code(), 0, "{plain:#?}");
    plain.stdout
}

fn cmds(commands: &[&str]) -> Vec<String> {
    commands.iter().map(|c| c.to_string()).collect()
}

fn gdb_breaks_steps_reads_watches_a_port_and_runs_the_guest_to_its_exit() {
    require_kvm();
    require_gdb();
    let scratch = Scratch::new("gdb-session");
    let config = demo(&scratch);
    let elf = scratch.path("demo");
    let symbols = demo_symbols(&elf);
    let bsp = symbol(&symbols, "demo::bsp");
    let mmio_check = symbol(&symbols, "demo::mmio::check");
    let release_ap = symbol(&symbols, "demo::smp::RELEASE_AP");
    let ap_done = symbol(&symbols, "demo::smp::AP_DONE");
    let served = serve(&config, &["--gdb-wait"]);
    let read_flags = format!(
        "printf \"flags %d %d\\n\", *(unsigned char *){release_ap:#x}, *(unsigned char *){ap_done:#x}"
    );
    let output = gdb(
        served.port,
        Some(&elf),
        &[
            "info threads".into(),
            "printf \"entry %#x cs %#x efer %#x pg %d\\n\", $pc, $cs, $efer, ($cr0 >> 31) & 1"
                .into(),
            format!("break *{bsp:#x}"),
            "continue".into(),
            "printf \"at %#x\\n\", $pc".into(),
            "stepi".into(),
            "printf \"stepped to %#x\\n\", $pc".into(),
            read_flags.clone(),
            "monitor watch-port 0x3f8".into(),
            "continue".into(),
            "monitor last-stop".into(),
            "monitor unwatch-port 0x3f8".into(),
            "delete".into(),
            format!("break *{mmio_check:#x}"),
            "continue".into(),
            read_flags,
            "delete".into(),
            "continue".into(),
        ],
    );
    // Both vCPUs are threads, stopped at the ELF entry in long mode before any instruction.
    assert!(
        output.contains("Thread 1.1") && output.contains("Thread 1.2"),
        "{output}"
    );
    assert!(
        output.contains("entry 0x200000 cs 0x8 efer 0x500 pg 1"),
        "{output}"
    );
    assert!(output.contains(&format!("at {bsp:#x}")), "{output}");
    assert!(output.contains("hit Breakpoint 1"), "{output}");
    let stepped = output
        .lines()
        .find_map(|line| line.strip_prefix("stepped to 0x"))
        .and_then(|pc| u64::from_str_radix(pc, 16).ok())
        .unwrap_or_else(|| panic!("no step: {output}"));
    assert!(stepped > bsp && stepped < bsp + 16, "{output}");
    // Before the AP is released, then after it said hello.
    assert!(output.contains("flags 0 0"), "{output}");
    assert!(output.contains("flags 1 1"), "{output}");
    // The first console byte: 'a' of "axvm demo guest", from vCPU 0.
    assert!(output.contains("received signal SIGTRAP"), "{output}");
    assert!(
        output.contains("vCPU 0 wrote 0x61 to port 0x3f8"),
        "{output}"
    );
    assert!(output.contains("exited normally"), "{output}");
    let (code, stdout, stderr) = served.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, demo_output_without_gdb(&config));
}

fn a_hardware_breakpoint_then_ctrl_c_stops_every_vcpu_and_the_guest_goes_on() {
    require_kvm();
    require_gdb();
    let scratch = Scratch::new("gdb-interrupt");
    let config = demo(&scratch);
    let elf = scratch.path("demo");
    let symbols = demo_symbols(&elf);
    let release = symbol(&symbols, "demo::smp::release_ap_and_wait");
    let served = serve(&config, &["--gdb-wait"]);
    // At the hardware breakpoint vCPU 0 is sent to a `jmp .` written at 0x30_0000 (free
    // RAM), so that it spins until Ctrl-C; then it goes back and the guest finishes.
    let gdb = start_gdb(
        served.port,
        Some(&elf),
        &cmds(&[
            &format!("hbreak *{release:#x}"),
            "continue",
            "printf \"hw at %#x\\n\", $pc",
            "set $saved = $pc",
            "set var *(unsigned short *)0x300000 = 0xfeeb",
            "set $pc = 0x300000",
            "delete",
            "echo SPINNING\\n",
            "continue",
            "printf \"interrupted at %#x\\n\", $pc",
            "info threads",
            "set $pc = $saved",
            "continue",
        ]),
    );
    let output = interrupt_when_spinning(gdb);
    assert!(output.contains(&format!("hw at {release:#x}")), "{output}");
    assert!(output.contains("received signal SIGINT"), "{output}");
    assert!(output.contains("interrupted at 0x300000"), "{output}");
    assert!(output.contains("Thread 1.2"), "{output}");
    assert!(output.contains("exited normally"), "{output}");
    let (code, stdout, stderr) = served.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, demo_output_without_gdb(&config));
}

/// Sends gdb SIGINT (what Ctrl-C does) once it said SPINNING and the guest had time to
/// reach its loop; gdb's whole output once it ended.
fn interrupt_when_spinning(mut gdb: Child) -> String {
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

fn read_all(mut pipe: impl Read) -> String {
    let mut text = String::new();
    let _ = pipe.read_to_string(&mut text);
    text
}

/// `thread`'s result, or a failure once [`DEADLINE`] passed.
fn wait_thread(thread: thread::JoinHandle<String>) -> String {
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

fn detach_lets_the_vm_finish_and_a_bad_address_is_refused() {
    require_kvm();
    require_gdb();
    let scratch = Scratch::new("gdb-detach");
    let config = demo(&scratch);
    let elf = scratch.path("demo");
    let bsp = symbol(&demo_symbols(&elf), "demo::bsp");
    let served = serve(&config, &["--gdb-wait"]);
    let output = gdb(
        served.port,
        Some(&elf),
        &cmds(&[&format!("break *{bsp:#x}"), "continue", "detach"]),
    );
    assert!(output.contains("hit Breakpoint 1"), "{output}");
    assert!(output.contains("detached"), "{output}");
    let (code, stdout, stderr) = served.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, demo_output_without_gdb(&config));

    // An address no interface has: refused before the VM exists, naming the flag.
    let refused = axvm(&["run", "--gdb", "192.0.2.1:1234", config.to_str().unwrap()]);
    let line = assert_refused(&refused, "--gdb 192.0.2.1:1234");
    assert!(line.contains("cannot listen there"), "{line}");
}

fn a_malformed_gdb_address_or_a_lone_gdb_wait_is_a_usage_error() {
    for args in [
        &["run", "--gdb", "1234"][..],
        &["run", "--gdb", "localhost:http"],
        &["run", "--gdb-wait"],
        &["run", "--gdb", "127.0.0.1:0", "--watchdog", "5"],
    ] {
        let output = axvm(args);
        assert_eq!(output.code(), 2, "{args:?}: {output:#?}");
        assert!(output.stderr.contains("--gdb"), "{args:?}: {output:#?}");
        assert_eq!(output.stdout, "", "{args:?}");
    }
}

/// kvm_pvm emulates guest kernel code, and its emulator checks no data breakpoints.
fn host_is_kvm_pvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

fn a_data_watchpoint_stops_after_the_write_or_is_refused_on_kvm_pvm() {
    require_kvm();
    require_gdb();
    let scratch = Scratch::new("gdb-watch");
    let config = demo(&scratch);
    let elf = scratch.path("demo");
    let ap_done = symbol(&demo_symbols(&elf), "demo::smp::AP_DONE");
    let served = serve(&config, &["--gdb-wait"]);
    let output = gdb(
        served.port,
        Some(&elf),
        &cmds(&[
            &format!("watch *(unsigned char *){ap_done:#x}"),
            "continue",
            "delete",
            "continue",
        ]),
    );
    if host_is_kvm_pvm() {
        assert!(
            output.contains("Could not insert hardware watchpoint 1"),
            "{output}"
        );
    } else {
        // The AP (thread 2) sets AP_DONE after its hello.
        assert!(
            output.contains("Thread 2 hit Hardware watchpoint 1"),
            "{output}"
        );
        assert!(output.contains("New value = 1"), "{output}");
    }
    assert!(output.contains("exited normally"), "{output}");
    let (code, stdout, stderr) = served.finish();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, demo_output_without_gdb(&config));
}

/// `mov al,'R'; out 0xe9,al; mov al,10; out 0xe9,al; 1: jmp 1b` at 0x8000, real mode.
const READY_THEN_SPIN: &[u8] = &[0xb0, 0x52, 0xe6, 0xe9, 0xb0, 0x0a, 0xe6, 0xe9, 0xeb, 0xfe];

fn gdb_attaches_to_a_running_real_mode_guest_whose_threads_stay_confined() {
    require_kvm();
    require_gdb();
    let scratch = Scratch::new("gdb-attach");
    let config = raw_guest(&scratch, READY_THEN_SPIN);
    let served = serve(&config, &[]);
    // Let the guest print and spin: GDB attaches to a running VM.
    thread::sleep(Duration::from_millis(500));
    let threads = std::fs::read_dir(format!("/proc/{}/task", served.child.id()))
        .expect("the tasks")
        .filter_map(|task| {
            let dir = task.ok()?.path();
            let name = std::fs::read_to_string(dir.join("comm")).ok()?;
            let status = std::fs::read_to_string(dir.join("status")).ok()?;
            Some((name.trim().to_string(), status.contains("Seccomp:\t2")))
        })
        .collect::<Vec<_>>();
    assert!(
        threads.contains(&("axvm-gdb".to_string(), true)),
        "{threads:?}"
    );
    assert!(threads.iter().all(|(_, confined)| *confined), "{threads:?}");
    let output = gdb(
        served.port,
        None,
        &cmds(&[
            "printf \"rip %#x cs %#x cr0 %#x\\n\", $pc, $cs, $cr0",
            "x/2xb 0x8008",
            "kill",
        ]),
    );
    // Real mode: RIP is the offset in CS, here 0 with the image at 0x8000; `jmp .` there.
    assert!(output.contains("rip 0x8008 cs 0 "), "{output}");
    assert!(output.contains("0xeb\t0xfe"), "{output}");
    let (_, stdout, stderr) = served.finish();
    assert_eq!(stdout, "R\n");
    assert!(stderr.contains("killed the VM"), "{stderr}");
}

axvm_test_harness::main!(
    gdb_breaks_steps_reads_watches_a_port_and_runs_the_guest_to_its_exit,
    a_hardware_breakpoint_then_ctrl_c_stops_every_vcpu_and_the_guest_goes_on,
    detach_lets_the_vm_finish_and_a_bad_address_is_refused,
    a_malformed_gdb_address_or_a_lone_gdb_wait_is_a_usage_error,
    a_data_watchpoint_stops_after_the_write_or_is_refused_on_kvm_pvm,
    gdb_attaches_to_a_running_real_mode_guest_whose_threads_stay_confined,
);
