//! How the SVM vCPU fails: each error names the vCPU and what to do.

use alloc::string::String;

use super::guest_paging::GuestWalkError;
use crate::exit::ExitDecodeError;
use crate::memory::HostMemoryError;

/// How the SVM vCPU fails.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SvmError {
    /// A resource given at creation is unusable.
    #[error("vCPU {vcpu}: {what} {value:#x} is unusable: {fix}")]
    BadResource {
        /// The vCPU.
        vcpu: usize,
        /// Which resource.
        what: &'static str,
        /// Its value.
        value: u64,
        /// What it must be.
        fix: &'static str,
    },
    /// Host memory for the VMCB could not be had.
    #[error("vCPU {vcpu}: {source}")]
    HostMemory {
        /// The vCPU.
        vcpu: usize,
        /// Why.
        source: HostMemoryError,
    },
    /// `run` on a vCPU that waits for a start-up IPI.
    #[error("vCPU {vcpu} waits for a start-up IPI (StartPolicy::WaitForSipi): call start_at_sipi before running it")]
    WaitingForSipi {
        /// The vCPU.
        vcpu: usize,
    },
    /// `run` after an exit the guest cannot continue from.
    #[error("vCPU {vcpu} cannot run again after its {kind} exit (set it up again first)")]
    Stopped {
        /// The vCPU.
        vcpu: usize,
        /// The exit's kind.
        kind: &'static str,
    },
    /// `set_read_result` without a read exit.
    #[error("vCPU {vcpu}: set_read_result, but the last exit was not a read")]
    NoPendingRead {
        /// The vCPU.
        vcpu: usize,
    },
    /// `set_gpr` of a register that does not exist.
    #[error("vCPU {vcpu}: no general register {reg} (0-15)")]
    NoSuchRegister {
        /// The vCPU.
        vcpu: usize,
        /// The number asked for.
        reg: usize,
    },
    /// An exit the backend cannot handle.
    #[error("{cause}\n{state}")]
    UnhandledExit {
        /// What could not be handled.
        cause: ExitDecodeError,
        /// [`SvmVCpu::describe_state`](super::SvmVCpu::describe_state) at the exit.
        state: String,
    },
    /// The instruction behind an MMIO exit or a write to read-only memory could not be
    /// read from guest memory.
    #[error("guest access at {gpa:#x} (MMIO or read-only memory): cannot read the instruction: {cause}\n{state}")]
    InstructionFetch {
        /// The guest-physical address accessed.
        gpa: u64,
        /// Why.
        cause: GuestWalkError,
        /// [`SvmVCpu::describe_state`](super::SvmVCpu::describe_state) at the exit.
        state: String,
    },
}
