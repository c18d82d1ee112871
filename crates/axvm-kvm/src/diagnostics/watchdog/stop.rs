//! The report of a VM that stopped by itself without an exit status, as full as the
//! watchdog's: every vCPU halted with interrupts off ([`VmOutcome::AllHalted`]), or a vCPU
//! reset the machine ([`VmOutcome::GuestReset`], on x86 usually a triple fault). These are
//! the commonest boot failures, so they get the causes that fit, each vCPU's mode,
//! registers and code, and its last exits, whether or not a diagnostic was asked for.
//!
//! Each vCPU thread takes its vCPU's [`FinalState`] as it ends (its registers belong to
//! that thread, and a confined supervisor thread may not read them); the last exits come
//! from each vCPU's ring ([`KvmVCpu::recent_exits`](crate::KvmVCpu::recent_exits)), which
//! is always on.
//!
//! [`VmOutcome::AllHalted`]: crate::VmOutcome::AllHalted
//! [`VmOutcome::GuestReset`]: crate::VmOutcome::GuestReset

use std::fmt::Write as _;

use axvm::{AxVCpuExitReason, AxVM, GuestPhysAddr};

use super::causes::{entry_cause, table_causes, zeros_cause};
use super::history::ExitKey;
use super::report::write_vcpu;
use super::snapshot::{Answer, VcpuSnapshot};
use crate::kvm::{KvmHal, RecentExit};
use crate::VmOutcome;

/// How the VM stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Every vCPU halted with interrupts off, or waits for a start-up IPI.
    AllHalted,
    /// vCPU `vcpu` reset the machine without an exit status.
    Reset { vcpu: usize },
}

impl Stop {
    /// The stop `outcome` is, when it gets this report.
    pub(crate) fn of(outcome: &VmOutcome) -> Option<Self> {
        match *outcome {
            VmOutcome::AllHalted => Some(Self::AllHalted),
            VmOutcome::GuestReset { vcpu } => Some(Self::Reset { vcpu }),
            _ => None,
        }
    }
}

/// What the report needs besides the VM.
pub(crate) struct StopContext {
    /// Where vCPU 0 started, and the kernel's load address when the image is raw.
    pub entry: GuestPhysAddr,
    pub raw_load: Option<GuestPhysAddr>,
    /// Bytes the guest printed: zeros at the entry of a guest that printed are no cause.
    pub console_bytes: u64,
}

/// One vCPU as the VM left it.
pub(crate) struct FinalState {
    answer: Answer,
    exits: Vec<RecentExit>,
    exit_count: u64,
}

impl FinalState {
    /// vCPU `vcpu_id`'s state, taken on its own thread once it stopped running; `None` if
    /// another thread holds it.
    pub(crate) fn capture(vm: &AxVM<KvmHal>, vcpu_id: usize) -> Option<Self> {
        vm.try_inspect_vcpu(vcpu_id, |vcpu| {
            let (exits, exit_count) = vcpu.recent_exits();
            Self {
                answer: VcpuSnapshot::capture(vm, vcpu),
                exits,
                exit_count,
            }
        })
        .ok()
        .flatten()
    }
}

/// One vCPU in the report.
struct StoppedVcpu {
    id: usize,
    /// `None` when its state could not be taken.
    state: Option<FinalState>,
}

impl StoppedVcpu {
    fn snapshot(&self) -> Option<&VcpuSnapshot> {
        self.state.as_ref()?.answer.as_ref().ok()
    }
}

/// The report on `vm`, which stopped as `stop` says, from the `states` its vCPU threads
/// left, for `axvm run`'s stderr or a library user.
pub(crate) fn stop_report(
    vm: &AxVM<KvmHal>,
    stop: Stop,
    context: &StopContext,
    states: Vec<Option<FinalState>>,
) -> String {
    let vcpus: Vec<StoppedVcpu> = states
        .into_iter()
        .enumerate()
        .map(|(id, state)| StoppedVcpu { id, state })
        .collect();
    let name = vm.config().name.as_str();
    let mut out = match stop {
        Stop::AllHalted => format!(
            "VM `{name}`: every vCPU halted and nothing can wake them (halted with interrupts off, or waiting for a start-up IPI); stopped it.\n"
        ),
        Stop::Reset { vcpu } => format!(
            "VM `{name}`: vCPU {vcpu} reset the machine without an exit status (on x86 usually a triple fault: an exception the guest could not handle).\n"
        ),
    };
    out.push_str("Cause:\n");
    for cause in causes(vm, stop, context, &vcpus) {
        let _ = writeln!(out, "  - {cause}");
    }
    out.push_str("vCPUs:\n");
    for vcpu in &vcpus {
        match &vcpu.state {
            Some(state) => {
                let exits = format!("{} exits in all", state.exit_count);
                write_vcpu(&mut out, vcpu.id, Some(&state.answer), &exits);
            }
            None => {
                let _ = writeln!(out, "  vCPU {}: its state could not be taken", vcpu.id);
            }
        }
    }
    for vcpu in &vcpus {
        if let Some(state) = &vcpu.state {
            write_exits(&mut out, vcpu.id, &state.exits);
        }
    }
    out
}

/// Every cause that fits, the most fundamental first.
fn causes(
    vm: &AxVM<KvmHal>,
    stop: Stop,
    context: &StopContext,
    vcpus: &[StoppedVcpu],
) -> Vec<String> {
    let mut causes = Vec::new();
    if context.console_bytes == 0 && holds_zeros(vm, context.entry) {
        causes.push(entry_cause(
            context.entry.as_u64(),
            context.raw_load.map(|gpa| gpa.as_u64()),
        ));
    }
    for vcpu in vcpus {
        let Some(snapshot) = vcpu.snapshot() else {
            continue;
        };
        // A halted vCPU's RIP is past its `hlt`, where zeros prove nothing.
        if snapshot.zeros_at_rip && !snapshot.reset_state && snapshot.state != "halted" {
            causes.push(zeros_cause(vcpu.id, snapshot.rip));
        }
        if !snapshot.reset_state {
            causes.extend(table_causes(vcpu.id, snapshot));
        }
        causes.extend(match stop {
            Stop::Reset { vcpu: resetting } if resetting == vcpu.id => {
                Some(fault_cause(vcpu.id, snapshot))
            }
            Stop::Reset { .. } => None,
            Stop::AllHalted => halt_cause(vcpu.id, snapshot),
        });
    }
    causes
}

/// The instruction the resetting vCPU stands at: the last before the fault.
fn fault_cause(id: usize, s: &VcpuSnapshot) -> String {
    if s.reset_state {
        return format!(
            "vCPU {id} shows the reset state (CS:IP F000:FFF0): KVM reset it before reporting the shutdown (as it does on AMD SVM), so where the fault was is lost; its last exits below are what is left"
        );
    }
    match s.instruction.as_deref() {
        Some(instruction) => format!(
            "vCPU {id} triple-faulted at RIP {:#x} ({} mode): `{instruction}`, the last instruction before the fault, raised an exception the guest could not handle",
            s.rip, s.mode
        ),
        None => format!(
            "vCPU {id} triple-faulted at RIP {:#x} ({} mode), whose code cannot be read (see its line below): fetching it raised an exception the guest could not handle",
            s.rip, s.mode
        ),
    }
}

/// Why vCPU `id` cannot run again, when it is halted with interrupts off or waits for INIT.
fn halt_cause(id: usize, s: &VcpuSnapshot) -> Option<String> {
    match s.state {
        "halted" if !s.interrupts_on => Some(format!(
            "vCPU {id} halted with interrupts off at RIP {:#x} ({} mode): only an NMI or INIT could wake it; the guest ended there on purpose (a `cli; hlt` after its work or a panic) or waits for an interrupt it disabled",
            s.rip, s.mode
        )),
        "waiting for INIT" | "waiting for SIPI" => Some(format!(
            "vCPU {id} waits for a start-up IPI (INIT-SIPI) that no running vCPU is left to send"
        )),
        _ => None,
    }
}

/// Whether the 16 bytes at `gpa` are zeros (false when `gpa` is not RAM).
fn holds_zeros(vm: &AxVM<KvmHal>, gpa: GuestPhysAddr) -> bool {
    let mut bytes = [0u8; 16];
    vm.memory().read(gpa, &mut bytes).is_ok() && bytes.iter().all(|&b| b == 0)
}

/// vCPU `id`'s last exits, identical neighbours (a loop) once with their count.
fn write_exits(out: &mut String, id: usize, exits: &[RecentExit]) {
    if exits.is_empty() {
        let _ = writeln!(out, "Exits of vCPU {id}: none.");
        return;
    }
    let _ = writeln!(
        out,
        "Last {} exits of vCPU {id}, oldest first:",
        exits.len()
    );
    let mut rest = exits;
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|e| {
                (e.exit, e.rip, e.read_value) == (first.exit, first.rip, first.read_value)
            })
            .count();
        let numbers = match same {
            1 => format!("#{}", first.number),
            _ => format!("{same} x #{}-#{}", first.number, rest[same - 1].number),
        };
        let _ = writeln!(out, "  {numbers}  {}", describe_exit(first));
        rest = &rest[same..];
    }
}

/// "port 0x3f8 write 0x41 at RIP 0x8007", "port 0x3fd read -> 0x60 at RIP 0x8003".
fn describe_exit(e: &RecentExit) -> String {
    let mut text = ExitKey::of(&e.exit).to_string();
    if let AxVCpuExitReason::IoWrite { data, .. }
    | AxVCpuExitReason::MmioWrite { data, .. }
    | AxVCpuExitReason::SysRegWrite { value: data, .. } = e.exit
    {
        let _ = write!(text, " {data:#x}");
    }
    if let Some(value) = e.read_value {
        let _ = write!(text, " -> {value:#x}");
    }
    if let Some(rip) = e.rip {
        let _ = write!(text, " at RIP {rip:#x}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vcpu_reset_by_kvm_is_not_blamed_on_its_reset_vector() {
        let mut snapshot = VcpuSnapshot::example();
        assert!(fault_cause(0, &snapshot).contains("at RIP 0x8000 (real mode): `ud2`"));
        snapshot.reset_state = true;
        snapshot.rip = 0xfff0;
        let cause = fault_cause(0, &snapshot);
        assert!(cause.contains("shows the reset state"), "{cause}");
        assert!(!cause.contains("ud2"), "{cause}");
    }

    #[test]
    fn only_vcpus_that_nothing_can_wake_are_named_for_a_halt() {
        let mut snapshot = VcpuSnapshot::example();
        assert_eq!(halt_cause(1, &snapshot), None);
        snapshot.state = "halted";
        assert!(halt_cause(1, &snapshot)
            .is_some_and(|cause| cause.starts_with("vCPU 1 halted with interrupts off")));
        snapshot.interrupts_on = true;
        assert_eq!(halt_cause(1, &snapshot), None);
        snapshot.state = "waiting for SIPI";
        assert!(halt_cause(1, &snapshot).is_some_and(|cause| cause.contains("start-up IPI")));
    }
}
