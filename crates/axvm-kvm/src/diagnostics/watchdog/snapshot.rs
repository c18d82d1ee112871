//! A vCPU's registers and code, taken on its own thread: a running vCPU's state belongs to
//! the thread in `KVM_RUN`, so the watchdog asks (a flag and a kick) and the vCPU thread
//! answers between two `run_vcpu` calls.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use axvm::{AxArchVCpu, AxVM, VMStatus};
use kvm_bindings::{
    KVM_MP_STATE_HALTED, KVM_MP_STATE_INIT_RECEIVED, KVM_MP_STATE_RUNNABLE,
    KVM_MP_STATE_SIPI_RECEIVED, KVM_MP_STATE_UNINITIALIZED,
};

use super::guest_tables::{bios_call, idt_state, unoffered_gib_page, BiosCall, IdtState};
use crate::kvm::{KvmHal, KvmVCpu};

const RFLAGS_IF: u64 = 1 << 9;
const CR0_PE: u64 = 1 << 0;
const EFER_LMA: u64 = 1 << 10;

/// What the report says about one vCPU.
#[derive(Clone, Debug)]
pub(crate) struct VcpuSnapshot {
    /// "running", "halted", "waiting for SIPI", ...
    pub state: &'static str,
    /// Halted with RFLAGS.IF set: waiting for an interrupt.
    pub waits_for_interrupt: bool,
    /// RFLAGS.IF: maskable interrupts enabled.
    pub interrupts_on: bool,
    /// "real", "protected" or "long".
    pub mode: &'static str,
    pub rip: u64,
    /// CS base + RIP.
    pub linear_rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    pub cr0: u64,
    pub cr3: u64,
    pub efer: u64,
    /// IDTR: the interrupt table's base and limit.
    pub idt_base: u64,
    pub idt_limit: u16,
    /// `AxVM::describe_instruction`: the instructions at RIP, disassembled.
    pub code: Option<String>,
    /// The instruction at RIP alone, disassembled (without the "RIP ... (mode):" prefix).
    pub instruction: Option<String>,
    /// The 16 bytes at RIP are all zeros: nothing was loaded there.
    pub zeros_at_rip: bool,
    /// The exits this vCPU made so far: unchanged between two snapshots, it made none.
    pub exit_count: u64,
    /// CS:IP is F000:FFF0 with CS based at 0xffff0000: the state after a reset. KVM on AMD
    /// resets a vCPU that triple-faulted before it reports the shutdown, losing where the
    /// fault was.
    pub reset_state: bool,
    /// Whether an exception could be delivered.
    pub idt: IdtState,
    /// A real-mode `int N` through an all-zero IVT vector, found on the stack.
    pub bios_call: Option<BiosCall>,
    /// The 1 GiB page that maps RIP, when this host's KVM offers no 1 GiB pages.
    pub gib_page: Option<u64>,
}

impl VcpuSnapshot {
    /// Reads `vcpu`'s state; only on the thread that runs it, between `run_vcpu` calls.
    pub(crate) fn capture(vm: &AxVM<KvmHal>, vcpu: &mut KvmVCpu) -> Result<Self, String> {
        let fd = vcpu.fd();
        let regs = fd.get_regs().map_err(|e| format!("KVM_GET_REGS: {e}"))?;
        let sregs = fd.get_sregs().map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
        let mp = fd
            .get_mp_state()
            .map_err(|e| format!("KVM_GET_MP_STATE: {e}"))?;
        let mode = if sregs.efer & EFER_LMA != 0 && sregs.cs.l == 1 {
            "long"
        } else if sregs.cr0 & CR0_PE != 0 {
            "protected"
        } else {
            "real"
        };
        let halted = mp.mp_state == KVM_MP_STATE_HALTED;
        let code = vm.describe_instruction(vcpu, 4);
        let instruction = vm.disassemble_at_rip(vcpu, 1);
        let bios_call = (mode == "real")
            .then(|| bios_call(vm, &sregs, regs.rsp, regs.rax))
            .flatten();
        let linear_rip = sregs.cs.base.wrapping_add(regs.rip);
        let gib_page = (mode == "long" || sregs.efer & EFER_LMA != 0)
            .then(|| unoffered_gib_page(vm, &sregs, linear_rip))
            .flatten();
        let physical = vcpu.instruction_pointer().and_then(|ip| ip.physical);
        let zeros_at_rip = physical.is_some_and(|gpa| {
            let mut code = [0u8; 16];
            vm.memory().read(gpa, &mut code).is_ok() && code.iter().all(|&b| b == 0)
        });
        Ok(Self {
            state: mp_state_name(mp.mp_state),
            waits_for_interrupt: halted && regs.rflags & RFLAGS_IF != 0,
            interrupts_on: regs.rflags & RFLAGS_IF != 0,
            mode,
            rip: regs.rip,
            linear_rip,
            rsp: regs.rsp,
            rflags: regs.rflags,
            cr0: sregs.cr0,
            cr3: sregs.cr3,
            efer: sregs.efer,
            idt_base: sregs.idt.base,
            idt_limit: sregs.idt.limit,
            code,
            instruction,
            zeros_at_rip,
            exit_count: vcpu.recent_exits().1,
            reset_state: sregs.cs.selector == 0xf000
                && sregs.cs.base == 0xffff_0000
                && regs.rip == 0xfff0,
            idt: idt_state(vm, vcpu, mode, &sregs),
            bios_call,
            gib_page,
        })
    }
}

fn mp_state_name(state: u32) -> &'static str {
    match state {
        KVM_MP_STATE_RUNNABLE => "running",
        KVM_MP_STATE_HALTED => "halted",
        KVM_MP_STATE_UNINITIALIZED => "waiting for INIT",
        KVM_MP_STATE_INIT_RECEIVED => "waiting for SIPI",
        KVM_MP_STATE_SIPI_RECEIVED => "starting (SIPI received)",
        _ => "in another state",
    }
}

/// One vCPU's answer: the snapshot, or why it could not be taken.
pub(crate) type Answer = Result<VcpuSnapshot, String>;

/// Where the watchdog asks for snapshots and the vCPU threads leave them. Requests are
/// numbered, so a late answer to an old request is never taken for a new one.
pub(crate) struct SnapshotBoard {
    wanted: AtomicU64,
    answers: Mutex<Vec<Option<(u64, Answer)>>>,
    answered: Condvar,
}

impl SnapshotBoard {
    pub(crate) fn new(vcpu_num: usize) -> Self {
        Self {
            wanted: AtomicU64::new(0),
            answers: Mutex::new(vec![None; vcpu_num]),
            answered: Condvar::new(),
        }
    }

    /// Asks every vCPU for a snapshot; returns the request's number.
    pub(crate) fn request(&self) -> u64 {
        self.wanted.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// Called by vCPU `vcpu_id`'s thread between `run_vcpu` calls: answers a pending request.
    /// One atomic load when none is pending.
    pub(crate) fn answer_if_asked(&self, vm: &AxVM<KvmHal>, vcpu_id: usize) {
        let wanted = self.wanted.load(Ordering::SeqCst);
        if wanted == 0 || self.answered_for(vcpu_id) == Some(wanted) {
            return;
        }
        let answer = match vm.try_inspect_vcpu(vcpu_id, |vcpu| VcpuSnapshot::capture(vm, vcpu)) {
            Ok(Some(answer)) => answer,
            Ok(None) => Err("another thread holds the vCPU".into()),
            Err(err) => Err(err.to_string()),
        };
        let mut answers = self.lock();
        if let Some(slot) = answers.get_mut(vcpu_id) {
            *slot = Some((wanted, answer));
        }
        self.answered.notify_all();
    }

    fn answered_for(&self, vcpu_id: usize) -> Option<u64> {
        self.lock()
            .get(vcpu_id)?
            .as_ref()
            .map(|(request, _)| *request)
    }

    /// Waits (at most `timeout`, less if the VM stops) for every vCPU's answer to `request`;
    /// `None` for a vCPU that did not answer.
    pub(crate) fn collect(
        &self,
        vm: &AxVM<KvmHal>,
        request: u64,
        timeout: Duration,
    ) -> Vec<Option<Answer>> {
        let deadline = Instant::now() + timeout;
        let mut answers = self.lock();
        loop {
            let done = answers
                .iter()
                .all(|slot| matches!(slot, Some((r, _)) if *r == request));
            let now = Instant::now();
            if done || now >= deadline || vm.status() != VMStatus::Running {
                break;
            }
            let step = (deadline - now).min(Duration::from_millis(20));
            answers = self
                .answered
                .wait_timeout(answers, step)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        answers
            .iter()
            .map(|slot| match slot {
                Some((r, answer)) if *r == request => Some(answer.clone()),
                _ => None,
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Option<(u64, Answer)>>> {
        self.answers.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
impl VcpuSnapshot {
    /// A vCPU running real-mode code at 0x8000, for the reports' unit tests to change.
    pub(crate) fn example() -> Self {
        Self {
            state: "running",
            waits_for_interrupt: false,
            interrupts_on: false,
            mode: "real",
            rip: 0x8000,
            linear_rip: 0x8000,
            rsp: 0,
            rflags: 2,
            cr0: 0x6000_0010,
            cr3: 0,
            efer: 0,
            idt_base: 0,
            idt_limit: 0xffff,
            code: None,
            instruction: Some("ud2".into()),
            zeros_at_rip: false,
            exit_count: 0,
            reset_state: false,
            idt: IdtState::Unremarkable,
            bios_call: None,
            gib_page: None,
        }
    }
}
