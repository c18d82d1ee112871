//! virtio-net between two VMs of one process: the `virtio` guest in `virtio.net=ping` mode
//! in one VM and `virtio.net=pong` in the other, both on one in-process switch. ping
//! broadcasts `ping 1..3`; pong answers each to ping's address, which the switch learned
//! from the broadcast; each prints the other's MAC and exits 0.

mod common;

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

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

axvm_test_harness::main!(
    ping_and_pong_exchange_frames_through_a_switch,
    a_tap_that_cannot_be_opened_is_refused_naming_the_field,
);
