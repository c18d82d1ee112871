//! The VM as a `gdbstub` target: registers of the paused vCPUs (GDB's threads, vCPU N is
//! thread N + 1), guest memory by virtual or physical address, breakpoints, watchpoints,
//! resuming and stepping.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;

use axvm::{AxVM, GuestPhysAddr};
use gdbstub::common::{Signal, Tid};
use gdbstub::stub::MultiThreadStopReason;
use gdbstub::target::ext::base::multithread::{
    MultiThreadBase, MultiThreadResume, MultiThreadResumeOps, MultiThreadSchedulerLocking,
    MultiThreadSchedulerLockingOps, MultiThreadSingleStep, MultiThreadSingleStepOps,
};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::breakpoints::{
    Breakpoints, BreakpointsOps, HwBreakpoint, HwBreakpointOps, HwWatchpoint, HwWatchpointOps,
    SwBreakpoint, SwBreakpointOps, WatchKind,
};
use gdbstub::target::ext::monitor_cmd::MonitorCmdOps;
use gdbstub::target::{Target, TargetError, TargetResult};

use super::arch::{SystemRegs, X86_64System};
use super::control::Control;
use super::debug_regs::{HwSlots, SlotUse};
use crate::kvm::{DebugStop, DebugSupport, KvmHal};
use axvm_pc::guest_paging::{linear_to_phys, PagingRegs, ReadFn};

/// The `int3` instruction.
const INT3: u8 = 0xcc;

/// What GDB debugs: the VM's memory and its paused vCPUs.
pub(crate) struct VmTarget<'a> {
    pub(super) vm: &'a AxVM<KvmHal>,
    pub(super) control: &'a Control,
    /// Memory addresses are guest-physical (`monitor phys on`), not virtual.
    pub(super) physical: bool,
    /// Each software breakpoint: its linear address, where its `int3` went in guest RAM and
    /// the byte it replaced.
    sw_breakpoints: BTreeMap<u64, (u64, u8)>,
    hw_slots: HwSlots,
    /// The stop GDB was last told of, for `monitor last-stop`.
    pub(super) last_stop: Option<(usize, DebugStop)>,
    /// The resume being prepared runs only the vCPUs GDB names (scheduler locking, which
    /// GDB uses to step one thread over a breakpoint).
    scheduler_locked: bool,
    /// The stops this host delivers: not data watchpoints on kvm_pvm, whose emulator
    /// (which runs all guest kernel code) checks only execute breakpoints; neither `int3`
    /// nor DR0-DR3 under QEMU TCG's nested SVM (see [`DebugSupport`]).
    support: DebugSupport,
}

/// vCPU `vcpu_id` as a GDB thread.
pub(super) fn tid_of(vcpu_id: usize) -> Tid {
    NonZeroUsize::new(vcpu_id + 1).unwrap_or(NonZeroUsize::MIN)
}

fn vcpu_of(tid: Tid) -> usize {
    tid.get() - 1
}

impl<'a> VmTarget<'a> {
    pub(crate) fn new(vm: &'a AxVM<KvmHal>, control: &'a Control, support: DebugSupport) -> Self {
        Self {
            vm,
            control,
            physical: false,
            sw_breakpoints: BTreeMap::new(),
            hw_slots: HwSlots::default(),
            last_stop: None,
            scheduler_locked: false,
            support,
        }
    }

    /// What GDB is told of a vCPU's stop.
    pub(super) fn stop_reason(
        &mut self,
        vcpu_id: usize,
        stop: DebugStop,
    ) -> MultiThreadStopReason<u64> {
        self.last_stop = Some((vcpu_id, stop));
        let tid = tid_of(vcpu_id);
        let trap = MultiThreadStopReason::SignalWithThread {
            tid,
            signal: Signal::SIGTRAP,
        };
        match stop {
            DebugStop::SoftwareBreakpoint => MultiThreadStopReason::SwBreak(tid),
            DebugStop::HardwareSlot { slot } => match self.hw_slots.get(slot) {
                Some(SlotUse::Execute { .. }) => MultiThreadStopReason::HwBreak(tid),
                Some(SlotUse::Watch { addr, kind, .. }) => {
                    MultiThreadStopReason::Watch { tid, kind, addr }
                }
                None => trap,
            },
            DebugStop::Step | DebugStop::GuestBreakpoint | DebugStop::PortWrite { .. } => trap,
        }
    }

    /// The guest-physical address of `addr` as vCPU `vcpu_id` sees it now, and how many
    /// bytes from there stay in the same page.
    fn physical(&self, vcpu_id: usize, addr: u64) -> Option<(u64, u64)> {
        if self.physical {
            return Some((addr, u64::MAX));
        }
        let paging = self
            .control
            .with_registers(vcpu_id, false, |r| PagingRegs {
                cr0: r.sregs.cr0,
                cr3: r.sregs.cr3,
                cr4: r.sregs.cr4,
                efer: r.sregs.efer,
            })?;
        let memory = self.vm.memory();
        let read =
            ReadFn(|gpa: u64, buf: &mut [u8]| memory.read(GuestPhysAddr::new(gpa), buf).ok());
        let gpa = linear_to_phys(&read, &paging, addr).ok()?;
        Some((gpa, 0x1000 - (addr & 0xfff)))
    }

    /// Copies guest memory at `addr` (as `vcpu_id` sees it) into or out of `data`, a page
    /// at a time; how many bytes it could.
    fn access(
        &self,
        vcpu_id: usize,
        addr: u64,
        len: usize,
        mut copy: impl FnMut(u64, usize, usize) -> bool,
    ) -> usize {
        let mut done = 0;
        while done < len {
            let at = addr.wrapping_add(done as u64);
            let Some((gpa, in_page)) = self.physical(vcpu_id, at) else {
                break;
            };
            let chunk = (len - done).min(usize::try_from(in_page).unwrap_or(usize::MAX));
            if !copy(gpa, done, chunk) {
                break;
            }
            done += chunk;
        }
        done
    }

    /// The vCPU whose view of memory breakpoints are set in: the first one still running.
    fn any_vcpu(&self) -> usize {
        self.control.live_vcpus().first().copied().unwrap_or(0)
    }

    /// Puts back every byte a software breakpoint replaced (at the end of a session).
    pub(super) fn remove_all_breakpoints(&mut self) {
        for (_, (gpa, original)) in std::mem::take(&mut self.sw_breakpoints) {
            let _ = self.vm.memory().write(GuestPhysAddr::new(gpa), &[original]);
        }
        self.hw_slots = HwSlots::default();
    }

    fn publish_breakpoints(&self) {
        let addresses: Vec<u64> = self.sw_breakpoints.keys().copied().collect();
        let (debugreg, dr7) = self.hw_slots.registers();
        self.control.update_debug(|debug| {
            debug.sw_breakpoints = addresses;
            debug.debugreg = debugreg;
            debug.dr7 = dr7;
        });
    }
}

impl Target for VmTarget<'_> {
    type Arch = X86_64System;
    type Error = String;

    fn base_ops(&mut self) -> BaseOps<'_, X86_64System, String> {
        BaseOps::MultiThread(self)
    }

    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }

    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }

    /// GDB is told of `int3` breakpoints (`Z0`) and the stub writes them, so none stay in
    /// guest memory while GDB is not connected.
    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
}

impl MultiThreadBase for VmTarget<'_> {
    fn read_registers(&mut self, regs: &mut SystemRegs, tid: Tid) -> TargetResult<(), Self> {
        *regs = self
            .control
            .with_registers(vcpu_of(tid), false, |r| SystemRegs::from_vcpu(r))
            .ok_or(TargetError::NonFatal)?;
        Ok(())
    }

    fn write_registers(&mut self, regs: &SystemRegs, tid: Tid) -> TargetResult<(), Self> {
        self.control
            .with_registers(vcpu_of(tid), true, |r| regs.apply_to(r))
            .ok_or(TargetError::NonFatal)
    }

    fn read_addrs(&mut self, addr: u64, data: &mut [u8], tid: Tid) -> TargetResult<usize, Self> {
        let memory = self.vm.memory();
        let len = data.len();
        let done = self.access(vcpu_of(tid), addr, len, |gpa, at, chunk| {
            memory
                .read(GuestPhysAddr::new(gpa), &mut data[at..at + chunk])
                .is_ok()
        });
        match done {
            0 if len > 0 => Err(TargetError::NonFatal),
            done => Ok(done),
        }
    }

    fn write_addrs(&mut self, addr: u64, data: &[u8], tid: Tid) -> TargetResult<(), Self> {
        let memory = self.vm.memory();
        let done = self.access(vcpu_of(tid), addr, data.len(), |gpa, at, chunk| {
            memory
                .write(GuestPhysAddr::new(gpa), &data[at..at + chunk])
                .is_ok()
        });
        match done == data.len() {
            true => Ok(()),
            false => Err(TargetError::NonFatal),
        }
    }

    fn list_active_threads(&mut self, thread_is_active: &mut dyn FnMut(Tid)) -> Result<(), String> {
        self.control
            .live_vcpus()
            .into_iter()
            .for_each(|vcpu_id| thread_is_active(tid_of(vcpu_id)));
        Ok(())
    }

    fn support_resume(&mut self) -> Option<MultiThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadResume for VmTarget<'_> {
    fn resume(&mut self) -> Result<(), String> {
        self.publish_breakpoints();
        self.control.resume(self.scheduler_locked);
        Ok(())
    }

    fn clear_resume_actions(&mut self) -> Result<(), String> {
        self.scheduler_locked = false;
        self.control.clear_resume_actions();
        Ok(())
    }

    /// Every vCPU runs unless told to step; a signal GDB passes is not delivered (a vCPU
    /// has no signals).
    fn set_resume_action_continue(
        &mut self,
        tid: Tid,
        _signal: Option<Signal>,
    ) -> Result<(), String> {
        self.control.resume_action(vcpu_of(tid), false);
        Ok(())
    }

    fn support_single_step(&mut self) -> Option<MultiThreadSingleStepOps<'_, Self>> {
        Some(self)
    }

    fn support_scheduler_locking(&mut self) -> Option<MultiThreadSchedulerLockingOps<'_, Self>> {
        Some(self)
    }
}

impl MultiThreadSchedulerLocking for VmTarget<'_> {
    fn set_resume_action_scheduler_lock(&mut self) -> Result<(), String> {
        self.scheduler_locked = true;
        Ok(())
    }
}

impl MultiThreadSingleStep for VmTarget<'_> {
    fn set_resume_action_step(&mut self, tid: Tid, _signal: Option<Signal>) -> Result<(), String> {
        self.control.resume_action(vcpu_of(tid), true);
        Ok(())
    }
}

impl Breakpoints for VmTarget<'_> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_breakpoint(&mut self) -> Option<HwBreakpointOps<'_, Self>> {
        Some(self)
    }

    fn support_hw_watchpoint(&mut self) -> Option<HwWatchpointOps<'_, Self>> {
        Some(self)
    }
}

impl SwBreakpoint for VmTarget<'_> {
    /// Writes an `int3` at `addr`'s physical address (translated as the first vCPU sees it);
    /// refused where the guest's `int3` never reaches KVM (it would kill the guest).
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        if !self.support.int3_stops {
            return Ok(false);
        }
        if self.sw_breakpoints.contains_key(&addr) {
            return Ok(true);
        }
        let Some((gpa, _)) = self.physical(self.any_vcpu(), addr) else {
            return Ok(false);
        };
        let memory = self.vm.memory();
        let mut original = [0u8];
        if memory.read(GuestPhysAddr::new(gpa), &mut original).is_err()
            || memory.write(GuestPhysAddr::new(gpa), &[INT3]).is_err()
        {
            return Ok(false);
        }
        self.sw_breakpoints.insert(addr, (gpa, original[0]));
        Ok(true)
    }

    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        let Some((gpa, original)) = self.sw_breakpoints.remove(&addr) else {
            return Ok(false);
        };
        Ok(self
            .vm
            .memory()
            .write(GuestPhysAddr::new(gpa), &[original])
            .is_ok())
    }
}

impl HwBreakpoint for VmTarget<'_> {
    /// Refused where DR0-DR3 never match, so that GDB says so rather than run past it.
    fn add_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.support.execute_breakpoints && self.hw_slots.add(SlotUse::Execute { addr }))
    }

    fn remove_hw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.hw_slots.remove(SlotUse::Execute { addr }))
    }
}

impl HwWatchpoint for VmTarget<'_> {
    /// Refused where data breakpoints never fire (kvm_pvm, QEMU TCG's nested SVM), so that
    /// GDB says so rather than waiting for a stop that never comes.
    fn add_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(self.support.write_watchpoints && self.hw_slots.add(SlotUse::Watch { addr, len, kind }))
    }

    fn remove_hw_watchpoint(
        &mut self,
        addr: u64,
        len: u64,
        kind: WatchKind,
    ) -> TargetResult<bool, Self> {
        Ok(self.hw_slots.remove(SlotUse::Watch { addr, len, kind }))
    }
}
