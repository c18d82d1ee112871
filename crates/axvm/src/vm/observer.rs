//! Watching the exit loop: an [`ExitObserver`] sees every exit a vCPU makes, what the loop
//! did with it, and how long that took. Statistics, exit traces and the watchdog are
//! observers; a VM without one pays a single branch per exit.

use crate::vcpu::AxVCpuExitReason;

/// What the exit loop did with an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitDisposition {
    /// A device or guest memory handled it; the guest went on.
    Handled,
    /// No device claims the address: the unclaimed-access policy applied.
    Unclaimed,
    /// Returned to `run_vcpu`'s caller (halt, shutdown, kick, ...).
    Returned,
}

/// One exit as the loop saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitEvent {
    /// The vCPU that exited.
    pub vcpu: usize,
    /// Why it exited.
    pub exit: AxVCpuExitReason,
    /// What the loop did.
    pub disposition: ExitDisposition,
    /// For reads the loop answered: the value the guest got.
    pub read_value: Option<u64>,
    /// The host clock ([`AxVMHal::current_time_nanos`](crate::AxVMHal::current_time_nanos))
    /// when the loop got the exit.
    pub time_nanos: u64,
    /// Nanoseconds the loop spent handling it.
    pub handling_nanos: u64,
}

/// Sees every exit of every vCPU of a VM, on the vCPU's own thread, with the vCPU at hand
/// (for its registers). Keep it quick: it runs on the exit path.
pub trait ExitObserver<V>: Send + Sync {
    /// Called after the loop handled (or decided to return) `event.exit`.
    fn on_exit(&self, event: &ExitEvent, vcpu: &mut V);
}

/// Where a vCPU is executing, for messages and diagnostics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstructionPointer {
    /// The instruction pointer register (RIP, or IP in real mode).
    pub rip: u64,
    /// The linear address it designates (segment base + RIP).
    pub linear: u64,
    /// The guest-physical address behind it, when the guest's page tables map it.
    pub physical: Option<crate::GuestPhysAddr>,
    /// 16, 32 or 64: how the instruction there is decoded.
    pub bitness: u32,
}
