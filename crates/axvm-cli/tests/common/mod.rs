//! Shared helpers of the `axvm` command tests: the /dev/kvm skip-or-require rule, scratch
//! directories holding configs next to copied images, running the built binary with a hard
//! deadline, and the checks every refusal must pass.
//!
//! Each test binary uses only part of this module, hence `allow(dead_code)`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// The longest `axvm` may run in these tests; it only turns a hang into a failure.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Skips the calling test (reported as ignored, with the reason) when `/dev/kvm` cannot be
/// opened, or fails it when `AXVM_REQUIRE_KVM=1`: CI must not pass by skipping.
#[allow(unused_imports)]
pub use axvm_test_harness::{require_kvm, skip};

/// A fresh directory under the system temp dir, removed when dropped.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// A new empty directory; `tag` names the test in its path.
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "axvm-cli-test-{}-{}-{tag}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|err| panic!("cannot create {}: {err}", dir.display()));
        Self { dir }
    }

    /// The path of `name` in the directory (which may not exist).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Writes `bytes` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, bytes)
            .unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
        path
    }

    /// Copies the built guest image at `image_path` into the directory as `name`.
    pub fn copy_image(&self, image_path: &str, name: &str) {
        let bytes = std::fs::read(image_path)
            .unwrap_or_else(|err| panic!("cannot read the guest image {image_path}: {err}"));
        self.write(name, bytes);
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A built guest: its image next to its config, as `axvm run CONFIG` expects.
pub fn guest(scratch: &Scratch, image_path: &str, image_name: &str, config: &str) -> PathBuf {
    scratch.copy_image(image_path, image_name);
    scratch.write("vm.toml", config)
}

/// The demo guest's config and image in `scratch`.
pub fn demo(scratch: &Scratch) -> PathBuf {
    guest(
        scratch,
        axvm_guests::DEMO_PATH,
        "demo",
        axvm_guests::DEMO_CONFIG,
    )
}

/// The real-mode guest's config (edited by `edit`) and image in `scratch`.
pub fn realmode_with(scratch: &Scratch, edit: impl FnOnce(String) -> String) -> PathBuf {
    guest(
        scratch,
        axvm_guests::REALMODE_PATH,
        "realmode",
        &edit(axvm_guests::REALMODE_CONFIG.to_string()),
    )
}

/// `text` with `from` replaced by `to`; fails if `from` is not there, so an edit that
/// silently does nothing cannot make a test pass.
pub fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "{from:?} is not in the config:\n{text}"
    );
    text.replacen(from, to, 1)
}

/// A config for a raw inline image `image_name`: 1 MiB of RAM, loaded and entered at 0x8000.
pub fn raw_config(image_name: &str) -> String {
    replace(
        axvm_guests::REALMODE_CONFIG,
        "kernel_path = \"realmode\"",
        &format!("kernel_path = \"{image_name}\""),
    )
}

/// A raw inline guest in `scratch`, with [`raw_config`].
pub fn raw_guest(scratch: &Scratch, image: &[u8]) -> PathBuf {
    scratch.write("guest.bin", image);
    scratch.write("vm.toml", raw_config("guest.bin"))
}

/// How an `axvm` run ended.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The exit code; fails if `axvm` died of a signal.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("axvm was killed by a signal: {self:#?}"))
    }
}

/// Runs the built `axvm` with `args` (no RUST_LOG, so only warnings and errors reach
/// stderr). Kills it and fails the test if it runs longer than [`DEADLINE`].
pub fn axvm<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    axvm_fed(args, None)
}

/// [`axvm`] with `input` on its stdin (then end of file), or /dev/null for `None`.
pub fn axvm_fed<S: AsRef<std::ffi::OsStr>>(args: &[S], input: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_axvm"))
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(input.map_or_else(Stdio::null, |_| Stdio::piped()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot start axvm");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // Small enough for the pipe's buffer; dropping `stdin` closes it (end of file).
        stdin.write_all(input).expect("cannot write axvm's stdin");
    }
    let stdout = drain(child.stdout.take().expect("piped"));
    let stderr = drain(child.stderr.take().expect("piped"));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("cannot wait for axvm") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "axvm {:?} still ran after {DEADLINE:?}; killed it. stdout:\n{}\nstderr:\n{}",
                args.iter()
                    .map(|a| a.as_ref().to_owned())
                    .collect::<Vec<_>>(),
                stdout.join().unwrap_or_default(),
                stderr.join().unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: stdout.join().expect("stdout reader panicked"),
        stderr: stderr.join().expect("stderr reader panicked"),
    }
}

/// Reads a pipe to its end on a thread, so that a chatty child never blocks on a full pipe.
fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// `axvm run CONFIG`.
pub fn run(config: &Path) -> Output {
    axvm(&[std::ffi::OsStr::new("run"), config.as_os_str()])
}

/// Asserts that `axvm` refused with exit status 1 and one line on stderr naming `field`,
/// printed nothing on stdout, and did not panic. Returns the stderr line.
pub fn assert_refused(output: &Output, field: &str) -> String {
    assert!(
        !output.stderr.contains("panicked"),
        "axvm panicked: {output:#?}"
    );
    assert_eq!(output.code(), 1, "{output:#?}");
    assert_eq!(output.stdout, "", "nothing may reach stdout: {output:#?}");
    let lines: Vec<&str> = output.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "expected a one-line reason: {output:#?}");
    let line = lines[0];
    assert!(line.starts_with("axvm: "), "{line}");
    assert!(
        line.contains(field),
        "the reason does not name `{field}`: {line}"
    );
    line.to_string()
}
