//! [`AxVMHal`]: what the hosting environment provides to axvm.

use alloc::string::String;

use crate::{vcpu::AxArchVCpu, GuestPhysAddr, HostPhysAddr, HostVirtAddr, MappingFlags};

/// The services axvm needs from the environment that hosts it: the seed's `AxVMHal`.
///
/// A type-1 hypervisor implements it over its own page allocator, nested page tables and
/// IPIs; a hosted VMM implements it over its kernel's VM API (`axvm-kvm` does it over
/// `/dev/kvm`). axvm itself stays `no_std` and knows neither.
///
/// Methods take `&self` so that a host can keep per-VM state (a KVM VM file descriptor,
/// a page-table root). A host value serves one VM.
///
/// Some of the seed's methods serve type-1 hosts only (a bare-metal SVM host, issue 12):
/// axvm itself never calls [`virt_to_phys`](Self::virt_to_phys),
/// [`current_vm_id`](Self::current_vm_id) or [`current_vcpu_id`](Self::current_vcpu_id);
/// they have defaults ("unknown"), so a hosted VMM need not pretend to answer.
pub trait AxVMHal: Send + Sync + Sized + 'static {
    /// The vCPU type this host's backend provides.
    type VCpu: AxArchVCpu;

    /// How this host's methods fail: the host's own error type (`axvm_kvm::KvmError` on
    /// KVM, which carries the failed ioctl and its errno).
    ///
    /// An associated type rather than a core enum, because only the host knows what can go
    /// wrong in it (an errno on Linux, a page-allocator failure on a type-1 host): host code
    /// calling its own HAL gets its own type back and matches on it directly. When an error
    /// reaches axvm, axvm boxes it into [`AxVMError::Host`](crate::AxVMError::Host) or
    /// [`AxVMError::VCpu`](crate::AxVMError::VCpu) (only then, never on the exit path),
    /// where [`AxVMError::host_cause`](crate::AxVMError::host_cause) gives it back. Its
    /// message should read well after `host could not <operation>: <what>: `.
    type Error: core::error::Error + Send + Sync + 'static;

    /// Whether this machine can run VMs at all (virtualization extensions, a usable
    /// hypervisor device). Explains nothing; hosts offer their own diagnostics.
    fn has_hardware_support(&self) -> bool;

    /// Allocates `size` bytes of zeroed host memory for guest RAM anywhere (MapAlloc).
    fn alloc_memory_region(&self, size: u64) -> Result<HostVirtAddr, Self::Error>;

    /// Allocates `size` bytes of zeroed host memory at host-physical `base` (MapIdentical).
    /// Returns `false` when the host cannot place memory there; axvm then falls back to
    /// [`alloc_memory_region`](Self::alloc_memory_region).
    fn alloc_memory_region_at(&self, base: HostPhysAddr, size: u64) -> bool;

    /// Frees memory from [`alloc_memory_region`](Self::alloc_memory_region).
    fn dealloc_memory_region(&self, hva: HostVirtAddr, size: u64);

    /// Frees memory from [`alloc_memory_region_at`](Self::alloc_memory_region_at).
    fn dealloc_memory_region_at(&self, base: HostPhysAddr, size: u64);

    /// The host-physical address behind a host-virtual one; `None` (the default) when the
    /// host has no such address to give.
    ///
    /// For type-1 hosts (e.g. a bare-metal SVM host, issue 12), whose own code programs
    /// nested page tables and DMA with host-physical addresses; axvm does not call it. A
    /// hosted VMM (KVM) never sees host-physical addresses and keeps the default.
    fn virt_to_phys(&self, vaddr: HostVirtAddr) -> Option<HostPhysAddr> {
        let _ = vaddr;
        None
    }

    /// The host-virtual address at which axvm reaches host-physical `paddr`, if the host
    /// maps it (needed for MapIdentical and MapReserved RAM).
    fn phys_to_virt(&self, paddr: HostPhysAddr) -> Option<HostVirtAddr>;

    /// Makes `size` bytes of host memory at `hva` the guest's RAM at `gpa`, with `flags`
    /// (nested page tables on a type-1 host, a memory slot on KVM).
    fn map_guest_memory(
        &self,
        gpa: GuestPhysAddr,
        hva: HostVirtAddr,
        size: u64,
        flags: MappingFlags,
    ) -> Result<(), Self::Error>;

    /// Shows host-physical `hpa` (device registers, usually) to the guest at `gpa`. A host
    /// that cannot map host-physical memory refuses with the reason.
    fn map_passthrough(
        &self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: u64,
        flags: MappingFlags,
    ) -> Result<(), Self::Error>;

    /// Creates the backend vCPU `vcpu_id`, optionally bound to the physical CPUs in the
    /// affinity mask `phys_cpu_set`.
    fn create_vcpu(
        &self,
        vcpu_id: usize,
        phys_cpu_set: Option<usize>,
    ) -> Result<Self::VCpu, Self::Error>;

    /// Makes vCPU `vcpu_id` leave guest mode soon, wherever it runs, so that its
    /// [`run_vcpu`](crate::AxVM::run_vcpu) loop notices a status change. Must not block.
    fn kick_vcpu(&self, vcpu_id: usize);

    /// Delivers interrupt `irq` to vCPU `vcpu_id` of this host's VM from any thread or CPU,
    /// waking it if it waits for an interrupt. (The seed's method also took a VM id; a host
    /// value serves one VM, so the VM is implied.)
    fn inject_irq_to_vcpu(&self, vcpu_id: usize, irq: u8) -> Result<(), Self::Error>;

    /// Nanoseconds of a monotonic clock.
    fn current_time_nanos(&self) -> u64;

    /// The VM whose vCPU the calling context runs, if any; `None` (the default) when the
    /// host does not track it.
    ///
    /// For type-1 hosts (e.g. a bare-metal SVM host, issue 12), where one interrupt handler
    /// serves every VM and must find the one a physical CPU was running; axvm does not call
    /// it, and the KVM host (one thread per vCPU, one VM per host value) keeps the default.
    fn current_vm_id(&self) -> Option<usize> {
        None
    }

    /// The vCPU the calling context runs, if any; `None` (the default) when the host does
    /// not track it. axvm does not call it; the KVM host answers it for its own vCPU
    /// threads (the ones it runs through `KvmHal::enter_vcpu_thread`).
    fn current_vcpu_id(&self) -> Option<usize> {
        None
    }

    /// `bytes` (guest code at `ip`) as assembly text, one instruction per line, decoded as
    /// `bitness`-bit code; `None` when the host has no disassembler. For messages only.
    fn disassemble(
        &self,
        bytes: &[u8],
        ip: u64,
        bitness: u32,
        max_instructions: usize,
    ) -> Option<String> {
        let _ = (bytes, ip, bitness, max_instructions);
        None
    }

    /// The instruction ending just before `end_ip` that makes a `width`-byte access (a port
    /// access when `port`), found in `bytes`, the guest code ending at `end_ip`: its length
    /// and assembly text. For messages about an access whose vCPU has already moved past it
    /// ([`AxArchVCpu::ip_past_access`](crate::vcpu::AxArchVCpu::ip_past_access)); `None`
    /// (the default) when the host has no disassembler.
    fn disassemble_access_before(
        &self,
        bytes: &[u8],
        end_ip: u64,
        bitness: u32,
        width: usize,
        port: bool,
    ) -> Option<(usize, String)> {
        let _ = (bytes, end_ip, bitness, width, port);
        None
    }
}
