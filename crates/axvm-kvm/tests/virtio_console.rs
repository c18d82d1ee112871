//! The virtio console on KVM, driven by someone else's driver (the `virtio` guest runs the
//! virtio-drivers crate's): what the guest writes to hvc0 reaches the VM's console beside
//! COM1's output, and the VM's console input reaches the guest through hvc0 instead of COM1.

mod common;

use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::{VmOptions, VmOutcome};
use common::{create, parse_config, require_kvm, run_bounded, Console};

/// A disk image for the guest's blk device: sector 0 starts as the guest expects.
struct DiskFile(PathBuf);

impl DiskFile {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "axvm-virtio-console-{}-{tag}.img",
            std::process::id()
        ));
        let mut bytes = vec![0u8; 4096];
        bytes[..16].copy_from_slice(b"axvm-virtio-disk");
        std::fs::write(&path, bytes).expect("cannot write the disk image");
        Self(path)
    }
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `text` with `from` replaced by `to`; fails if `from` is not there, so an edit that
/// silently does nothing cannot make a test pass.
fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "{from:?} is not in the config:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// The guest's own config with a blk and a console device (its net row dropped), the disk
/// at `disk`, and `words` added to the command line.
fn blk_and_console_config(disk: &DiskFile, words: &str) -> axvm::AxVMConfig {
    let text = axvm_guests::VIRTIO_CONFIG;
    let text = replace_once(
        text,
        "    [\"net0\", 0xd000_1000, 0x1000, 6, 0xE2, []],   # virtio-net\n",
        "",
    );
    let text = replace_once(&text, "net0 = { net = \"switch:lan\" }", "");
    let text = replace_once(
        &text,
        "vda = { path = \"disk.img\" }",
        &format!("vda = {{ path = {:?} }}", disk.0.display().to_string()),
    );
    let text = replace_once(
        &text,
        "cmdline = \"console=ttyS0\"",
        &format!("cmdline = \"console=ttyS0 {words}\""),
    );
    parse_config(&text)
}

/// Console input that a user types once the guest asks for it: reading blocks until the
/// console shows `prompt`, then gives `line`, then end of file.
struct TypedAfter {
    console: Console,
    prompt: &'static str,
    line: Cursor<Vec<u8>>,
}

impl Read for TypedAfter {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Bounded only so that a guest that never asks cannot keep the thread forever.
        let give_up = Instant::now() + Duration::from_secs(60);
        while !self.console.text().contains(self.prompt) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.line.read(buf)
    }
}

/// Runs the virtio guest with `words` on its command line and `input` (made knowing the
/// console) as console input; returns how it ended and everything on its console (COM1
/// and hvc0 alike).
fn run_virtio_guest(
    tag: &str,
    words: &str,
    input: impl FnOnce(&Console) -> Option<Box<dyn Read + Send>>,
) -> (VmOutcome, String) {
    let disk = DiskFile::new(tag);
    let console = Console::default();
    let options = VmOptions {
        console: Box::new(console.clone()),
        console_input: input(&console),
        unclaimed: UnclaimedAccessPolicy::Ignore,
        ..Default::default()
    };
    let vm = create(
        blk_and_console_config(&disk, words),
        axvm_guests::VIRTIO,
        options,
    );
    let outcome = run_bounded(vm, &console)
        .unwrap_or_else(|err| panic!("the VM failed: {err}; console: {:?}", console.text()));
    (outcome, console.text())
}

fn what_the_guest_writes_to_hvc0_reaches_the_console() {
    require_kvm();
    let (outcome, text) = run_virtio_guest("hello", "", |_| None);
    assert_eq!(outcome, VmOutcome::Exited(0), "{text}");
    // The guest prints this text only to the virtio console; COM1 gets "console ok".
    assert!(text.contains("virtio: hello from hvc0\n"), "{text}");
    assert!(text.contains("virtio: console ok"), "{text}");
    assert!(text.contains("virtio: blk ok"), "{text}");
    assert!(text.contains("virtio: all devices ok"), "{text}");
}

fn console_input_reaches_the_guest_through_hvc0() {
    require_kvm();
    // Given before the guest's driver is even ready: the bytes wait for its receive buffer.
    let (outcome, text) = run_virtio_guest("echo", "virtio.echo", |_| {
        Some(Box::new(Cursor::new(b"typed into hvc0\n".to_vec())))
    });
    assert_eq!(outcome, VmOutcome::Exited(0), "{text}");
    assert!(text.contains("echo: typed into hvc0\n"), "{text}");
    assert!(text.contains("virtio: echo ok: typed into hvc0"), "{text}");
}

fn input_typed_while_the_guest_waits_wakes_the_device() {
    require_kvm();
    // Typed once the driver's receive buffer is posted: only the input's eventfd (the
    // device's backend event) can tell the virtio thread.
    let (outcome, text) = run_virtio_guest("typed", "virtio.echo", |console| {
        Some(Box::new(TypedAfter {
            console: console.clone(),
            prompt: "virtio: echo: waiting for a line",
            line: Cursor::new(b"late line\r".to_vec()),
        }))
    });
    assert_eq!(outcome, VmOutcome::Exited(0), "{text}");
    assert!(text.contains("echo: late line\n"), "{text}");
}

axvm_test_harness::main!(
    what_the_guest_writes_to_hvc0_reaches_the_console,
    console_input_reaches_the_guest_through_hvc0,
    input_typed_while_the_guest_waits_wakes_the_device,
);
