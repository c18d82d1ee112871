//! SIGINT and SIGTERM during `axvm run`: the first stops every VM the way a guest's own end
//! would, so that `--stats`, the unclaimed-access summary and the end of `--trace-exits`
//! still come out; axvm then says `axvm: stopped by SIGTERM` and exits 128 + the signal's
//! number (130 for SIGINT, 143 for SIGTERM), as a shell reports a command the signal killed.
//! A second signal (the second Ctrl-C) exits at once with 128 + its number, waiting for
//! nothing (a VM whose stop hangs, say on a stalled stdout, cannot keep axvm alive).
//!
//! The signals are taken by signal-hook's self-pipe on a thread of their own, which calls
//! each VM's [`StopHandle::stop`]; nothing runs in the signal handler itself.

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, MutexGuard};

use axvm::AxVMHal;
use axvm_linux::StopHandle;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::output::{self, errln};

/// What a signal does, by whether one came before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    /// The first: stop every VM.
    StopVms,
    /// A later one: exit now.
    ExitNow,
}

impl Action {
    fn after(earlier: Option<i32>) -> Self {
        match earlier {
            None => Self::StopVms,
            Some(_) => Self::ExitNow,
        }
    }
}

#[derive(Default)]
struct State {
    /// The first signal, once it came.
    received: Option<i32>,
    /// How to stop each VM (their stop handles, whatever their host).
    vms: Vec<Box<dyn Fn() + Send>>,
}

/// Stops the VMs it [watches](Self::watch) on SIGINT or SIGTERM (see the module doc).
#[derive(Clone)]
pub struct SignalStop(Arc<Mutex<State>>);

impl SignalStop {
    /// Takes over SIGINT and SIGTERM for the rest of the process; the thread that takes
    /// them is confined by seccomp (`ThreadRole::Supervisor`) when `sandbox`.
    pub fn install(sandbox: bool) -> Result<Self, String> {
        let mut signals = Signals::new([SIGINT, SIGTERM])
            .map_err(|err| format!("cannot handle SIGINT and SIGTERM: {err}"))?;
        let stop = Self(Arc::default());
        let for_thread = stop.clone();
        let (confined_tx, confined) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("axvm-signals".into())
            .spawn(move || {
                let result = match sandbox {
                    true => confine_supervisor(),
                    false => Ok(()),
                };
                let go = result.is_ok();
                let _ = confined_tx.send(result);
                if go {
                    for signal in signals.forever() {
                        for_thread.on_signal(signal);
                    }
                }
            })
            .map_err(|err| format!("cannot start the signal thread: {err}"))?;
        match confined.recv() {
            Ok(Ok(())) => Ok(stop),
            Ok(Err(err)) => Err(err),
            Err(_) => Err("the signal thread ended at its start".into()),
        }
    }

    /// Stops every VM watched so far, as a first signal would (without one).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub fn stop_all(&self) {
        self.state().vms.iter().for_each(|stop| stop());
    }

    /// Stops `vm` on the first signal, or at once if it already came (a signal during VM
    /// creation makes the VM's run return as soon as it starts).
    pub fn watch<H: AxVMHal>(&self, vm: StopHandle<H>) {
        let mut state = self.state();
        if state.received.is_some() {
            vm.stop();
        }
        state.vms.push(Box::new(move || vm.stop()));
    }

    /// The first signal, if one came.
    pub fn received(&self) -> Option<i32> {
        self.state().received
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics under this lock; a poisoned one still holds a consistent state.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn on_signal(&self, signal: i32) {
        let mut state = self.state();
        match Action::after(state.received) {
            Action::StopVms => {
                state.received = Some(signal);
                log::info!("{}: stopping every VM", name(signal));
                state.vms.iter().for_each(|stop| stop());
            }
            Action::ExitNow => exit_now(signal),
        }
    }
}

/// Confines the signal thread by seccomp (`ThreadRole::Supervisor`).
fn confine_supervisor() -> Result<(), String> {
    use axvm_linux::sandbox::{confine_current_thread, ThreadRole};
    confine_current_thread(ThreadRole::Supervisor).map_err(|err| err.to_string())
}

/// Ends axvm on a second signal: one line on stderr, then `_exit`. The line is written
/// without the stderr lock (the thread that holds it may be the one stuck), and only when
/// stderr can take it now: a stalled stderr must not hold up the exit either.
fn exit_now(signal: i32) -> ! {
    let line = format!(
        "axvm: {} again: exiting without waiting for the VMs to stop\n",
        name(signal)
    );
    let mut stderr = libc::pollfd {
        fd: 2,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: polls one descriptor described by a live `pollfd`, without waiting.
    let writable =
        unsafe { libc::poll(&mut stderr, 1, 0) } == 1 && stderr.revents & libc::POLLOUT != 0;
    if writable {
        // SAFETY: writes a buffer that lives across the call to fd 2; a failure is ignored.
        let _ = unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    }
    signal_hook::low_level::exit(128 + signal)
}

/// "SIGTERM".
pub fn name(signal: i32) -> &'static str {
    signal_hook::low_level::signal_name(signal).unwrap_or("a signal")
}

/// Says that `signal` stopped the VM(s) and gives the exit status 128 + its number.
pub fn stopped_by(signal: i32) -> output::Result<ExitCode> {
    errln!("axvm: stopped by {}", name(signal))?;
    let _ = std::io::stderr().flush();
    Ok(ExitCode::from(
        u8::try_from(128 + signal).unwrap_or(u8::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_signal_stops_and_the_second_exits() {
        assert_eq!(Action::after(None), Action::StopVms);
        assert_eq!(Action::after(Some(SIGINT)), Action::ExitNow);
        assert_eq!(Action::after(Some(SIGTERM)), Action::ExitNow);
    }

    #[test]
    fn signals_are_named() {
        assert_eq!(name(SIGTERM), "SIGTERM");
        assert_eq!(name(SIGINT), "SIGINT");
    }
}
