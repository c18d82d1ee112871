//! Why a vCPU left guest mode: the seed's `AxVCpuExitReason`.

use crate::{AccessWidth, GuestPhysAddr, MappingFlags};

/// An MSR index (x86) or a system register's encoding (arm64: the trapped `MRS`/`MSR`'s
/// op0, op1, CRn, CRm and op2 as ESR_EL2's ISS packs them, see [`arm64_sysreg`]).
pub type SysRegAddr = u32;

/// The [`SysRegAddr`] of arm64 system register (op0, op1, CRn, CRm, op2), in the layout of
/// ESR_EL2's ISS for a trapped `MRS`/`MSR` (EC 0x18): op0 at bit 20, op2 at 17, op1 at 14,
/// CRn at 10, CRm at 1. A type-1 arm64 host reports its traps this way, so devices can
/// claim system registers with [`DeviceRange::sysreg`](crate::device::DeviceRange::sysreg).
///
/// ```
/// use axvm::vcpu::arm64_sysreg;
/// // CNTV_CTL_EL0: op0 3, op1 3, CRn 14, CRm 3, op2 1.
/// assert_eq!(arm64_sysreg(3, 3, 14, 3, 1), 0x32_f806);
/// ```
pub const fn arm64_sysreg(op0: u32, op1: u32, crn: u32, crm: u32, op2: u32) -> SysRegAddr {
    (op0 & 3) << 20 | (op2 & 7) << 17 | (op1 & 7) << 14 | (crn & 15) << 10 | (crm & 15) << 1
}

/// Why [`AxArchVCpu::run`](super::AxArchVCpu::run) returned.
///
/// The first six kinds are handled inside [`AxVM::run_vcpu`](crate::AxVM::run_vcpu) (through
/// the device manager and the address space); every other kind is returned to its caller.
///
/// [`Hypercall`](Self::Hypercall), [`CpuUp`](Self::CpuUp), [`CpuDown`](Self::CpuDown),
/// [`SendIPI`](Self::SendIPI) and [`ExternalInterrupt`](Self::ExternalInterrupt) are for
/// type-1 hosts (e.g. a bare-metal SVM host, issue 12), whose backend sees these events
/// itself; the KVM host never reports them, because KVM handles each in the kernel (see
/// each kind). They are returned to the caller like any kind axvm does not handle.
///
/// Reads carry no value: the VM answers them with
/// [`AxArchVCpu::set_read_result`](super::AxArchVCpu::set_read_result) before running the vCPU
/// again, so that each backend can deliver the value the way its hardware does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AxVCpuExitReason {
    /// The guest read device memory. On arm64 the width comes from the data abort's
    /// syndrome (ESR_EL2.SAS); the backend keeps the rest of it (SSE, SRT, SF) and completes
    /// the load into the register the way [`extend_mmio_read`](super::extend_mmio_read)
    /// describes (KVM does this in the kernel).
    MmioRead {
        /// Guest-physical address.
        addr: GuestPhysAddr,
        /// Access width.
        width: AccessWidth,
    },
    /// The guest wrote device memory.
    MmioWrite {
        /// Guest-physical address.
        addr: GuestPhysAddr,
        /// Access width.
        width: AccessWidth,
        /// The value written (the low `width` bytes are meaningful).
        data: u64,
    },
    /// The guest read an I/O port (`IN`).
    IoRead {
        /// Port number.
        port: u16,
        /// Access width (1, 2 or 4 bytes).
        width: AccessWidth,
    },
    /// The guest wrote an I/O port (`OUT`).
    IoWrite {
        /// Port number.
        port: u16,
        /// Access width (1, 2 or 4 bytes).
        width: AccessWidth,
        /// The value written.
        data: u64,
    },
    /// The guest read a system register (`RDMSR`; a trapped `MRS` on arm64).
    SysRegRead {
        /// MSR index, or the arm64 encoding ([`arm64_sysreg`]).
        addr: SysRegAddr,
    },
    /// The guest wrote a system register (`WRMSR`; a trapped `MSR` on arm64).
    SysRegWrite {
        /// MSR index, or the arm64 encoding ([`arm64_sysreg`]).
        addr: SysRegAddr,
        /// The value written (EDX:EAX; the source register on arm64).
        value: u64,
    },
    /// A guest access that the nested page tables do not allow.
    NestedPageFault {
        /// Guest-physical address.
        addr: GuestPhysAddr,
        /// What the guest tried: READ, WRITE or EXECUTE.
        access_flags: MappingFlags,
    },
    /// A hypercall (`VMCALL`/`VMMCALL`; `HVC`/`SMC` on arm64 other than the PSCI calls the
    /// backend turns into [`CpuUp`](Self::CpuUp), [`CpuDown`](Self::CpuDown) and
    /// [`SystemDown`](Self::SystemDown)). Type-1 hosts only: KVM answers the guest's
    /// hypercalls itself (its paravirtual ones on x86, PSCI on arm64) and exits to user
    /// space with `KVM_EXIT_HYPERCALL` only for a capability axvm does not enable.
    Hypercall {
        /// Hypercall number (arm64: the SMCCC function id in x0).
        nr: u64,
        /// Arguments (arm64: x1..x6).
        args: [u64; 6],
    },
    /// The vCPU executed `HLT` (`WFI` on arm64, for a host that traps it; KVM waits in the
    /// kernel).
    Halt,
    /// The guest asked to start another vCPU (start-up IPIs; PSCI `CPU_ON` on arm64, whose
    /// context argument is `arg`). Type-1 hosts only: with KVM, INIT and start-up IPIs go
    /// through the in-kernel local APIC, and PSCI through KVM, which start the target
    /// themselves.
    CpuUp {
        /// Target vCPU id.
        target_cpu: usize,
        /// Where it starts.
        entry_point: GuestPhysAddr,
        /// A value handed to it.
        arg: u64,
    },
    /// The vCPU turned itself off (PSCI `CPU_OFF` on arm64). Type-1 hosts only: a KVM vCPU
    /// that stops waits in the kernel (reported as [`Halt`](Self::Halt) when kicked, if
    /// nothing can wake it).
    CpuDown {
        /// Architecture-specific state.
        state: u64,
    },
    /// The guest powered the machine off or reset it (exit device, keyboard-controller
    /// reset, triple fault; PSCI `SYSTEM_OFF` or `SYSTEM_RESET` on arm64); the VM stops.
    SystemDown,
    /// The guest sent an inter-processor interrupt. Type-1 hosts only: KVM's in-kernel
    /// local APIC delivers IPIs between vCPUs without an exit.
    SendIPI {
        /// Target vCPU id.
        target_cpu: usize,
        /// Interrupt vector.
        vector: u8,
    },
    /// A host interrupt arrived while the guest ran. Type-1 hosts only: under KVM the host
    /// kernel takes its own interrupts, and a signal that stops the vCPU is
    /// [`Interrupted`](Self::Interrupted).
    ExternalInterrupt {
        /// Host vector.
        vector: u8,
    },
    /// The host asked the vCPU to leave guest mode (a kick): the caller should look at the
    /// VM status and pending work, then run again.
    Interrupted,
    /// The hardware refused to enter the guest: its state is invalid.
    FailEntry {
        /// Hardware-specific reason code.
        hardware_entry_failure_reason: u64,
    },
    /// The backend could not emulate what the guest did (an instruction its emulator does
    /// not know, an exit reason it does not handle); the VM cannot go on.
    InternalError {
        /// Backend-specific code.
        code: u64,
    },
    /// Nothing to do: the exit was handled inside the backend.
    Nothing,
    /// The vCPU stopped for the host's debugger: a breakpoint, a single step or a watched
    /// access that the host armed (the host knows which, and what to show). Never returned
    /// unless the host turned its guest debugging on.
    Debug,
}

impl AxVCpuExitReason {
    /// A short name of the kind, for statistics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MmioRead { .. } => "mmio-read",
            Self::MmioWrite { .. } => "mmio-write",
            Self::IoRead { .. } => "io-read",
            Self::IoWrite { .. } => "io-write",
            Self::SysRegRead { .. } => "sysreg-read",
            Self::SysRegWrite { .. } => "sysreg-write",
            Self::NestedPageFault { .. } => "nested-page-fault",
            Self::Hypercall { .. } => "hypercall",
            Self::Halt => "halt",
            Self::CpuUp { .. } => "cpu-up",
            Self::CpuDown { .. } => "cpu-down",
            Self::SystemDown => "system-down",
            Self::SendIPI { .. } => "send-ipi",
            Self::ExternalInterrupt { .. } => "external-interrupt",
            Self::Interrupted => "interrupted",
            Self::FailEntry { .. } => "fail-entry",
            Self::InternalError { .. } => "internal-error",
            Self::Nothing => "nothing",
            Self::Debug => "debug",
        }
    }
}
