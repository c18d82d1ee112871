//! A GDB stub for the VM ([`VmOptions::gdb`](crate::VmOptions::gdb), `axvm run --gdb`):
//! the GDB remote protocol over TCP, through the `gdbstub` crate.
//!
//! What GDB sees:
//! - every vCPU as a thread (vCPU N is thread N + 1), all stopped whenever GDB has control
//!   (all-stop mode; [`control`] says how they are paused);
//! - x86-64 registers in every processor mode, with the segment bases and CR0, CR2, CR3,
//!   CR4, CR8 and EFER ([`arch`]);
//! - memory by the vCPU's virtual addresses, translated through its page tables in guest
//!   RAM ([`paging`]), or by guest-physical address after `monitor phys on`;
//! - software breakpoints (`break`, an `int3` in guest memory), hardware breakpoints and
//!   watchpoints (`hbreak`, `watch`: DR0-DR3), single steps, and a stop after writes to an
//!   I/O port (`monitor watch-port`, see [`monitor`]). On kvm_pvm, which emulates guest
//!   kernel code, data watchpoints never fire and are refused: there GDB's software
//!   watchpoints (`set can-use-hw-watchpoints 0`) single-step instead. Elsewhere a probe VM
//!   ([`DebugSupport::probe`](crate::DebugSupport::probe)) shows which stops the host
//!   delivers, and the others are refused (under QEMU TCG's nested SVM: `int3`, and DR0-DR3
//!   before QEMU 9.1);
//! - Ctrl-C pauses every vCPU; `detach` (or GDB going away) removes every breakpoint and
//!   lets the VM run on to its normal end, and another GDB may connect; `kill` stops the VM.
//!
//! With [`GdbOptions::wait`], no vCPU runs before GDB connects and continues.

mod arch;
mod connection;
mod control;
mod debug_regs;
mod monitor;
mod target;

use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::time::Duration;

use axvm::{AxVM, VMStatus};

use connection::{serve_session, SessionEnd};
pub(crate) use control::Control;
use target::VmTarget;

use crate::kvm::{DebugSupport, KvmHal};
use crate::sandbox::ThreadRole;

/// Serving GDB for a VM.
///
/// ```no_run
/// use std::net::TcpListener;
/// use axvm_kvm::{GdbOptions, VmOptions};
///
/// // Port 0: the system picks a free port, which the listener tells.
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// eprintln!("connect GDB to {}", listener.local_addr()?);
/// let options = VmOptions {
///     gdb: Some(GdbOptions { listener, wait: true }),
///     ..Default::default()
/// };
/// # let _ = options;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct GdbOptions {
    /// Where GDB connects (`target remote HOST:PORT`): bound by the caller, so that a bad
    /// address is refused before the VM is created.
    pub listener: TcpListener,
    /// No vCPU runs until GDB connects and continues (`--gdb-wait`).
    pub wait: bool,
}

/// The stub of one VM: its listener and the vCPUs' pause control.
pub(crate) struct GdbServer {
    listener: TcpListener,
    control: Control,
    /// The stops this host's KVM delivers: GDB's requests for others are refused.
    support: DebugSupport,
}

/// How often the listener looks whether the VM ended.
const ACCEPT_SLICE: Duration = Duration::from_millis(50);

impl GdbServer {
    /// The stub for a VM of `vcpu_num` vCPUs.
    pub(crate) fn new(options: GdbOptions, vcpu_num: usize) -> std::io::Result<Self> {
        // Accepting polls (to notice the VM's end); set now, as a confined thread cannot.
        options.listener.set_nonblocking(true)?;
        Ok(Self {
            listener: options.listener,
            control: Control::new(vcpu_num, options.wait),
            support: host_debug_support(),
        })
    }

    /// The vCPU threads' side of the stub.
    pub(crate) fn control(&self) -> &Control {
        &self.control
    }

    /// Called by vCPU `vcpu_id`'s thread before its first run and between runs, `stopped`
    /// after a stop for the debugger: pauses it while GDB wants.
    pub(crate) fn between_runs(&self, vm: &AxVM<KvmHal>, vcpu_id: usize, stopped: bool) {
        let stop = stopped
            .then(|| vm.try_inspect_vcpu(vcpu_id, |vcpu| vcpu.take_debug_stop()))
            .and_then(|taken| taken.ok().flatten().flatten());
        self.control.between_runs(vm, vcpu_id, stop);
    }

    /// Starts the GDB thread of a run in `scope`, confined (when `sandboxed`) before this
    /// returns, as the run's other threads are.
    pub(crate) fn spawn_scoped<'scope, 'env>(
        &'env self,
        scope: &'scope std::thread::Scope<'scope, 'env>,
        vm: &'env AxVM<KvmHal>,
        sandboxed: bool,
    ) -> Result<(), crate::Error> {
        let (confined_tx, confined) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("axvm-gdb".into())
            .spawn_scoped(scope, move || {
                let result = crate::sandbox::confine_if(sandboxed, ThreadRole::Gdb);
                let go = result.is_ok();
                let _ = confined_tx.send(result);
                if go {
                    self.serve(vm);
                }
            })
            .map_err(|err| crate::Error::Console(format!("cannot start the GDB thread: {err}")))?;
        match confined.recv() {
            Ok(result) => Ok(result?),
            Err(_) => Err(crate::Error::Console(
                "the GDB thread ended at its start".into(),
            )),
        }
    }

    /// The GDB thread's body: serves one connection at a time until the VM ends.
    fn serve(&self, vm: &AxVM<KvmHal>) {
        while let Some(stream) = self.accept(vm) {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            log::info!("gdb: {peer} connected");
            self.control.attach();
            if !self.control.pause_all(vm) {
                return;
            }
            let mut target = VmTarget::new(vm, &self.control, self.support);
            let end = serve_session(&mut target, stream);
            self.control.detach();
            match end {
                SessionEnd::Detached => log::info!("gdb: {peer} detached; the VM runs on"),
                SessionEnd::Killed => {
                    log::warn!("gdb: {peer} killed the VM");
                    vm.shutdown();
                    return;
                }
                SessionEnd::VmEnded => return,
            }
        }
    }

    /// The next GDB connection; `None` once the VM has ended.
    fn accept(&self, vm: &AxVM<KvmHal>) -> Option<std::net::TcpStream> {
        loop {
            if self.control.all_ended() || vm.status() == VMStatus::Stopped {
                return None;
            }
            match self.listener.accept() {
                Ok((stream, _)) => return Some(stream),
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                    wait_readable(self.listener.as_raw_fd(), ACCEPT_SLICE)
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => {
                    log::warn!("gdb: cannot accept a connection: {err}; no GDB can connect");
                    return None;
                }
            }
        }
    }
}

/// What this host's KVM stops for ([`DebugSupport::probe`]), said on stderr when it lacks
/// some, so that a refused `break` or `hbreak` explains itself.
///
/// kvm_pvm's emulator fails on a kernel-mode `int3` rather than reporting it, which the
/// vCPU takes for the hit when it sits on one of GDB's breakpoints: there `break` works
/// whatever the real-mode probe found.
fn host_debug_support() -> DebugSupport {
    let software_nested = crate::kvm::is_software_nested_kvm();
    let mut support = DebugSupport::probe().unwrap_or_else(|err| {
        log::warn!("gdb: cannot probe this host's debug stops ({err}); assuming all work");
        DebugSupport {
            int3_stops: true,
            execute_breakpoints: true,
            write_watchpoints: !software_nested,
        }
    });
    log::info!("gdb: the probe VM's debug stops: {support:?}");
    support.int3_stops |= software_nested;
    let missing: Vec<&str> = [
        (
            !support.int3_stops,
            "software breakpoints (`break`: the guest's int3 never reaches KVM)",
        ),
        (
            !support.execute_breakpoints,
            "hardware breakpoints (`hbreak`: DR0-DR3 never match)",
        ),
        (
            !support.write_watchpoints,
            "data watchpoints (`watch`: DR0-DR3 never match data)",
        ),
    ]
    .into_iter()
    .filter_map(|(missing, what)| missing.then_some(what))
    .collect();
    if !missing.is_empty() {
        eprintln!(
            "axvm: this host's KVM does not stop for {}; GDB's requests for them are refused{}",
            missing.join(", "),
            if software_nested {
                ""
            } else {
                " (a KVM nested in QEMU's TCG, say: see README, \"Debugging a guest with GDB\")"
            }
        );
    }
    support
}

/// Waits up to `timeout` for `fd` to become readable (a connection to accept).
fn wait_readable(fd: i32, timeout: Duration) {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let millis = timeout.as_millis().try_into().unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd, for the duration of the call.
    unsafe { libc::poll(&mut poll, 1, millis) };
}
