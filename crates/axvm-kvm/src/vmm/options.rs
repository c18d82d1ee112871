//! [`VmOptions`]: what a VM is built with besides its config and images.

use std::io::{Read, Write};
use std::sync::Arc;

use axvm::device::{BaseDeviceOps, UnclaimedAccessPolicy};

use crate::diagnostics::DiagnosticsOptions;
use crate::gdb::GdbOptions;

/// How to build the VM's platform. Start from [`Default`] and change what you need:
///
/// ```
/// use axvm::device::UnclaimedAccessPolicy;
/// use axvm_kvm::{DiagnosticsOptions, VmOptions};
///
/// // The console on stderr, typed input from stdin, accesses to addresses without a device
/// // refused (the run fails naming the address), exit statistics on.
/// let options = VmOptions {
///     console: Box::new(std::io::stderr()),
///     console_input: Some(Box::new(std::io::stdin())),
///     unclaimed: UnclaimedAccessPolicy::Error,
///     diagnostics: DiagnosticsOptions { stats: true, ..Default::default() },
///     ..Default::default()
/// };
/// assert!(options.extra_devices.is_empty());
/// ```
///
/// The crate's `my_device` example adds a device of its own through
/// [`extra_devices`](Self::extra_devices).
pub struct VmOptions {
    /// Where the guest's serial console goes. A console thread writes it, in batches of what
    /// the guest printed since the last write; [`KvmVm::run`](crate::KvmVm::run) returns only once everything
    /// the guest printed is written, or the writer stalled. Nothing in the VM ever waits
    /// for it: while [`CONSOLE_BUFFER_BYTES`](crate::CONSOLE_BUFFER_BYTES) wait unwritten,
    /// COM1 reports its transmitter busy, virtio consoles hold their output in their
    /// queues, and what the guest prints regardless (port 0xe9 output) is dropped.
    pub console: Box<dyn Write + Send>,
    /// What the guest reads from its console, if anything: COM1's receive side, or, when the
    /// VM has a virtio console, that device's (the first one's, if it has several), so a
    /// user logs into a guest whose console is `console=hvc0`. A thread of its own reads it
    /// and queues the bytes as the guest takes them (in the UART's FIFO, or in a bounded
    /// buffer until the virtio driver posts receive buffers), so a blocking reader (a
    /// terminal) never holds up a vCPU and nothing is dropped. Its end of file ends input.
    pub console_input: Option<Box<dyn Read + Send>>,
    /// Devices of your own, added beside the platform devices: each must claim ports or
    /// addresses no platform device (COM1, 0xe9, 0xf4, the i8042, 0xcf8-0xcff, fw_cfg 0x510,
    /// CMOS 0x70, ACPI PM 0x600) and no RAM uses.
    pub extra_devices: Vec<Arc<dyn BaseDeviceOps>>,
    /// What accesses to addresses without a device do.
    pub unclaimed: UnclaimedAccessPolicy,
    /// Statistics, exit trace, watchdog.
    pub diagnostics: DiagnosticsOptions,
    /// Confine the VM's threads with seccomp filters ([`crate::sandbox`]): each thread may
    /// make only the system calls its kind needs (a vCPU thread only a few KVM `ioctl`s),
    /// and anything else ends the process with a message. The console threads and the
    /// virtio thread are confined as [`KvmVm::create`](crate::KvmVm::create) starts them; the watcher and vCPU
    /// threads, and **the thread calling [`KvmVm::run`](crate::KvmVm::run)** (for the rest of its life, once the
    /// vCPUs are started), before the guest's first instruction.
    ///
    /// Off by default in the library: a confined caller's thread can no longer open files
    /// or start threads, which tests and embedders rarely expect. The `axvm` command turns
    /// it on (`--no-seccomp` turns it off).
    pub sandbox: bool,
    /// Serve GDB's remote protocol for this VM ([`GdbOptions`]): breakpoints, steps,
    /// registers and memory of every vCPU.
    pub gdb: Option<GdbOptions>,
}

impl Default for VmOptions {
    /// Console on stdout, no console input, no extra devices; unclaimed accesses read as zero (counted, logged at debug); no diagnostics; no sandbox.
    fn default() -> Self {
        Self {
            console: Box::new(std::io::stdout()),
            console_input: None,
            extra_devices: Vec::new(),
            unclaimed: UnclaimedAccessPolicy::Ignore,
            diagnostics: DiagnosticsOptions::default(),
            sandbox: false,
            gdb: None,
        }
    }
}
