//! Shared helpers of the KVM integration tests: the /dev/kvm skip-or-require rule, a console
//! that captures what the guest prints, configs for tiny inline guests, and running a VM
//! with a hard deadline so that a hung guest fails its test instead of blocking CI.
//!
//! Each test binary uses only part of this module, hence `allow(dead_code)`.
#![allow(dead_code)]

pub mod guests;

use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use axvm::config::toml::AxVMCrateConfig;
use axvm::device::UnclaimedAccessPolicy;
use axvm::{AxVM, AxVMConfig, AxVMConfigBuilder, AxVMError, GuestPhysAddr, VMStatus};
use axvm_kvm::{BootImages, Error, KvmHal, KvmVm, VmOptions, VmOutcome};

/// The longest any VM in these tests may run. The guests finish in well under a second; this
/// only turns a hang into a failure.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Skips the calling test (reported as ignored, with the reason) when `/dev/kvm` cannot be
/// opened, or fails it when `AXVM_REQUIRE_KVM=1`: CI must not pass by skipping.
#[allow(unused_imports)]
pub use axvm_test_harness::{require_kvm, skip};

/// A guest console that keeps everything written to it.
#[derive(Clone, Default)]
pub struct Console(Arc<Mutex<Vec<u8>>>);

impl Console {
    /// What the guest printed so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Options sending the console to `console`.
pub fn options(console: &Console, unclaimed: UnclaimedAccessPolicy) -> VmOptions {
    VmOptions {
        console: Box::new(console.clone()),
        unclaimed,
        ..Default::default()
    }
}

/// Parses and validates an ArceOS-format config.
pub fn parse_config(text: &str) -> AxVMConfig {
    AxVMCrateConfig::from_toml(text)
        .unwrap_or_else(|err| panic!("test config does not parse: {err}\n{text}"))
        .into_vm_config()
        .unwrap_or_else(|err| panic!("test config is invalid: {err}\n{text}"))
}

/// The config of a one-vCPU VM with one RAM region at 0 of `ram` bytes, a raw kernel loaded at
/// `load` and entered at `entry`, in the ArceOS TOML format.
pub fn raw_config_text(ram: u64, load: u64, entry: u64) -> String {
    format!(
        r#"
[base]
id = 7
name = "inline-guest"
vm_type = 1
cpu_num = 1

[kernel]
entry_point = {entry:#x}
image_location = "memory"
kernel_path = "inline"
kernel_load_addr = {load:#x}
memory_regions = [[0x0, {ram:#x}, 0x7, 0]]

[devices]
passthrough_devices = []
emu_devices = []
interrupt_mode = "no_irq"
"#
    )
}

/// A one-vCPU VM with 1 MiB of RAM at 0, a raw kernel loaded and entered at 0x8000 (what
/// [`raw_config_text`] writes in TOML), built in Rust.
pub fn raw_config() -> AxVMConfig {
    built(raw_builder(0x10_0000))
}

/// The builder of a one-vCPU VM with `ram` bytes of RAM at 0 and a raw kernel loaded (and so
/// entered) at 0x8000: tests change what they need and pass it to [`built`].
pub fn raw_builder(ram: u64) -> AxVMConfigBuilder {
    AxVMConfig::builder("inline-guest")
        .id(7)
        .ram(0, ram)
        .kernel_at(0x8000)
}

/// The config `builder` builds, panicking with the reason if it is refused.
pub fn built(builder: AxVMConfigBuilder) -> AxVMConfig {
    builder
        .build()
        .unwrap_or_else(|err| panic!("test config is invalid: {err}"))
}

/// Images holding only `kernel`.
pub fn kernel(bytes: &[u8]) -> BootImages {
    BootImages {
        kernel: bytes.to_vec(),
        ..Default::default()
    }
}

/// Creates a VM, panicking with the reason if that fails.
pub fn create(config: AxVMConfig, kernel_bytes: &[u8], options: VmOptions) -> KvmVm {
    KvmVm::create(config, &kernel(kernel_bytes), options)
        .unwrap_or_else(|err| panic!("cannot create the VM: {err}"))
}

/// Runs `vm` to its end on another thread. If it is still running after [`DEADLINE`], it is
/// shut down and the test fails with what the guest printed.
pub fn run_bounded(vm: KvmVm, console: &Console) -> Result<VmOutcome, Error> {
    let vm = Arc::new(vm);
    let (done, ended) = mpsc::channel();
    let runner = Arc::clone(&vm);
    thread::Builder::new()
        .name("vm-run".into())
        .spawn(move || {
            let _ = done.send(runner.run());
        })
        .expect("cannot start the VM thread");
    match ended.recv_timeout(DEADLINE) {
        Ok(result) => result,
        Err(_) => {
            vm.vm().shutdown();
            let after = match ended.recv_timeout(Duration::from_secs(5)) {
                Ok(result) => format!("after shutdown() run() returned {result:?}"),
                Err(_) => "run() did not return after shutdown() either".to_string(),
            };
            panic!(
                "the VM still ran after {DEADLINE:?}; {after}; console: {:?}",
                console.text()
            );
        }
    }
}

/// Creates the VM and runs it to its end with [`run_bounded`]; returns how it ended and what
/// the guest printed.
pub fn boot(
    config: AxVMConfig,
    kernel_bytes: &[u8],
    unclaimed: UnclaimedAccessPolicy,
) -> (Result<VmOutcome, Error>, String) {
    let console = Console::default();
    let vm = create(config, kernel_bytes, options(&console, unclaimed));
    let result = run_bounded(vm, &console);
    (result, console.text())
}

/// Boots a raw image with [`raw_config`] and the default (ignore) policy, and returns its
/// outcome, failing the test if the run fails.
pub fn boot_raw(kernel_bytes: &[u8]) -> (VmOutcome, String) {
    let (result, console) = boot(raw_config(), kernel_bytes, UnclaimedAccessPolicy::Ignore);
    let outcome = result.unwrap_or_else(|err| panic!("the VM failed: {err}; console: {console:?}"));
    (outcome, console)
}

/// Waits (bounded) until `vm` has booted, so that a shutdown reaches running vCPUs; fails
/// if `ended` (where the thread running it reports) says `run()` returned first.
pub fn wait_until_booted<T: std::fmt::Debug>(vm: &KvmVm, ended: &mpsc::Receiver<T>) {
    let start = Instant::now();
    while vm.vm().status() == VMStatus::Created {
        if let Ok(result) = ended.try_recv() {
            panic!("run() returned before the VM booted: {result:?}");
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the VM did not boot within {DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// The config field an error from [`KvmVm::create`] is about, if it is about one.
pub fn refused_field(err: &Error) -> Option<&str> {
    match err {
        Error::Image(config) => config.field(),
        Error::Vm(AxVMError::Config(config)) => config.field(),
        _ => None,
    }
}

/// Asserts that creating a VM from `config` and `kernel_bytes` is refused with an error about
/// a field starting with `field`, whose message contains `words`; returns the message.
pub fn assert_refused(config: AxVMConfig, kernel_bytes: &[u8], field: &str, words: &str) -> String {
    assert_images_refused(config, &kernel(kernel_bytes), field, words)
}

/// [`assert_refused`] for full [`BootImages`] (ramdisk, BIOS, ...).
pub fn assert_images_refused(
    config: AxVMConfig,
    images: &BootImages,
    field: &str,
    words: &str,
) -> String {
    let console = Console::default();
    let err = match KvmVm::create(
        config,
        images,
        options(&console, UnclaimedAccessPolicy::Ignore),
    ) {
        Ok(vm) => panic!("the VM was created, plan {:?}", vm.plan()),
        Err(err) => err,
    };
    let message = err.to_string();
    let named = refused_field(&err)
        .unwrap_or_else(|| panic!("the error names no config field: {message} ({err:?})"));
    assert!(
        named.starts_with(field),
        "the error names `{named}`, expected `{field}`: {message}"
    );
    assert!(
        message.contains(field) && message.contains(words),
        "the message should contain `{field}` and `{words}`: {message}"
    );
    message
}

/// A VM with `cpus` vCPUs and `ram` bytes of RAM at 0 running a spinning raw guest, created
/// but never run: for reading back what creation wrote into guest memory.
pub fn unrun_vm(cpus: usize, ram: u64) -> KvmVm {
    let console = Console::default();
    create(
        built(raw_builder(ram).cpus(cpus)),
        guests::SPIN,
        options(&console, UnclaimedAccessPolicy::Ignore),
    )
}

/// `len` bytes of guest memory at `gpa`.
pub fn read_guest(vm: &AxVM<KvmHal>, gpa: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    vm.memory()
        .read(GuestPhysAddr::new(gpa), &mut bytes)
        .unwrap_or_else(|err| panic!("cannot read {len} bytes at {gpa:#x}: {err}"));
    bytes
}

/// The 8-bit sum of `bytes`: zero for a table with a valid checksum.
pub fn byte_sum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |s, b| s.wrapping_add(*b))
}

/// The `len`-byte little-endian field at `at` of `bytes`.
pub fn le_field(bytes: &[u8], at: usize, len: usize) -> u64 {
    bytes[at..at + len]
        .iter()
        .rev()
        .fold(0, |v, b| v << 8 | u64::from(*b))
}
