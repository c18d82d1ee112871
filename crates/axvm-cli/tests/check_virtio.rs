//! `axvm check` on a config with virtio devices: each device in the memory map with its
//! type, interrupt line and backend; the kernel command line with the `virtio_mmio.device=`
//! entries axvm appends; and a backend `run` would refuse refused by `check` in the same
//! words. None of this needs /dev/kvm: `run` refuses a backend before it opens KVM.

mod common;

use std::path::{Path, PathBuf};

use common::{axvm, replace, run, Output, Scratch};

/// The virtio guest's config with its blk and console devices (the net row dropped), in
/// `scratch` next to the guest image and, when `disk` is set, a disk image; `edit` changes
/// the config text further.
fn virtio_guest(scratch: &Scratch, disk: bool, edit: impl FnOnce(String) -> String) -> PathBuf {
    scratch.copy_image(axvm_guests::VIRTIO_PATH, "virtio");
    if disk {
        let mut bytes = vec![0u8; 4096];
        bytes[..16].copy_from_slice(b"axvm-virtio-disk");
        scratch.write("disk.img", bytes);
    }
    let text = replace(
        axvm_guests::VIRTIO_CONFIG,
        "    [\"net0\", 0xd000_1000, 0x1000, 6, 0xE2, []],   # virtio-net\n",
        "",
    );
    let text = replace(&text, "net0 = { net = \"switch:lan\" }", "");
    scratch.write("vm.toml", edit(text))
}

fn check(config: &Path) -> Output {
    axvm(&[std::ffi::OsStr::new("check"), config.as_os_str()])
}

/// The memory map line naming `what`.
fn map_line<'a>(output: &'a Output, what: &str) -> &'a str {
    output
        .stdout
        .split_once("\nMemory map:\n")
        .unwrap_or_else(|| panic!("no memory map: {output:#?}"))
        .1
        .lines()
        .find(|line| line.contains(what))
        .unwrap_or_else(|| panic!("no map line with {what:?}: {output:#?}"))
}

#[test]
fn each_virtio_device_shows_its_type_irq_and_backend() {
    let scratch = Scratch::new("check-virtio-map");
    let config = virtio_guest(&scratch, true, |text| {
        replace(
            &text,
            "vda = { path = \"disk.img\" }",
            "vda = { path = \"disk.img\", read_only = true }",
        )
    });
    let output = check(&config);
    assert!(!output.stdout.contains("[FAIL] config"), "{output:#?}");
    let disk = scratch.path("disk.img");
    let blk = map_line(&output, "virtio-blk vda");
    let want = format!("virtio-blk vda, IRQ 5, disk {} (read-only)", disk.display());
    assert!(blk.contains(&want), "{want:?} is not in {blk:?}");
    assert!(blk.contains("0x00d0000000-0x00d0001000"), "{blk}");
    let console = map_line(&output, "virtio-console hvc0");
    assert!(
        console.contains("virtio-console hvc0, IRQ 7, axvm's console and its input"),
        "{console}"
    );
}

#[test]
fn only_the_first_virtio_console_is_said_to_get_input() {
    let scratch = Scratch::new("check-virtio-consoles");
    let config = virtio_guest(&scratch, true, |text| {
        replace(
            &text,
            "    [\"hvc0\", 0xd000_2000, 0x1000, 7, 0xE3, []],   # virtio-console\n",
            "    [\"hvc0\", 0xd000_2000, 0x1000, 7, 0xE3, []],\n    [\"hvc1\", 0xd000_3000, 0x1000, 10, 0xE3, []],\n",
        )
    });
    let output = check(&config);
    assert!(!output.stdout.contains("[FAIL] config"), "{output:#?}");
    assert!(map_line(&output, "hvc0").contains("and its input"));
    assert!(map_line(&output, "hvc1").contains("output only"));
}

#[test]
fn check_shows_the_command_line_with_the_virtio_entries() {
    let scratch = Scratch::new("check-virtio-cmdline");
    let config = virtio_guest(&scratch, true, |text| {
        replace(
            &text,
            "cmdline = \"console=ttyS0\"",
            "cmdline = \"console=hvc0 virtio.echo\"",
        )
    });
    let output = check(&config);
    let shown = output
        .stdout
        .split_once("\nKernel command line (Pvh):\n")
        .unwrap_or_else(|| panic!("no command line: {output:#?}"))
        .1
        .lines()
        .next()
        .unwrap_or_default();
    assert_eq!(
        shown.trim(),
        "console=hvc0 virtio.echo virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0002000:7"
    );
}

#[test]
fn a_missing_disk_is_refused_by_check_in_the_words_of_run() {
    let scratch = Scratch::new("check-virtio-no-disk");
    let config = virtio_guest(&scratch, false, |text| text);
    let checked = check(&config);
    assert_eq!(checked.code(), 1, "{checked:#?}");
    let fail = checked
        .stdout
        .lines()
        .find_map(|line| line.strip_prefix("  [FAIL] "))
        .unwrap_or_else(|| panic!("no FAIL line: {checked:#?}"));
    assert!(fail.contains("devices.backends.vda"), "{fail}");
    assert!(
        fail.contains(&scratch.path("disk.img").display().to_string()),
        "{fail}"
    );
    // The map is still shown, the device with the disk it lacks.
    assert!(map_line(&checked, "virtio-blk vda").contains("disk "));

    let ran = run(&config);
    assert_eq!(ran.code(), 1, "{ran:#?}");
    let reason = ran.stderr.lines().next().unwrap_or_default();
    assert!(
        reason.ends_with(fail),
        "check said {fail:?}, run said {reason:?}"
    );
}
