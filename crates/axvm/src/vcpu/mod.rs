//! The vCPU backend interface: what a hypervisor backend (KVM, VT-x, SVM, ...) implements.

mod access;
mod exit;

pub use access::{extend_mmio_read, merge_port_read, split_msr_value, LoadExtension};
pub use exit::{arm64_sysreg, AxVCpuExitReason, SysRegAddr};

use crate::GuestPhysAddr;

/// A virtual CPU as the backend provides it: the seed's `AxArchVCpu`.
///
/// axvm drives it: [`set_entry`](Self::set_entry) and [`setup`](Self::setup) before the
/// first [`run`](Self::run), then `run` in a loop, answering each read exit with
/// [`set_read_result`](Self::set_read_result). Methods fail with the backend's own
/// [`Error`](Self::Error); axvm adds the vCPU id.
pub trait AxArchVCpu: Send {
    /// How the backend starts this vCPU beyond its entry address: processor mode, initial
    /// registers, page-table root. Chosen by the host when it loads the images, because only
    /// the image format says what the guest expects.
    type SetupConfig;

    /// How the backend's methods fail (`axvm_kvm::KvmError` on KVM: the failed ioctl and
    /// its errno). An associated type for the reason given at
    /// [`AxVMHal::Error`](crate::AxVMHal::Error): the backend keeps its own kinds, and axvm
    /// boxes the error into [`AxVMError::VCpu`](crate::AxVMError::VCpu) only when one
    /// happens.
    type Error: core::error::Error + Send + Sync + 'static;

    /// Sets the address the vCPU starts executing at.
    fn set_entry(&mut self, entry: GuestPhysAddr) -> Result<(), Self::Error>;

    /// Prepares the vCPU's initial state.
    fn setup(&mut self, config: Self::SetupConfig) -> Result<(), Self::Error>;

    /// Runs the guest until it exits.
    fn run(&mut self) -> Result<AxVCpuExitReason, Self::Error>;

    /// Answers the read that caused the last exit ([`MmioRead`], [`IoRead`] or
    /// [`SysRegRead`]) with `value`, which holds the access's bytes, zero-extended.
    ///
    /// The backend delivers it as the hardware would: see [`merge_port_read`],
    /// [`extend_mmio_read`] and [`split_msr_value`].
    ///
    /// [`MmioRead`]: AxVCpuExitReason::MmioRead
    /// [`IoRead`]: AxVCpuExitReason::IoRead
    /// [`SysRegRead`]: AxVCpuExitReason::SysRegRead
    fn set_read_result(&mut self, value: u64) -> Result<(), Self::Error>;

    /// Sets general-purpose register `reg` (architecture numbering; 0 is RAX on x86).
    fn set_gpr(&mut self, reg: usize, value: u64) -> Result<(), Self::Error>;

    /// Where the vCPU is executing, for messages; `None` when the backend cannot tell.
    /// Called on rare paths only (a new run of unclaimed accesses while debug logging is
    /// on, a diagnosis).
    fn instruction_pointer(&mut self) -> Option<crate::vm::InstructionPointer> {
        None
    }

    /// Whether the instruction pointer already lies past the instruction that made the last
    /// exit's access to `space` (a write when `write`): some hosts complete an instruction
    /// before they exit (KVM an MMIO write). For messages; `false` by default.
    fn ip_past_access(&self, space: crate::device::DeviceSpace, write: bool) -> bool {
        let _ = (space, write);
        false
    }
}
