//! `axvm run A.toml B.toml`: several VMs in one process, at once. Their console lines come
//! prefixed with `[NAME] `, stderr ends with one status line per VM, and the exit status is
//! the first failing VM's. Two `virtio` guests in ping and pong mode on one `switch:` show
//! that the VMs really run side by side and share the switch.

mod common;

use std::path::{Path, PathBuf};

use common::{axvm, replace, require_kvm, Output, Scratch};

/// The virtio guest, named `name`, with one virtio-net device on `network` (or no device
/// when `network` is `None`), its command line ending in `words`.
fn virtio_config(id: usize, name: &str, words: &str, network: Option<&str>) -> String {
    let (rows, backends) = match network {
        Some(network) => (
            r#"[["net0", 0xd000_1000, 0x1000, 6, 0xE2, []]]"#.to_string(),
            format!("[devices.backends]\nnet0 = {{ net = \"{network}\" }}\n"),
        ),
        None => ("[]".to_string(), String::new()),
    };
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
cmdline = "console=ttyS0 {words}"
memory_regions = [[0x0, 0x200_0000, 0x7, 0]]

[devices]
passthrough_devices = []
emu_devices = {rows}
interrupt_mode = "emu"

{backends}"#
    )
}

/// Writes `configs` (file name, text) next to a copy of the virtio guest.
fn configs(scratch: &Scratch, configs: &[(&str, String)]) -> Vec<PathBuf> {
    scratch.copy_image(axvm_guests::VIRTIO_PATH, "virtio");
    configs
        .iter()
        .map(|(name, text)| scratch.write(name, text))
        .collect()
}

fn run(configs: &[PathBuf]) -> Output {
    let mut args = vec![Path::new("run")];
    args.extend(configs.iter().map(PathBuf::as_path));
    axvm(&args)
}

/// stderr's status lines, in order.
fn status_lines(output: &Output) -> Vec<&str> {
    output
        .stderr
        .lines()
        .filter(|line| line.starts_with("axvm: ["))
        .collect()
}

fn ping_and_pong_run_side_by_side_with_prefixed_consoles() {
    require_kvm();
    let scratch = Scratch::new("ping-pong");
    let switch = format!("switch:cli-{}", std::process::id());
    let paths = configs(
        &scratch,
        &[
            (
                "ping.toml",
                virtio_config(1, "vm-a", "virtio.net=ping", Some(&switch)),
            ),
            (
                "pong.toml",
                virtio_config(2, "vm-b", "virtio.net=pong", Some(&switch)),
            ),
        ],
    );
    let output = run(&paths);
    assert_eq!(output.code(), 0, "{output:#?}");
    for line in output.stdout.lines() {
        assert!(
            line.starts_with("[vm-a] virtio: ") || line.starts_with("[vm-b] virtio: "),
            "a console line without its VM's prefix, or broken: {line:?}\n{output:#?}"
        );
    }
    assert!(output
        .stdout
        .contains("[vm-a] virtio: net ok: mac 52:54:00:00:01:00 peer 52:54:00:00:02:00\n"));
    assert!(output
        .stdout
        .contains("[vm-b] virtio: net ok: mac 52:54:00:00:02:00 peer 52:54:00:00:01:00\n"));
    assert_eq!(
        status_lines(&output),
        [
            "axvm: [vm-a] status 0: the guest exited with status 0",
            "axvm: [vm-b] status 0: the guest exited with status 0",
        ],
        "{output:#?}"
    );
}

/// The virtio guest without a device exits 2; a VM beside it that succeeds does not hide
/// it.
fn a_failing_vm_gives_axvm_its_status() {
    require_kvm();
    let scratch = Scratch::new("one-fails");
    let paths = configs(
        &scratch,
        &[
            (
                "fine.toml",
                virtio_config(1, "fine", "", Some("switch:unused")),
            ),
            ("bare.toml", virtio_config(2, "bare", "", None)),
        ],
    );
    let output = run(&paths);
    assert_eq!(output.code(), 2, "{output:#?}");
    assert!(output.stdout.contains("[fine] virtio: all devices ok\n"));
    assert!(output
        .stdout
        .contains("[bare] virtio: FAIL: no virtio_mmio.device"));
    assert_eq!(
        status_lines(&output),
        [
            "axvm: [fine] status 0: the guest exited with status 0",
            "axvm: [bare] status 2: the guest exited with status 2",
        ],
        "{output:#?}"
    );
}

/// Every VM is created before any runs: a second config that cannot be used stops axvm
/// before the first guest prints anything.
fn a_bad_second_config_stops_axvm_before_any_guest_runs() {
    require_kvm();
    let scratch = Scratch::new("bad-second");
    let good = virtio_config(1, "good", "", Some("switch:unused"));
    let bad = replace(&good, "name = \"good\"", "name = \"bad\"");
    let bad = replace(&bad, "0xd000_1000, 0x1000, 6,", "0xd000_1000, 0x1000, 0,");
    let paths = configs(&scratch, &[("good.toml", good), ("bad.toml", bad)]);
    let output = run(&paths);
    assert_eq!(output.code(), 1, "{output:#?}");
    assert_eq!(output.stdout, "", "a guest ran: {output:#?}");
    assert!(output.stderr.contains("bad.toml"), "{output:#?}");
    assert!(output.stderr.contains("irq_id 0"), "{output:#?}");
    assert!(status_lines(&output).is_empty(), "{output:#?}");
}

fn two_vms_of_one_name_are_refused() {
    require_kvm();
    let scratch = Scratch::new("same-name");
    let text = virtio_config(1, "twin", "", None);
    let paths = configs(&scratch, &[("a.toml", text.clone()), ("b.toml", text)]);
    let output = run(&paths);
    assert_eq!(output.code(), 1, "{output:#?}");
    assert!(
        output.stderr.contains("both name their VM `twin`"),
        "{output:#?}"
    );
    assert_eq!(output.stdout, "");
}

/// `axvm check A B` checks each.
fn check_takes_several_configs() {
    let scratch = Scratch::new("check-several");
    let good = virtio_config(1, "good", "", Some("switch:lan"));
    let bad = replace(&good, "switch:lan", "tap:a/b");
    let paths = configs(&scratch, &[("good.toml", good), ("bad.toml", bad)]);
    let mut args = vec![Path::new("check")];
    args.extend(paths.iter().map(PathBuf::as_path));
    let output = axvm(&args);
    assert_eq!(output.code(), 1, "{output:#?}");
    assert!(
        output.stdout.contains("good.toml (VM 1 `good`"),
        "{output:#?}"
    );
    assert!(output.stdout.contains("[ok  ] valid"), "{output:#?}");
    assert!(
        output
            .stdout
            .contains("bad.toml: config field `devices.backends.net0`"),
        "{output:#?}"
    );
}

axvm_test_harness::main!(
    ping_and_pong_run_side_by_side_with_prefixed_consoles,
    a_failing_vm_gives_axvm_its_status,
    a_bad_second_config_stops_axvm_before_any_guest_runs,
    two_vms_of_one_name_are_refused,
    check_takes_several_configs,
);
