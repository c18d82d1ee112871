//! Errors of the KVM host: [`KvmError`] for what the kernel (or this host's KVM backend)
//! refused, [`Error`] for everything that can stop a VM from being created or run.

use axvm::{AccessWidth, AxVMError, ConfigError};
use vmm_sys_util::errno::Error as Errno;

/// Why the KVM backend failed: the [`AxVMHal::Error`](axvm::AxVMHal::Error) and
/// [`AxArchVCpu::Error`](axvm::AxArchVCpu::Error) of [`KvmHal`](crate::KvmHal) and
/// [`KvmVCpu`](crate::KvmVCpu).
///
/// A failed system call keeps its errno, so a caller can tell "out of memory" from "already
/// exists" without parsing text:
///
/// ```
/// use axvm_kvm::KvmError;
/// use vmm_sys_util::errno::Error as Errno;
///
/// let err = KvmError::Ioctl { operation: "KVM_CREATE_VCPU", errno: Errno::new(libc::EEXIST) };
/// assert_eq!(err.errno(), Some(libc::EEXIST));
/// assert_eq!(err.to_string(), "KVM_CREATE_VCPU: File exists (os error 17)");
/// ```
///
/// Inside an [`AxVMError`], find it with
/// [`AxVMError::host_cause`](axvm::AxVMError::host_cause):
/// `err.host_cause().and_then(|c| c.downcast_ref::<KvmError>())`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KvmError {
    /// `/dev/kvm` could not be opened.
    #[error("cannot open /dev/kvm: {errno} (see `axvm check`)")]
    Open {
        /// Why.
        errno: Errno,
    },

    /// KVM lacks a capability that VMs cannot run without.
    #[error("KVM lacks {capability}: {without_it} (see `axvm check`)")]
    MissingCapability {
        /// The capability's name (`KVM_CAP_...`).
        capability: &'static str,
        /// What would not work without it.
        without_it: &'static str,
    },

    /// A KVM ioctl, or another system call the backend needs, failed.
    #[error("{operation}: {errno}")]
    Ioctl {
        /// The ioctl (`KVM_CREATE_VM`, `KVM_SET_USER_MEMORY_REGION`, ...) or what the call
        /// was for.
        operation: &'static str,
        /// The kernel's error.
        errno: Errno,
    },

    /// KVM gave up on the vCPU (`KVM_EXIT_INTERNAL_ERROR`): most often an instruction its
    /// emulator cannot run (on kvm_pvm, any SSE instruction in guest kernel mode).
    #[error("{report}")]
    Internal {
        /// The sub-error (`KVM_INTERNAL_ERROR_EMULATION` = 1, ...).
        suberror: u32,
        /// What KVM said, with the registers and the instruction.
        report: String,
    },

    /// `KVM_RUN` failed (other than by a kick, which is not an error).
    #[error("KVM_RUN failed: {errno}")]
    Run {
        /// The kernel's error.
        errno: Errno,
    },

    /// An interrupt line (an eventfd registered with `KVM_IRQFD`) could not be made.
    #[error("{operation} for GSI {gsi}: {errno}")]
    IrqLine {
        /// The line.
        gsi: u32,
        /// `eventfd` or `KVM_IRQFD`.
        operation: &'static str,
        /// The kernel's error.
        errno: Errno,
    },

    /// The interrupt routing table did not fit KVM's structure.
    #[error("building the IRQ routing table: {0:?}")]
    RoutingTable(vmm_sys_util::fam::Error),

    /// Host memory for the guest could not be mapped.
    #[error("mmap of {size:#x} bytes failed: {errno}")]
    Mmap {
        /// The size asked for.
        size: u64,
        /// The kernel's error.
        errno: Errno,
    },

    /// A memory size larger than this host's address space.
    #[error("{size:#x} bytes do not fit this host's address space")]
    TooLarge {
        /// The size asked for.
        size: u64,
    },

    /// KVM maps guest memory readable or not at all.
    #[error("KVM cannot map memory the guest may not read; add READ (0x1) to its flags")]
    UnreadableMemory,

    /// More memory regions than KVM has memory slots (`KVM_CAP_NR_MEMSLOTS`).
    #[error("KVM on this host gives a VM {limit} memory slots, one per region, and this region would need one more; use fewer regions (merge adjacent ones with the same flags)")]
    TooManySlots {
        /// The host's slot count.
        limit: usize,
    },

    /// A region larger than one KVM memory slot holds.
    #[error("{size:#x} bytes are more than one KVM memory slot holds ({max:#x}); split it into regions of at most that size")]
    SlotTooLarge {
        /// The region's size.
        size: u64,
        /// The most a slot holds.
        max: u64,
    },

    /// A region ending above the guest-physical address width.
    #[error("it ends at {end:#x}, above the {bits}-bit guest-physical address space of this host (up to {:#x}); move it below that", 1u64.checked_shl(u32::from(*bits)).unwrap_or(u64::MAX))]
    BeyondPhysAddrBits {
        /// One past the region's last byte.
        end: u64,
        /// The host's guest-physical address bits.
        bits: u8,
    },

    /// A Linux process cannot map host-physical memory into a guest.
    #[error("axvm runs VMs as a Linux process and cannot map host-physical memory; remove the entry, or run the config on a type-1 host")]
    NoHostPhysicalMemory,

    /// Interrupt delivery needs KVM's in-kernel irqchip, which this KVM lacks.
    #[error("{}this KVM has no in-kernel irqchip to deliver interrupts", gsi.map(|gsi| format!("GSI {gsi}: ")).unwrap_or_default())]
    NoIrqchip {
        /// The interrupt line asked for, if any.
        gsi: Option<u32>,
    },

    /// A vCPU id that does not fit an x86 APIC id.
    #[error("vCPU id too large for an APIC id")]
    ApicIdTooLarge {
        /// The vCPU id.
        vcpu: usize,
    },

    /// KVM reported a port access of a width x86 does not have.
    #[error("KVM reported a {size}-byte port access")]
    PortAccessSize {
        /// The width KVM reported, in bytes.
        size: u8,
    },

    /// KVM reported port I/O data that does not lie inside the vCPU's `kvm_run` mapping.
    #[error("KVM reported port I/O data outside the kvm_run mapping ({count} x {width} at {data_offset:#x})")]
    PortDataOutside {
        /// Elements of the (string) access.
        count: usize,
        /// Width of each.
        width: AccessWidth,
        /// Where KVM put them in `kvm_run`.
        data_offset: usize,
    },

    /// The guest accessed device memory with a width axvm does not emulate.
    #[error("{size}-byte MMIO access at {addr:#x} (SSE/AVX to device memory?) is not supported")]
    MmioAccessSize {
        /// The guest-physical address.
        addr: u64,
        /// The width, in bytes.
        size: usize,
    },

    /// `set_read_result` without a read exit to answer.
    #[error("no read is waiting for a value")]
    NoPendingRead,

    /// A general-purpose register number x86 does not have.
    #[error("there is no general-purpose register {reg}")]
    NoSuchRegister {
        /// The number asked for.
        reg: usize,
    },
}

impl KvmError {
    /// The errno of a failed system call; `None` for the errors the backend found itself.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Open { errno }
            | Self::Ioctl { errno, .. }
            | Self::Run { errno }
            | Self::IrqLine { errno, .. }
            | Self::Mmap { errno, .. } => Some(errno.errno()),
            _ => None,
        }
    }

    /// A `map_err` adapter: `ioctl().map_err(KvmError::ioctl("KVM_CREATE_VM"))`.
    pub(crate) fn ioctl(operation: &'static str) -> impl FnOnce(Errno) -> Self {
        move |errno| Self::Ioctl { operation, errno }
    }
}

/// Why a VM could not be created, loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// KVM refused to set the VM up (see `axvm check`).
    #[error("cannot set up KVM: {0}")]
    Kvm(#[from] KvmError),
    /// The core refused the config or failed.
    #[error(transparent)]
    Vm(#[from] AxVMError),
    /// An image cannot be loaded as the config asks.
    #[error(transparent)]
    Image(#[from] ConfigError),
    /// The thread writing the guest's console, or the one reading its input, could not be
    /// started.
    #[error("cannot start the console thread: {0}")]
    Console(String),
    /// A device of [`VmOptions::extra_devices`](crate::VmOptions::extra_devices) cannot be
    /// added (its ranges overlap a platform device's or another extra device's).
    #[error("cannot add a device of VmOptions::extra_devices: {0}")]
    ExtraDevice(#[from] axvm::device::DeviceError),
    /// A thread of the run could not be confined by the sandbox
    /// ([`VmOptions::sandbox`](crate::VmOptions::sandbox)).
    #[error(transparent)]
    Sandbox(#[from] crate::sandbox::SandboxError),
    /// A VM was created or run on a thread that a sandboxed run already confined: it can
    /// open nothing, and its filter would confine the new run's threads too.
    #[error("this thread already ran a sandboxed VM and is confined: create and run each sandboxed VM from a thread of its own (see VmOptions::sandbox)")]
    AlreadyConfined,
    /// A vCPU thread could not be started.
    #[error("cannot start a thread for vCPU {vcpu}: {message}")]
    Thread {
        /// The vCPU.
        vcpu: usize,
        /// Why.
        message: String,
    },
}
