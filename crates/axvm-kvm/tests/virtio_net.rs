//! virtio-net between two VMs of one process: the `virtio` guest in `virtio.net=ping` mode
//! in one VM and `virtio.net=pong` in the other, both on one in-process switch. ping
//! broadcasts `ping 1..3`; pong answers each to ping's address, which the switch learned
//! from the broadcast; each prints the other's MAC and exits 0.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use axvm_kvm::{KvmVm, VmOptions, VmOutcome};
use common::{parse_config, require_kvm, Console};

/// A hang turns into a failure after this; the exchange takes a few seconds here.
const DEADLINE: Duration = Duration::from_secs(120);

/// The virtio guest with one virtio-net device on `network`, in `mode` (ping or pong).
fn net_config(id: usize, name: &str, mode: &str, network: &str, mac: Option<&str>) -> String {
    let mac = mac.map_or(String::new(), |mac| format!(", mac = \"{mac}\""));
    format!(
        r#"
[base]
id = {id}
name = "{name}"
vm_type = 1
cpu_num = 1

[kernel]
entry_point = 0x10_0000
image_location = "memory"
kernel_path = "virtio"
kernel_load_addr = 0x10_0000
cmdline = "console=ttyS0 virtio.net={mode}"
memory_regions = [[0x0, 0x200_0000, 0x7, 0]]

[devices]
passthrough_devices = []
emu_devices = [["net0", 0xd000_1000, 0x1000, 6, 0xE2, []]]
interrupt_mode = "emu"

[devices.backends]
net0 = {{ net = "{network}"{mac} }}
"#
    )
}

fn create(config: &str, console: &Console) -> KvmVm {
    let images = axvm_kvm::BootImages {
        kernel: axvm_guests::VIRTIO.to_vec(),
        ..Default::default()
    };
    let options = VmOptions {
        console: Box::new(console.clone()),
        ..Default::default()
    };
    KvmVm::create(parse_config(config), &images, options).expect("cannot create the VM")
}

/// Runs every VM at once; returns how each ended, in order. A VM still running at the
/// deadline fails the test (all are shut down first).
fn run_all(vms: Vec<(KvmVm, Console)>) -> Vec<VmOutcome> {
    let vms: Vec<_> = vms.into_iter().map(|(vm, c)| (Arc::new(vm), c)).collect();
    let (done, ended) = mpsc::channel();
    for (index, (vm, _)) in vms.iter().enumerate() {
        let (vm, done) = (vm.clone(), done.clone());
        thread::spawn(move || {
            let _ = done.send((index, vm.run()));
        });
    }
    let mut outcomes = vec![None; vms.len()];
    for _ in 0..vms.len() {
        match ended.recv_timeout(DEADLINE) {
            Ok((index, result)) => {
                outcomes[index] = Some(result.unwrap_or_else(|err| {
                    panic!("VM {index} failed: {err}; console: {}", vms[index].1.text())
                }))
            }
            Err(_) => {
                vms.iter().for_each(|(vm, _)| vm.vm().shutdown());
                let consoles: Vec<_> = vms.iter().map(|(_, c)| c.text()).collect();
                panic!("the VMs still ran after {DEADLINE:?}; consoles: {consoles:#?}");
            }
        }
    }
    outcomes.into_iter().flatten().collect()
}

fn ping_and_pong_exchange_frames_through_a_switch() {
    require_kvm();
    let network = format!("switch:kvm-test-{}", std::process::id());
    let (ping_console, pong_console) = (Console::default(), Console::default());
    // ping takes its default address (VM id 1, row 0), pong a configured one.
    let ping = create(
        &net_config(1, "ping", "ping", &network, None),
        &ping_console,
    );
    let pong = create(
        &net_config(2, "pong", "pong", &network, Some("52:54:00:12:34:56")),
        &pong_console,
    );
    let outcomes = run_all(vec![
        (ping, ping_console.clone()),
        (pong, pong_console.clone()),
    ]);
    let (ping_text, pong_text) = (ping_console.text(), pong_console.text());
    assert_eq!(
        outcomes,
        [VmOutcome::Exited(0), VmOutcome::Exited(0)],
        "ping: {ping_text}\npong: {pong_text}"
    );
    assert!(
        ping_text.contains("virtio: net ok: mac 52:54:00:00:01:00 peer 52:54:00:12:34:56"),
        "{ping_text}"
    );
    assert!(
        pong_text.contains("virtio: net ok: mac 52:54:00:12:34:56 peer 52:54:00:00:01:00"),
        "{pong_text}"
    );
    for round in 1..=3 {
        assert!(ping_text.contains(&format!("virtio: pong {round} from 52:54:00:12:34:56")));
    }
}

/// A tap the host cannot give is a creation failure naming the backend's field.
fn a_tap_that_cannot_be_opened_is_refused_naming_the_field() {
    require_kvm();
    // A legal name whose interface is of another kind (the loopback device): TUNSETIFF
    // fails whatever the privileges.
    let config = net_config(4, "taplo", "ping", "tap:lo", None);
    let images = axvm_kvm::BootImages {
        kernel: axvm_guests::VIRTIO.to_vec(),
        ..Default::default()
    };
    let err = match KvmVm::create(parse_config(&config), &images, VmOptions::default()) {
        Ok(_) => panic!("a VM on tap:lo was created"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("devices.backends.net0.net"), "{err}");
    assert!(err.contains("tap lo"), "{err}");
}

/// The host's end of tap `name`: the interface brought up and an AF_PACKET socket on it.
fn host_end_of_tap(name: &str) -> OwnedFd {
    // SAFETY: socket and ioctl calls on descriptors and plain structs owned here.
    unsafe {
        let control = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        assert!(control >= 0, "{}", std::io::Error::last_os_error());
        let control = OwnedFd::from_raw_fd(control);
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, &byte) in request.ifr_name.iter_mut().zip(name.as_bytes()) {
            *slot = byte as libc::c_char;
        }
        let found = libc::ioctl(control.as_raw_fd(), libc::SIOCGIFINDEX, &mut request);
        assert_eq!(found, 0, "{}", std::io::Error::last_os_error());
        let index = request.ifr_ifru.ifru_ifindex;
        request.ifr_ifru.ifru_flags = libc::IFF_UP as libc::c_short;
        let up = libc::ioctl(control.as_raw_fd(), libc::SIOCSIFFLAGS, &mut request);
        assert_eq!(up, 0, "{}", std::io::Error::last_os_error());
        let protocol = (libc::ETH_P_ALL as u16).to_be();
        let socket = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(protocol),
        );
        assert!(socket >= 0, "{}", std::io::Error::last_os_error());
        let socket = OwnedFd::from_raw_fd(socket);
        let mut address: libc::sockaddr_ll = std::mem::zeroed();
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = protocol;
        address.sll_ifindex = index;
        let bound = libc::bind(
            socket.as_raw_fd(),
            &address as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(bound, 0, "{}", std::io::Error::last_os_error());
        socket
    }
}

/// The next frame on `socket`, or `None` when none came within a short poll (the caller
/// checks whether the VM is still running, and asks again).
fn next_frame(socket: &OwnedFd) -> Option<Vec<u8>> {
    let mut poll = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd, then a read into a buffer, both owned here.
    unsafe {
        if libc::poll(&mut poll, 1, 100) != 1 {
            return None;
        }
        let mut buffer = vec![0u8; 2048];
        let len = libc::recv(
            socket.as_raw_fd(),
            buffer.as_mut_ptr().cast(),
            buffer.len(),
            0,
        );
        buffer.truncate(usize::try_from(len).ok()?);
        Some(buffer)
    }
}

/// The guest pings over a host tap, and the test, on the host side of the tap, answers
/// each ping as pong would: frames cross the tap both ways through the device.
fn a_guest_on_a_tap_exchanges_frames_with_the_host() {
    require_kvm();
    const HOST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc];
    let name = format!("axvmk{}", std::process::id() % 100_000);
    let console = Console::default();
    let config = net_config(5, "tapping", "ping", &format!("tap:{name}"), None);
    let images = axvm_kvm::BootImages {
        kernel: axvm_guests::VIRTIO.to_vec(),
        ..Default::default()
    };
    let options = VmOptions {
        console: Box::new(console.clone()),
        ..Default::default()
    };
    let vm = match KvmVm::create(parse_config(&config), &images, options) {
        Ok(vm) => Arc::new(vm),
        Err(err) if err.to_string().contains("CAP_NET_ADMIN") => {
            common::skip(format!("no tap here: {err}"))
        }
        Err(err) => panic!("cannot create the VM: {err}"),
    };
    let socket = host_end_of_tap(&name);
    let (done, ended) = mpsc::channel();
    let runner = vm.clone();
    thread::spawn(move || {
        let _ = done.send(runner.run());
    });
    let mut answered = 0;
    let start = Instant::now();
    let outcome = loop {
        if let Ok(result) = ended.try_recv() {
            break result.expect("the VM failed");
        }
        if start.elapsed() > DEADLINE {
            vm.vm().shutdown();
            panic!("the VM still ran after {DEADLINE:?}: {}", console.text());
        }
        let Some(frame) = next_frame(&socket) else {
            continue;
        };
        let Some(round) = ping_round(&frame) else {
            continue;
        };
        let mut pong = [&frame[6..12], &HOST_MAC[..], &[0x88, 0xb5]].concat();
        pong.extend_from_slice(format!("pong {round}").as_bytes());
        pong.resize(60, 0);
        // SAFETY: writes from `pong`, which outlives the call.
        let sent = unsafe { libc::send(socket.as_raw_fd(), pong.as_ptr().cast(), pong.len(), 0) };
        assert_eq!(sent, 60, "{}", std::io::Error::last_os_error());
        answered += 1;
        assert!(answered < 100, "the guest kept pinging: {}", console.text());
    };
    let text = console.text();
    assert_eq!(outcome, VmOutcome::Exited(0), "{text}");
    assert!(
        text.contains("virtio: net ok: mac 52:54:00:00:05:00 peer 52:54:00:aa:bb:cc"),
        "{text}"
    );
}

/// The round of a `ping <n>` frame of the virtio guest.
fn ping_round(frame: &[u8]) -> Option<u32> {
    if frame.get(12..14)? != [0x88, 0xb5] {
        return None;
    }
    let payload = frame.get(14..)?;
    let end = payload
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(payload.len());
    std::str::from_utf8(&payload[..end])
        .ok()?
        .strip_prefix("ping ")?
        .parse()
        .ok()
}

axvm_test_harness::main!(
    a_guest_on_a_tap_exchanges_frames_with_the_host,
    ping_and_pong_exchange_frames_through_a_switch,
    a_tap_that_cannot_be_opened_is_refused_naming_the_field,
);
