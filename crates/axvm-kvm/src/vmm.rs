//! [`KvmVm`]: creates an axvm VM on KVM, loads its images, and runs one host thread per vCPU
//! until the guest or the host stops it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use axvm::{AxVCpuExitReason, AxVM, AxVMConfig, AxVMError, VMStatus, ValidConfig};

use crate::boot::{load_planned, BootImages, BootPlan, ImageFormat};
use crate::devices::{
    platform_devices, virtio_devices, ConsoleInput, ConsoleThread, OutputObserver, StopNote,
    VirtioMmio, VirtioThread, DRAIN_PATIENCE,
};
use crate::diagnostics::halts::Halts;
use crate::diagnostics::stats::unclaimed_summary;
use crate::diagnostics::watchdog::check::Watch;
use crate::diagnostics::watchdog::stop::{stop_report, FinalState, Stop, StopContext};
use crate::diagnostics::watchdog::Progress;
use crate::diagnostics::watcher::Watcher;
use crate::diagnostics::Diagnostics;
use crate::gdb::GdbServer;
use crate::kvm::KvmHal;
use crate::plan::VmPlan;
use crate::sandbox::{self, StartGate, ThreadRole};
use crate::vm_memory_view::vm_memory_view;
use crate::Error;
use crate::StopHandle;

mod options;
mod outcome;
mod pinning;

pub use options::VmOptions;
pub use outcome::VmOutcome;
use pinning::pin_to_physical_cpus;

/// How one vCPU thread ended.
enum VCpuEnd {
    Stopped,
    GuestReset,
    Failed(AxVMError),
}

/// A VM on KVM with its images loaded, ready to [`run`](Self::run).
///
/// ```no_run
/// use axvm::AxVMConfig;
/// use axvm_kvm::{BootImages, KvmVm, VmOptions, VmOutcome};
///
/// // 1 MiB of RAM at 0 and a raw image at 0x8000, entered there in real mode. Its code,
/// // `mov al, 7; out 0xf4, al`, ends the VM through the exit device with status 7.
/// let config = AxVMConfig::builder("exit-7").ram(0, 1 << 20).kernel_at(0x8000).build()?;
/// let images = BootImages { kernel: vec![0xb0, 0x07, 0xe6, 0xf4], ..Default::default() };
/// let vm = KvmVm::create(config, &images, VmOptions::default())?;
/// assert_eq!(vm.run()?, VmOutcome::Exited(7));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct KvmVm {
    /// Serves the virtio devices; declared first so it stops before the VM (and its memory)
    /// can go.
    _virtio: Option<VirtioThread>,
    vm: Arc<AxVM<KvmHal>>,
    plan: BootPlan,
    diagnostics: Option<Arc<Diagnostics>>,
    /// Writes the guest's console; lives as long as the VM, and ends when it is dropped.
    console: ConsoleThread,
    /// Feeds the guest's console input, when there is one; ends when the VM is dropped.
    _console_input: Option<ConsoleInput>,
    /// Set by [`StopHandle::stop`]: the run ends as [`VmOutcome::Stopped`] even if the stop
    /// came before it started.
    stop_requested: Arc<AtomicBool>,
    /// The console's dropped bytes a run already reported.
    console_drops_reported: AtomicU64,
    /// Why a platform device stopped the VM, when the status does not say.
    stop_note: StopNote,
    /// Whether the run confines its threads ([`VmOptions::sandbox`]).
    sandboxed: bool,
    /// The GDB stub, when asked for.
    gdb: Option<GdbServer>,
    /// The report of the last run, when it ended with every vCPU halted or a reset.
    stop_report: std::sync::Mutex<Option<String>>,
}

impl KvmVm {
    /// Creates the VM `config` describes, with the platform devices, and loads `images`, as
    /// [`VmPlan::for_config`] plans it (which validates the config and checks the images
    /// before any host resource is taken).
    pub fn create(
        config: AxVMConfig,
        images: &BootImages,
        options: VmOptions,
    ) -> Result<Self, Error> {
        if sandbox::current_thread_is_confined() {
            // Planning asks KVM for its limits, which the filter forbids: say so instead.
            return Err(Error::AlreadyConfined);
        }
        let config = config.into_valid()?;
        let plan = VmPlan::for_valid_config(&config, images)?;
        Self::from_plan(config, images, &plan, options)
    }

    /// Creates the VM from a `plan` that [`VmPlan::for_valid_config`] made of `config` and
    /// `images`: the vCPUs are created at the plan's entries (the image's, or the config's
    /// for raw code), so each vCPU's entry is set once. The config was validated once, into
    /// a [`ValidConfig`]; only the plan's entries are checked here.
    pub fn from_plan(
        config: ValidConfig,
        images: &BootImages,
        plan: &VmPlan,
        options: VmOptions,
    ) -> Result<Self, Error> {
        if sandbox::current_thread_is_confined() {
            // It could not even open /dev/kvm: say so rather than be stopped by its filter.
            return Err(Error::AlreadyConfined);
        }
        let config = config.with_entries(plan.bsp_entry, plan.ap_entry)?;
        let hal = KvmHal::new(config.id)?;
        let diagnostics = options
            .diagnostics
            .any()
            .then(|| Arc::new(Diagnostics::new(options.diagnostics, config.cpu_num)));
        // Console output is progress: the watchdog counts it as the guest prints it.
        let observer = diagnostics
            .as_ref()
            .and_then(|d| d.watchdog.clone())
            .map(|progress| {
                Box::new(move |bytes| progress.console_output(bytes)) as OutputObserver
            });
        let sandboxed = options.sandbox;
        let gdb = options
            .gdb
            .map(|gdb| GdbServer::new(gdb, config.cpu_num))
            .transpose()
            .map_err(|err| Error::Console(format!("the GDB stub's listener: {err}")))?;
        let console = ConsoleThread::spawn_sandboxed(options.console, observer, sandboxed)
            .map_err(|err| Error::Console(err.to_string()))?;
        let mut platform = platform_devices(&config, console.console(), &hal, options.unclaimed)?;
        if let Some(hpet) = &platform.hpet {
            hpet.start(&config.name, sandboxed)
                .map_err(|err| Error::Console(format!("HPET timer thread: {err}")))?;
        }
        let virtio = virtio_devices(&config, &hal, &console.console())?;
        for device in &virtio.devices {
            platform.devices.add(device.clone())?;
        }
        for device in options.extra_devices {
            platform.devices.add(device)?;
        }
        // A virtio console (the first, if several) takes the input COM1 takes otherwise.
        let input_side = virtio.console_input.unwrap_or(platform.com1_input);
        let console_input = options
            .console_input
            .map(|input| ConsoleInput::spawn_sandboxed(input, input_side, sandboxed))
            .transpose()
            .map_err(|err| Error::Console(err.to_string()))?;
        let vm = AxVM::new_validated(config, hal, platform.devices)?;
        let plan = load_planned(&vm, images, plan)?;
        let virtio = start_virtio(&vm, &virtio.devices, sandboxed)?;
        if let Some(diagnostics) = &diagnostics {
            vm.set_exit_observer(diagnostics.clone())?;
        }
        Ok(Self {
            _virtio: virtio,
            vm,
            plan,
            diagnostics,
            console,
            _console_input: console_input,
            stop_requested: Arc::default(),
            console_drops_reported: AtomicU64::new(0),
            stop_note: platform.stop_note,
            sandboxed,
            gdb,
            stop_report: std::sync::Mutex::default(),
        })
    }

    /// Why the VM stopped, in words, when a device stopped it and its exit status does not
    /// say: `Some("the guest reset the machine through port 0xcf9")` after a reset (which
    /// ends the VM with status 0, as a power-off does).
    pub fn stop_note(&self) -> Option<&'static str> {
        self.stop_note.get()
    }

    /// The diagnostics of this VM, when any was asked for.
    pub fn diagnostics(&self) -> Option<&Diagnostics> {
        self.diagnostics.as_deref()
    }

    /// The axvm VM underneath, for inspecting vCPUs and memory (to stop it, use
    /// [`stop_handle`](Self::stop_handle)).
    pub fn vm(&self) -> &Arc<AxVM<KvmHal>> {
        &self.vm
    }

    /// A handle that stops this VM's [`run`](Self::run) from any thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::new(&self.vm, Arc::clone(&self.stop_requested))
    }

    fn stop_was_requested(&self) -> bool {
        self.stop_requested.load(Ordering::SeqCst)
    }

    /// How the vCPUs start.
    pub fn plan(&self) -> BootPlan {
        self.plan
    }

    /// Why the watchdog stopped the VM (several lines), after [`run`](Self::run) returned
    /// [`VmOutcome::NoProgress`].
    pub fn watchdog_report(&self) -> Option<String> {
        self.watchdog().and_then(|progress| progress.report())
    }

    /// Why the VM stopped by itself, in a report of several lines (the causes that fit, each
    /// vCPU's mode, registers and code at RIP, its last exits), after [`run`](Self::run)
    /// returned [`VmOutcome::AllHalted`], [`VmOutcome::GuestReset`] (a triple fault, usually)
    /// or [`VmOutcome::NoProgress`] (then it is the [watchdog's](Self::watchdog_report)).
    /// `axvm run` prints it. `None` after other outcomes.
    pub fn stop_report(&self) -> Option<String> {
        let report = self
            .stop_report
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        report.or_else(|| self.watchdog_report())
    }

    /// Writes the report of a run that ended as `outcome`, when it is a halt or a reset,
    /// from the `states` the vCPU threads left.
    fn note_stop(&self, outcome: &Result<VmOutcome, Error>, states: Vec<Option<FinalState>>) {
        let Some(stop) = outcome.as_ref().ok().and_then(Stop::of) else {
            return;
        };
        let context = StopContext {
            entry: self.plan.bsp_entry,
            raw_load: self.raw_load(),
            console_bytes: self.console.console().sent_bytes(),
        };
        let report = stop_report(&self.vm, stop, &context, states);
        *self.stop_report.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
    }

    /// The accesses no device claimed so far, one line per run of adjacent addresses of one
    /// width and direction, most accesses first, e.g. `unclaimed: 12034 x 1-byte read at
    /// port 0x3e5 (nearest device: serial at port 0x3f8-0x3ff)` or `unclaimed: 1024 x
    /// 1-byte write at MMIO 0xa0000-0xa03ff`; `None` when the guest touched nothing
    /// unclaimed. `axvm run` prints it when the VM stops: how often a guest polled a
    /// missing device tells a probe from a driver stuck on the wrong address.
    pub fn unclaimed_summary(&self) -> Option<String> {
        unclaimed_summary(self.vm.devices())
    }

    fn watchdog(&self) -> Option<&Arc<Progress>> {
        self.diagnostics.as_ref()?.watchdog.as_ref()
    }

    /// The watchdog's part of the watcher, when the watchdog is on.
    fn watch(&self) -> Option<Watch<'_>> {
        let diagnostics = self.diagnostics.as_ref()?;
        Some(Watch {
            progress: diagnostics.watchdog.as_ref()?,
            timeout: diagnostics.watchdog_timeout()?,
            entry: self.plan.bsp_entry,
            raw_load: self.raw_load(),
        })
    }

    /// The kernel's load address, when the image is raw (what an entry holding zeros is
    /// compared with).
    fn raw_load(&self) -> Option<axvm::GuestPhysAddr> {
        (self.plan.format == ImageFormat::Raw)
            .then_some(self.vm.config().image_config.kernel_load_gpa)
    }

    /// Boots the VM and runs every vCPU on its own thread until the VM stops.
    ///
    /// A vCPU failure stops the whole VM and is returned with the vCPU named. However the
    /// VM ends, everything the guest printed has been written to the console (and flushed)
    /// when this returns, so its last line comes before whatever the caller prints next;
    /// unless the console's writer stalls (a pipe nobody reads): then `run` returns once it
    /// has taken nothing for [`DRAIN_PATIENCE`](crate::DRAIN_PATIENCE), with a warning
    /// saying how many bytes were not written. A warning also says how many bytes were
    /// dropped because the console was full (see [`VmOptions::console`]).
    pub fn run(&self) -> Result<VmOutcome, Error> {
        let ended = self.run_vcpus();
        let end = self.console.drain();
        let dropped = end.dropped
            - self
                .console_drops_reported
                .swap(end.dropped, Ordering::SeqCst);
        report_console_end(end.unwritten, dropped);
        ended
    }

    fn run_vcpus(&self) -> Result<VmOutcome, Error> {
        if self.sandboxed && sandbox::current_thread_is_confined() {
            return Err(Error::AlreadyConfined);
        }
        if let Err(err) = self.vm.boot() {
            // A stop before the run turns the VM Stopped, which boot() refuses.
            return match self.stop_was_requested() {
                true => Ok(VmOutcome::Stopped),
                false => Err(err.into()),
            };
        }
        let halts = Halts::new(&self.vm);
        let gate = StartGate::default();
        let blocked_syscall_hook =
            std::env::var_os(sandbox::BLOCKED_SYSCALL_TEST_HOOK).is_some_and(|value| value == "1");
        let (ends, confined) = std::thread::scope(|scope| {
            let (stop_watching, stop) = std::sync::mpsc::channel::<()>();
            let (halts, gate) = (&halts, &gate);
            let watcher = self.spawn_watcher(scope, halts, stop)?;
            if let Some(gdb) = &self.gdb {
                gdb.spawn_scoped(scope, &self.vm, self.sandboxed)?;
            }
            let threads: Vec<_> = (0..self.vm.vcpu_num())
                .map(|vcpu_id| {
                    std::thread::Builder::new()
                        .name(format!("vcpu{vcpu_id}"))
                        .spawn_scoped(scope, move || {
                            self.vcpu_thread(vcpu_id, halts, gate, blocked_syscall_hook)
                        })
                        .map_err(|err| Error::Thread {
                            vcpu: vcpu_id,
                            message: err.to_string(),
                        })
                })
                .collect();
            // Every thread of the run is started: this one is confined from here on too.
            let confined = sandbox::confine_if(self.sandboxed, ThreadRole::Supervisor);
            if confined.is_err() {
                self.vm.shutdown();
            }
            gate.open(confined.is_ok());
            let ends = threads
                .into_iter()
                .map(|thread| {
                    let thread = thread.inspect_err(|_| self.vm.shutdown())?;
                    thread.join().map_err(|_| Error::Thread {
                        vcpu: usize::MAX,
                        message: "the vCPU thread panicked".into(),
                    })
                })
                .collect::<Result<Vec<_>, Error>>();
            drop(stop_watching);
            let _ = watcher.join();
            Ok::<_, Error>((ends, confined))
        })?;
        confined?;
        let (ends, states): (Vec<_>, Vec<_>) = ends?.into_iter().unzip();
        let outcome = self.outcome(ends, halts.all_halted());
        self.note_stop(&outcome, states);
        outcome
    }

    /// Starts the watcher thread of a run, confined (when sandboxed) before this returns.
    fn spawn_watcher<'scope, 'env>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        halts: &'env Halts,
        stop: std::sync::mpsc::Receiver<()>,
    ) -> Result<std::thread::ScopedJoinHandle<'scope, ()>, Error> {
        let watcher = Watcher {
            halts,
            watchdog: self.watch(),
        };
        let (confined_tx, confined) = std::sync::mpsc::sync_channel(1);
        let sandboxed = self.sandboxed;
        let handle = std::thread::Builder::new()
            .name("axvm-watcher".into())
            .spawn_scoped(scope, move || {
                let result = sandbox::confine_if(sandboxed, ThreadRole::Watcher);
                let go = result.is_ok();
                let _ = confined_tx.send(result);
                if go {
                    watcher.run(&self.vm, &stop);
                }
            })
            .map_err(|err| Error::Console(format!("cannot start the watcher thread: {err}")))?;
        match confined.recv() {
            Ok(result) => result?,
            Err(_) => {
                return Err(Error::Console(
                    "the watcher thread ended at its start".into(),
                ))
            }
        }
        Ok(handle)
    }

    fn outcome(&self, ends: Vec<VCpuEnd>, all_halted: bool) -> Result<VmOutcome, Error> {
        let mut reset_by = None;
        for (vcpu_id, end) in ends.into_iter().enumerate() {
            match end {
                VCpuEnd::Failed(err) => return Err(err.into()),
                VCpuEnd::GuestReset => reset_by = reset_by.or(Some(vcpu_id)),
                VCpuEnd::Stopped => {}
            }
        }
        Ok(match (self.vm.exit_status(), reset_by) {
            (Some(status), _) => VmOutcome::Exited(status),
            (None, Some(vcpu)) => VmOutcome::GuestReset { vcpu },
            (None, None) if self.stop_was_requested() => VmOutcome::Stopped,
            (None, None) if all_halted => VmOutcome::AllHalted,
            (None, None) if self.watchdog().is_some_and(|p| p.fired()) => VmOutcome::NoProgress,
            (None, None) => VmOutcome::Stopped,
        })
    }

    /// Runs vCPU `vcpu_id` until the VM stops; returns how it ended and, when the VM ended
    /// without an exit status, the vCPU's final state for the stop report (taken here: its
    /// registers are this thread's to read).
    fn vcpu_thread(
        &self,
        vcpu_id: usize,
        halts: &Halts,
        gate: &StartGate,
        blocked_syscall_hook: bool,
    ) -> (VCpuEnd, Option<FinalState>) {
        let end = self.run_vcpu_thread(vcpu_id, halts, gate, blocked_syscall_hook);
        let state = match end {
            VCpuEnd::Failed(_) => None,
            _ if self.vm.exit_status().is_some() || self.stop_was_requested() => None,
            _ => FinalState::capture(&self.vm, vcpu_id),
        };
        (end, state)
    }

    fn run_vcpu_thread(
        &self,
        vcpu_id: usize,
        halts: &Halts,
        gate: &StartGate,
        blocked_syscall_hook: bool,
    ) -> VCpuEnd {
        let _ended = self
            .gdb
            .as_ref()
            .map(|gdb| gdb.control().vcpu_thread(vcpu_id));
        pin_to_physical_cpus(self.vm.config(), vcpu_id);
        let _thread = self.vm.hal().enter_vcpu_thread(vcpu_id);
        if let Err(err) = sandbox::confine_if(self.sandboxed, ThreadRole::Vcpu) {
            self.vm.shutdown();
            gate.wait();
            return VCpuEnd::Failed(AxVMError::vcpu(vcpu_id, err.to_string()));
        }
        if self.sandboxed && blocked_syscall_hook {
            sandbox::make_a_blocked_syscall();
        }
        if !gate.wait() {
            return VCpuEnd::Stopped;
        }
        self.debug_point(vcpu_id, false);
        loop {
            match self.vm.run_vcpu(vcpu_id) {
                Ok(
                    exit @ (AxVCpuExitReason::Interrupted
                    | AxVCpuExitReason::Nothing
                    | AxVCpuExitReason::Halt),
                ) => {
                    if self.vm.status() != VMStatus::Running {
                        return VCpuEnd::Stopped;
                    }
                    halts.report(vcpu_id, exit == AxVCpuExitReason::Halt);
                    if let Some(progress) = self.watchdog() {
                        progress.board.answer_if_asked(&self.vm, vcpu_id);
                    }
                    self.debug_point(vcpu_id, false);
                }
                Ok(AxVCpuExitReason::Debug) => self.debug_point(vcpu_id, true),
                Ok(AxVCpuExitReason::SystemDown) => {
                    self.vm.shutdown();
                    return if self.vm.exit_status().is_some() {
                        VCpuEnd::Stopped
                    } else {
                        VCpuEnd::GuestReset
                    };
                }
                Ok(other) => {
                    self.vm.shutdown();
                    return VCpuEnd::Failed(AxVMError::vcpu(
                        vcpu_id,
                        format!("stopped on an exit axvm cannot handle: {other:x?}"),
                    ));
                }
                Err(err) => return VCpuEnd::Failed(self.with_guest_code(vcpu_id, err)),
            }
        }
    }

    /// Where a vCPU thread pauses for GDB, when a stub is on: before the first run, after a
    /// kick, and after a stop for the debugger (`stopped`).
    fn debug_point(&self, vcpu_id: usize, stopped: bool) {
        if let Some(gdb) = &self.gdb {
            gdb.between_runs(&self.vm, vcpu_id, stopped);
        }
    }

    /// `err` with the guest's instruction at RIP read from guest RAM and disassembled, when
    /// KVM gave up on the vCPU (what it passed itself may lack the bytes).
    fn with_guest_code(&self, vcpu_id: usize, err: AxVMError) -> AxVMError {
        let report = match err
            .host_cause()
            .and_then(|cause| cause.downcast_ref::<crate::KvmError>())
        {
            Some(internal @ crate::KvmError::Internal { .. }) => internal.to_string(),
            _ => return err,
        };
        let code = self
            .vm
            .try_inspect_vcpu(vcpu_id, |vcpu| self.vm.describe_instruction(vcpu, 1))
            .ok()
            .flatten()
            .flatten();
        match code {
            Some(code) => AxVMError::vcpu(vcpu_id, format!("{report}; guest code at {code}")),
            None => err,
        }
    }
}

/// Warns of console output the guest printed and the host never saw: `unwritten` bytes
/// left in the buffer because the writer took nothing for [`DRAIN_PATIENCE`], and `dropped`
/// bytes the full buffer refused during the run.
fn report_console_end(unwritten: u64, dropped: u64) {
    if unwritten > 0 {
        log::warn!(
            "the guest console's output took nothing for {DRAIN_PATIENCE:?} (a stalled stdout?): {unwritten} bytes the guest printed were not written"
        );
    }
    if dropped > 0 {
        log::warn!(
            "{dropped} bytes the guest printed were dropped because the console's output was not being taken: output to port 0xe9, or to COM1 while it reported its transmitter busy"
        );
    }
}

/// Gives the virtio devices guest RAM and starts the thread serving them (none without
/// virtio devices).
fn start_virtio(
    vm: &AxVM<KvmHal>,
    devices: &[Arc<VirtioMmio>],
    sandboxed: bool,
) -> Result<Option<VirtioThread>, Error> {
    if devices.is_empty() {
        return Ok(None);
    }
    let ram = vm_memory_view(vm.memory()).map_err(Error::Console)?;
    for device in devices {
        device.attach_ram(ram.clone());
    }
    VirtioThread::spawn_sandboxed(&vm.config().name, devices, sandboxed)
        .map(Some)
        .map_err(|err| Error::Console(format!("virtio device thread: {err}")))
}
