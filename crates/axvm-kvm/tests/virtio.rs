//! The virtio guest (guests/virtio, driving the devices with the virtio-drivers crate) on
//! axvm's virtio-blk, on a real KVM VM: what the guest prints, how it exits, and what the
//! disk file holds afterwards.

mod common;

use std::path::{Path, PathBuf};

use axvm::device::UnclaimedAccessPolicy;
use axvm_guests::{VIRTIO, VIRTIO_CONFIG};
use axvm_kvm::VmOutcome;
use common::{boot, parse_config, require_kvm};

/// What the tests put at the start of sector 0; the guest prints it.
const DISK_TEXT: &[u8] = b"axvm-virtio-disk";
/// What the guest writes at the start of sector 1 (then spaces to 512 bytes).
const SECTOR1_TEXT: &[u8] = b"written by the virtio guest";
const SECTOR: usize = 512;
/// The guest's exit status when the block device fails (guests/virtio `status::BLK`).
const STATUS_BLK: u8 = 4;

/// A disk image file of 64 sectors in the temp directory, removed when dropped: sector 0
/// starts with [`DISK_TEXT`], sector `s` > 0 is filled with byte `s`.
struct TestDisk(PathBuf);

impl TestDisk {
    fn new(tag: &str) -> Self {
        let path =
            std::env::temp_dir().join(format!("axvm-virtio-kvm-{}-{tag}.img", std::process::id()));
        let mut bytes: Vec<u8> = (0..64u8).flat_map(|s| [s; SECTOR]).collect();
        bytes[..SECTOR].fill(0);
        bytes[..DISK_TEXT.len()].copy_from_slice(DISK_TEXT);
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self(path)
    }

    fn contents(&self) -> Vec<u8> {
        std::fs::read(&self.0).unwrap_or_else(|e| panic!("{}: {e}", self.0.display()))
    }
}

impl Drop for TestDisk {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `text` with `from` replaced by `to`; fails when `from` is missing, so a stale edit
/// cannot pass silently.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} is not in virtio.toml");
    text.replacen(from, to, 1)
}

/// The virtio guest's config with only the `vda` device, on `disk` (`read_only` or not).
fn blk_only_config(disk: &Path, read_only: bool) -> String {
    let mut text = VIRTIO_CONFIG.to_string();
    for row in [
        "    [\"net0\", 0xd000_1000, 0x1000, 6, 0xE2, []],   # virtio-net\n",
        "    [\"hvc0\", 0xd000_2000, 0x1000, 7, 0xE3, []],   # virtio-console\n",
        "net0 = { net = \"switch:lan\" }",
    ] {
        text = replace(&text, row, "");
    }
    let backend = if read_only {
        format!(
            "vda = {{ path = \"{}\", read_only = true }}",
            disk.display()
        )
    } else {
        format!("vda = {{ path = \"{}\" }}", disk.display())
    };
    replace(&text, "vda = { path = \"disk.img\" }", &backend)
}

/// Boots the virtio guest on `disk`; returns its exit status and console.
fn run_guest(disk: &Path, read_only: bool) -> (u8, String) {
    let config = parse_config(&blk_only_config(disk, read_only));
    let (result, console) = boot(config, VIRTIO, UnclaimedAccessPolicy::Ignore);
    match result {
        Ok(VmOutcome::Exited(status)) => (status, console),
        other => panic!("the guest did not exit: {other:?}; console:\n{console}"),
    }
}

/// Asserts `console` has `lines` in order.
fn assert_lines_in_order(console: &str, lines: &[&str]) {
    let mut rest = console.lines();
    for want in lines {
        assert!(
            rest.any(|line| line.trim_end() == *want),
            "no line {want:?} (in order) on the console:\n{console}"
        );
    }
}

fn blk_guest_reads_writes_and_flushes() {
    require_kvm();
    let disk = TestDisk::new("rw");
    let before = disk.contents();
    let (status, console) = run_guest(&disk.0, false);
    assert_eq!(status, 0, "console:\n{console}");
    assert_lines_in_order(
        &console,
        &[
            "virtio: 1 virtio_mmio.device entries",
            "virtio: 0xd0000000 blk",
            "virtio: blk capacity 64 sectors",
            "virtio: blk id \"axvm-virtio-vda\"",
            "virtio: blk sector 0: axvm-virtio-disk",
            "virtio: blk sector 1 written, flushed and read back",
            "virtio: blk ok",
            "virtio: all devices ok",
        ],
    );
    assert!(!console.contains("FAIL"), "{console}");
    let after = disk.contents();
    let mut sector1 = vec![b' '; SECTOR];
    sector1[..SECTOR1_TEXT.len()].copy_from_slice(SECTOR1_TEXT);
    assert_eq!(&after[SECTOR..2 * SECTOR], &sector1[..], "sector 1");
    // Nothing else changed.
    assert_eq!(&after[..SECTOR], &before[..SECTOR], "sector 0");
    assert_eq!(&after[2 * SECTOR..], &before[2 * SECTOR..], "sectors 2..");
}

fn read_only_blk_is_not_written() {
    require_kvm();
    let disk = TestDisk::new("ro");
    let before = disk.contents();
    let (status, console) = run_guest(&disk.0, true);
    // The driver sees VIRTIO_BLK_F_RO and does not try to write; had it tried, the device's
    // IOERR would end the guest with its blk status.
    assert_ne!(status, STATUS_BLK, "the blk device failed:\n{console}");
    assert_eq!(status, 0, "console:\n{console}");
    assert_lines_in_order(
        &console,
        &[
            "virtio: blk sector 0: axvm-virtio-disk",
            "virtio: blk read-only: sector 1 not written",
            "virtio: blk ok",
            "virtio: all devices ok",
        ],
    );
    assert_eq!(disk.contents(), before, "the read-only disk changed");
}

axvm_test_harness::main!(
    blk_guest_reads_writes_and_flushes,
    read_only_blk_is_not_written
);
