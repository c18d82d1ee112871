//! The virtio guest against the reference: QEMU's virtio-mmio devices (`-M microvm`, TCG).
//!
//! This proves the guest (and the virtio-drivers crate under it) right independently of
//! axvm's devices, so a failure of the same guest under axvm points at axvm. Each test boots
//! the image with `-kernel` (QEMU boots it through its PVH note) and the devices on the
//! command line of QEMU; microvm without ACPI appends their `virtio_mmio.device=` entries to
//! the guest's command line. Skipped when `qemu-system-x86_64` is not installed (CI installs
//! it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use axvm_guests::VIRTIO_PATH;

/// Sector 0 of the test disks, as the guest prints it.
const DISK_TEXT: &[u8] = b"axvm-virtio-disk";
const SECTOR: usize = 512;

/// A fresh directory for one test's files.
fn work_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("axvm-virtio-qemu-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// A 1 MiB raw disk whose sector 0 starts with [`DISK_TEXT`].
fn make_disk(dir: &Path) -> PathBuf {
    let path = dir.join("disk.img");
    let mut bytes = vec![0u8; 1 << 20];
    bytes[..DISK_TEXT.len()].copy_from_slice(DISK_TEXT);
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// QEMU with the guest, a command line and `devices`; stdout is COM1.
fn qemu(append: &str, devices: &[String]) -> Command {
    let mut command = Command::new("qemu-system-x86_64");
    command
        .args(["-M", "microvm,acpi=off", "-accel", "tcg", "-m", "128M"])
        .args([
            "-nographic",
            "-no-reboot",
            "-serial",
            "stdio",
            "-monitor",
            "none",
        ])
        .args([
            "-display",
            "none",
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=4",
        ])
        .args(["-global", "virtio-mmio.force-legacy=false"])
        .args(["-kernel", VIRTIO_PATH, "-append"])
        .arg(format!("console=ttyS0 {append}"))
        .args(devices)
        .stdin(Stdio::null());
    command
}

/// Runs QEMU to its end; skips the test when QEMU is not installed.
fn run(mut command: Command) -> Output {
    match command.output() {
        Ok(output) => output,
        Err(e) => axvm_test_harness::skip(format!("needs qemu-system-x86_64: {e}")),
    }
}

/// The guest's exit status from QEMU's: isa-debug-exit makes QEMU exit with
/// `(status << 1) | 1`.
fn guest_status(code: Option<i32>) -> Option<i32> {
    code.filter(|c| c % 2 == 1).map(|c| c >> 1)
}

/// Asserts the guest exited 0 and returns its console.
fn passed(output: Output) -> String {
    let console = String::from_utf8_lossy(&output.stdout).replace('\r', "");
    assert_eq!(
        guest_status(output.status.code()),
        Some(0),
        "guest did not pass ({}):\n{console}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    console
}

fn blk_devices(disk: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("id=d0,file={},format=raw,if=none", disk.display()),
        "-device".into(),
        "virtio-blk-device,drive=d0,serial=vda".into(),
    ]
}

fn sector(disk: &Path, index: usize) -> Vec<u8> {
    let bytes = std::fs::read(disk).unwrap_or_else(|e| panic!("{}: {e}", disk.display()));
    bytes[index * SECTOR..(index + 1) * SECTOR].to_vec()
}

/// The default mode on a blk and a console device: every line the guest promises, sector 1
/// on the disk, the greeting in the console's file.
fn default_mode_exercises_blk_and_console() {
    let dir = work_dir("default");
    let disk = make_disk(&dir);
    let hvc = dir.join("hvc.out");
    let mut devices = blk_devices(&disk);
    devices.extend([
        "-device".into(),
        "virtio-serial-device".into(),
        "-chardev".into(),
        format!("file,id=c0,path={}", hvc.display()),
        "-device".into(),
        "virtconsole,chardev=c0".into(),
    ]);
    let console = passed(run(qemu("", &devices)));
    let expected = [
        "virtio: 2 virtio_mmio.device entries",
        "virtio: 0xfeb00e00 blk",
        "virtio: blk capacity 2048 sectors",
        "virtio: blk id \"vda\"",
        "virtio: blk sector 0: axvm-virtio-disk",
        "virtio: blk sector 1 written, flushed and read back",
        "virtio: blk ok",
        "virtio: 0xfeb00c00 console",
        "virtio: console ok",
        "virtio: all devices ok",
    ];
    let lines: Vec<&str> = console.lines().collect();
    assert_eq!(lines, expected, "console:\n{console}");

    let mut written = b"written by the virtio guest".to_vec();
    written.resize(SECTOR, b' ');
    assert_eq!(sector(&disk, 1), written, "sector 1 on the disk");
    let greeting = std::fs::read_to_string(&hvc).unwrap_or_default();
    assert_eq!(
        greeting, "virtio: hello from hvc0\n",
        "the virtio console's output"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `virtio.durability=N`: a `flushed k` line per block, each block on the disk as the
/// guest's module doc defines it.
fn durability_mode_reports_each_flushed_block() {
    let dir = work_dir("durability");
    let disk = make_disk(&dir);
    let blocks = 12;
    let console = passed(run(qemu(
        &format!("virtio.durability={blocks}"),
        &blk_devices(&disk),
    )));
    let flushed: Vec<&str> = console
        .lines()
        .filter(|l| l.starts_with("virtio: flushed "))
        .collect();
    let expected: Vec<String> = (0..blocks)
        .map(|k| format!("virtio: flushed {k}"))
        .collect();
    assert_eq!(flushed, expected, "console:\n{console}");
    for k in 0..blocks {
        let mut block = format!("block {k}\n").into_bytes();
        let text = block.len();
        block.extend((text..SECTOR).map(|i| b'a' + ((k + i) % 26) as u8));
        assert_eq!(sector(&disk, k), block, "block {k} on the disk");
    }
    assert_eq!(
        sector(&disk, blocks)[..],
        [0; SECTOR][..],
        "past the last block"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `virtio.echo`: a line typed into the virtio console comes back as `echo: <line>`.
fn echo_mode_answers_on_the_virtio_console() {
    let dir = work_dir("echo");
    let socket = dir.join("hvc.sock");
    let devices = [
        "-device".into(),
        "virtio-serial-device".into(),
        "-chardev".into(),
        format!("socket,id=c0,path={},server=on,wait=on", socket.display()),
        "-device".into(),
        "virtconsole,chardev=c0".into(),
    ];
    let mut command = qemu("virtio.echo", &devices);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = spawn(command);
    // wait=on: QEMU listens before it starts the guest, and waits for this connection.
    let mut stream = connect(&socket, &mut child);
    // Only a backstop against a broken guest hanging the test; the guest answers at once.
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .expect("socket timeout");
    let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut console = String::new();
    while !console.contains("virtio: echo: waiting for a line") {
        if stdout.read_line(&mut console).unwrap_or(0) == 0 {
            panic!("the guest ended before waiting for its line:\n{console}");
        }
    }
    stream
        .write_all(b"hello axvm\n")
        .expect("write to the virtio console");
    let mut reply = Vec::new();
    let mut byte = [0u8];
    while !reply.ends_with(b"\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        reply.push(byte[0]);
    }
    assert_eq!(String::from_utf8_lossy(&reply), "echo: hello axvm\n");
    stdout.read_to_string(&mut console).expect("QEMU's stdout");
    let status = child.wait().expect("QEMU's status");
    assert_eq!(guest_status(status.code()), Some(0), "{status}:\n{console}");
    assert!(console.contains("virtio: echo ok: hello axvm"), "{console}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn spawn(mut command: Command) -> Child {
    match command.spawn() {
        Ok(child) => child,
        Err(e) => axvm_test_harness::skip(format!("needs qemu-system-x86_64: {e}")),
    }
}

/// Connects to QEMU's chardev socket once QEMU has created it (QEMU failing first ends
/// the test with its error).
fn connect(socket: &Path, child: &mut Child) -> UnixStream {
    loop {
        if let Ok(stream) = UnixStream::connect(socket) {
            return stream;
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                let _ = stderr.read_to_string(&mut err);
            }
            panic!(
                "QEMU ended ({status}) before listening on {}: {err}",
                socket.display()
            );
        }
        std::thread::yield_now();
    }
}

/// Two local UDP ports nobody uses right now.
fn free_udp_ports() -> (u16, u16) {
    let a = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    let b = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
    let ports = (
        a.local_addr().expect("port").port(),
        b.local_addr().expect("port").port(),
    );
    drop((a, b));
    ports
}

/// `virtio.net=ping` and `virtio.net=pong` in two QEMUs joined by a UDP tunnel on the
/// loopback (`-netdev dgram`): three pings answered, each side names the other's MAC.
fn ping_pong_between_two_vms() {
    let (port_a, port_b) = free_udp_ports();
    let net = |mode: &str, local: u16, remote: u16, mac: &str| {
        let devices = [
            "-netdev".into(),
            format!(
                "dgram,id=n0,local.type=inet,local.host=127.0.0.1,local.port={local},\
                 remote.type=inet,remote.host=127.0.0.1,remote.port={remote}"
            ),
            "-device".into(),
            format!("virtio-net-device,netdev=n0,mac={mac}"),
        ];
        let mut command = qemu(&format!("virtio.net={mode}"), &devices);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        spawn(command)
    };
    let pong = net("pong", port_a, port_b, "52:54:00:00:00:02");
    let ping = net("ping", port_b, port_a, "52:54:00:00:00:01");
    let ping = passed(ping.wait_with_output().expect("ping's QEMU"));
    let pong = passed(pong.wait_with_output().expect("pong's QEMU"));
    for k in 1..=3 {
        let line = format!("virtio: pong {k} from 52:54:00:00:00:02");
        assert!(
            ping.lines().any(|l| l == line),
            "ping lacks `{line}`:\n{ping}"
        );
        let line = format!("virtio: ping {k} from 52:54:00:00:00:01");
        assert!(
            pong.lines().any(|l| l == line),
            "pong lacks `{line}`:\n{pong}"
        );
    }
    assert!(
        ping.contains("virtio: net ok: mac 52:54:00:00:00:01 peer 52:54:00:00:00:02"),
        "{ping}"
    );
    assert!(
        pong.contains("virtio: net ok: mac 52:54:00:00:00:02 peer 52:54:00:00:00:01"),
        "{pong}"
    );
}

/// A command line without device entries is a failure, not a silent pass.
fn no_devices_is_a_failure() {
    let output = run(qemu("", &[]));
    let console = String::from_utf8_lossy(&output.stdout);
    assert_eq!(guest_status(output.status.code()), Some(2), "{console}");
    assert!(
        console.contains("virtio: FAIL: no virtio_mmio.device=<size>@<base>:<irq> entry"),
        "{console}"
    );
}

axvm_test_harness::main!(
    default_mode_exercises_blk_and_console,
    durability_mode_reports_each_flushed_block,
    echo_mode_answers_on_the_virtio_console,
    ping_pong_between_two_vms,
    no_devices_is_a_failure,
);
