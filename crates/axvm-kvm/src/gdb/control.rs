//! Stopping and resuming the vCPUs for GDB: all-stop, as GDB's default mode expects.
//!
//! A running vCPU's state belongs to the thread in `KVM_RUN`, so the debugger never touches
//! a vCPU itself: it asks every vCPU to pause (a flag and a kick), and each vCPU thread,
//! between two `run_vcpu` calls, saves its registers here and waits. GDB then reads and
//! changes the saved registers (and guest memory, which needs no vCPU); a resume bumps an
//! epoch, and each vCPU thread writes back what GDB changed, arms its debug state
//! (breakpoints, a single step) and runs again. A vCPU that stops for the debugger (a
//! breakpoint, a step, a watched port) leaves a stop here and asks the others to pause.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use axvm::{AxVM, AxVMHal, VMStatus};

use crate::kvm::{DebugStop, GuestDebug, KvmHal, VcpuRegisters};

/// How often a waiting side looks again (the VM may have stopped; a kick may have been
/// lost to a vCPU that was between runs).
const RECHECK: Duration = Duration::from_millis(20);

/// One vCPU, as the debugger knows it.
#[derive(Clone, Debug, Default)]
struct Slot {
    paused: bool,
    /// Its thread has ended: it will never pause again.
    ended: bool,
    /// Its registers while paused.
    registers: Option<VcpuRegisters>,
    /// GDB changed `registers`: write them back before running.
    dirty: bool,
    /// Run one instruction at the next resume.
    step: bool,
    /// Named by GDB's resume (continue or step).
    resumed: bool,
    /// Stays paused through resumes (GDB's scheduler locking named other vCPUs).
    held: bool,
}

#[derive(Debug, Default)]
struct Shared {
    /// Bumped by every resume: a vCPU paused in an older epoch runs again.
    epoch: u64,
    slots: Vec<Slot>,
    /// What every vCPU arms when it resumes (its `single_step` is per vCPU, from `step`).
    debug: GuestDebug,
    /// Stops the vCPUs reported and GDB has not yet been told of.
    stops: VecDeque<(usize, DebugStop)>,
    /// A GDB session is on: debug stops are reported.
    attached: bool,
}

/// The meeting point of the vCPU threads and the GDB thread.
pub(crate) struct Control {
    /// Read by every vCPU between runs: one atomic load when no pause is wanted.
    pause_wanted: AtomicBool,
    shared: Mutex<Shared>,
    changed: Condvar,
}

impl Control {
    /// The control of `vcpu_num` vCPUs; with `wait`, they pause before their first
    /// instruction (GDB's `--gdb-wait`).
    pub(crate) fn new(vcpu_num: usize, wait: bool) -> Self {
        Self {
            pause_wanted: AtomicBool::new(wait),
            shared: Mutex::new(Shared {
                slots: vec![Slot::default(); vcpu_num],
                ..Default::default()
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    // ---- The vCPU threads' side. ----

    /// Called by vCPU `vcpu_id`'s thread before its first run and between runs, with the
    /// stop it just had for the debugger, if any: pauses it while GDB wants.
    pub(crate) fn between_runs(&self, vm: &AxVM<KvmHal>, vcpu_id: usize, stop: Option<DebugStop>) {
        if let Some(stop) = stop {
            let mut shared = self.lock();
            if shared.attached {
                shared.stops.push_back((vcpu_id, stop));
                self.pause_wanted.store(true, Ordering::SeqCst);
                drop(shared);
                self.changed.notify_all();
                kick_all(vm);
            }
        }
        if self.pause_wanted.load(Ordering::SeqCst) {
            self.pause(vm, vcpu_id);
        }
    }

    /// Saves the vCPU's registers, waits for a resume (or the VM's end), then writes back
    /// what GDB changed and arms the debug state.
    fn pause(&self, vm: &AxVM<KvmHal>, vcpu_id: usize) {
        let registers = with_vcpu(vm, vcpu_id, |vcpu| vcpu.debug_registers());
        let mut shared = self.lock();
        if !self.pause_wanted.load(Ordering::SeqCst) {
            return;
        }
        let epoch = shared.epoch;
        if let Some(slot) = shared.slots.get_mut(vcpu_id) {
            (slot.paused, slot.registers, slot.dirty) = (true, registers, false);
        }
        self.changed.notify_all();
        let held = |shared: &Shared| shared.slots.get(vcpu_id).is_some_and(|slot| slot.held);
        while (shared.epoch == epoch || held(&shared)) && vm.status() == VMStatus::Running {
            shared = self.wait(shared);
        }
        let mut debug = shared.debug.clone();
        let Some(slot) = shared.slots.get_mut(vcpu_id) else {
            return;
        };
        slot.paused = false;
        let written = slot.registers.take().filter(|_| slot.dirty);
        debug.single_step = debug.enabled && std::mem::take(&mut slot.step);
        drop(shared);
        with_vcpu(vm, vcpu_id, |vcpu| {
            if let Some(registers) = &written {
                vcpu.set_debug_registers(registers)?;
            }
            vcpu.set_guest_debug(&debug)
        });
    }

    /// Called by vCPU `vcpu_id`'s thread at its start: the guard marks it ended when the
    /// thread ends, however it does.
    pub(crate) fn vcpu_thread(&self, vcpu_id: usize) -> VcpuThread<'_> {
        VcpuThread {
            control: self,
            vcpu_id,
        }
    }

    fn ended(&self, vcpu_id: usize) {
        if let Some(slot) = self.lock().slots.get_mut(vcpu_id) {
            slot.ended = true;
        }
        self.changed.notify_all();
    }

    fn wait<'a>(&self, shared: MutexGuard<'a, Shared>) -> MutexGuard<'a, Shared> {
        self.changed
            .wait_timeout(shared, RECHECK)
            .unwrap_or_else(|p| p.into_inner())
            .0
    }

    // ---- The GDB thread's side. ----

    /// Starts a session: debug stops are reported from now on.
    pub(crate) fn attach(&self) {
        self.lock().attached = true;
    }

    /// Ends a session: disarms every breakpoint and lets every vCPU run freely.
    pub(crate) fn detach(&self) {
        let mut shared = self.lock();
        shared.attached = false;
        shared.debug = GuestDebug::default();
        shared.stops.clear();
        shared.slots.iter_mut().for_each(|slot| {
            (slot.step, slot.held) = (false, false);
        });
        drop(shared);
        self.resume(false);
    }

    /// Pauses every vCPU and waits until each has (or has ended); `false` when the VM
    /// stopped first.
    pub(crate) fn pause_all(&self, vm: &AxVM<KvmHal>) -> bool {
        self.pause_wanted.store(true, Ordering::SeqCst);
        let mut shared = self.lock();
        loop {
            if shared.slots.iter().all(|slot| slot.paused || slot.ended) {
                return true;
            }
            if vm.status() != VMStatus::Running {
                return false;
            }
            kick_all(vm);
            shared = self.wait(shared);
        }
    }

    /// Lets the paused vCPUs run (those marked by [`step`](Self::step) for one
    /// instruction): all of them, or with `locked` (GDB's scheduler locking) only those
    /// GDB named. Stops reported before are dropped, as GDB saw the one it was told.
    pub(crate) fn resume(&self, locked: bool) {
        let mut shared = self.lock();
        shared.stops.clear();
        for slot in &mut shared.slots {
            slot.held = locked && !slot.resumed;
        }
        shared.epoch += 1;
        self.pause_wanted.store(false, Ordering::SeqCst);
        drop(shared);
        self.changed.notify_all();
    }

    /// Names `vcpu_id` in the next resume, to run one instruction (`step`) or on.
    pub(crate) fn resume_action(&self, vcpu_id: usize, step: bool) {
        if let Some(slot) = self.lock().slots.get_mut(vcpu_id) {
            (slot.step, slot.resumed) = (step, true);
        }
    }

    /// Forgets the resume actions of the last resume.
    pub(crate) fn clear_resume_actions(&self) {
        self.lock().slots.iter_mut().for_each(|slot| {
            (slot.step, slot.resumed) = (false, false);
        });
    }

    /// Changes what the vCPUs arm when they resume.
    pub(crate) fn update_debug(&self, change: impl FnOnce(&mut GuestDebug)) {
        let mut shared = self.lock();
        change(&mut shared.debug);
        shared.debug.enabled = true;
    }

    /// The oldest stop not yet reported.
    pub(crate) fn next_stop(&self) -> Option<(usize, DebugStop)> {
        self.lock().stops.pop_front()
    }

    /// Every vCPU thread has ended: the VM is over.
    pub(crate) fn all_ended(&self) -> bool {
        self.lock().slots.iter().all(|slot| slot.ended)
    }

    /// The vCPUs still running guest code (not ended), for GDB's thread list.
    pub(crate) fn live_vcpus(&self) -> Vec<usize> {
        let shared = self.lock();
        (0..shared.slots.len())
            .filter(|&id| !shared.slots[id].ended)
            .collect()
    }

    /// Reads (and with `write`, changes) paused vCPU `vcpu_id`'s registers; `None` when it
    /// is not paused or its registers could not be read.
    pub(crate) fn with_registers<R>(
        &self,
        vcpu_id: usize,
        write: bool,
        f: impl FnOnce(&mut VcpuRegisters) -> R,
    ) -> Option<R> {
        let mut shared = self.lock();
        let slot = shared.slots.get_mut(vcpu_id).filter(|slot| slot.paused)?;
        let result = f(slot.registers.as_mut()?);
        slot.dirty |= write;
        Some(result)
    }
}

/// Marks a vCPU ended when its thread ends ([`Control::vcpu_thread`]).
pub(crate) struct VcpuThread<'a> {
    control: &'a Control,
    vcpu_id: usize,
}

impl Drop for VcpuThread<'_> {
    fn drop(&mut self) {
        self.control.ended(self.vcpu_id);
    }
}

/// Kicks every vCPU out of `KVM_RUN`.
fn kick_all(vm: &AxVM<KvmHal>) {
    for vcpu_id in 0..vm.vcpu_num() {
        vm.hal().kick_vcpu(vcpu_id);
    }
}

/// Runs `f` on vCPU `vcpu_id` (only from its own thread, between runs); a failure is
/// logged, as the debugger can go on without it.
fn with_vcpu<R>(
    vm: &AxVM<KvmHal>,
    vcpu_id: usize,
    f: impl FnOnce(&mut crate::kvm::KvmVCpu) -> Result<R, crate::KvmError>,
) -> Option<R> {
    match vm.try_inspect_vcpu(vcpu_id, f) {
        Ok(Some(Ok(value))) => Some(value),
        Ok(Some(Err(err))) => {
            log::warn!("gdb: vCPU {vcpu_id}: {err}");
            None
        }
        Ok(None) => None,
        Err(err) => {
            log::warn!("gdb: vCPU {vcpu_id}: {err}");
            None
        }
    }
}
