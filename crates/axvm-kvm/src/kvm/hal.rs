//! [`KvmHal`]: axvm's [`AxVMHal`] on a Linux KVM virtual machine.

use std::cell::Cell;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use axvm::{
    AxVMHal, GuestPhysAddr, HostPhysAddr, HostVirtAddr, MappingFlags, VmMemConfig, VmMemMappingType,
};
use axvm_linux::{
    install_kick_handler, map_guest_ram, unmap_guest_ram, GuestRamError, KickGuard, KickRegistry,
};
use kvm_bindings::{
    kvm_enable_cap, kvm_msi, kvm_pit_config, kvm_userspace_memory_region, CpuId,
    KVM_CAP_X86_USER_SPACE_MSR, KVM_MAX_CPUID_ENTRIES, KVM_MEM_READONLY,
    KVM_MSR_EXIT_REASON_UNKNOWN, KVM_PIT_SPEAKER_DUMMY, KVM_SYNC_X86_REGS,
};
use kvm_ioctls::{Cap, Kvm, SyncReg, VmFd};
use vmm_sys_util::errno::Error as Errno;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::cpuid::{cpuid_for_vcpu, offers_gib_pages};
use super::irq_lines::KvmHpetLines;
use super::irq_routing::set_pc_routing;
use super::limits::{region_refusal, HostLimits};
use super::pass_through::pass_through_plan;
use super::system::require_capabilities;
use super::vcpu::KvmVCpu;
use crate::devices::{HpetLines, NoLines};
use crate::error::KvmError;
use crate::platform::pc::layout::{KVM_TSS_ADDRESS, MSI_ADDRESS_BASE};

thread_local! {
    static CURRENT_VCPU: Cell<Option<(usize, usize)>> = const { Cell::new(None) };
}

/// One KVM virtual machine as an axvm host: guest RAM is anonymous host memory registered as
/// KVM memory slots, vCPUs are KVM vCPUs, interrupts go through KVM's in-kernel irqchip.
pub struct KvmHal {
    vm_id: usize,
    vm: VmFd,
    supported_cpuid: CpuId,
    vcpu_mmap_size: usize,
    irqchip: bool,
    /// KVM copies a vCPU's registers into `kvm_run` on exit, if asked (`KVM_CAP_SYNC_REGS`).
    sync_regs: bool,
    limits: HostLimits,
    next_slot: AtomicU32,
    read_only: Mutex<Vec<(u64, u64)>>,
    kicks: KickRegistry,
}

impl KvmHal {
    /// Whether this VM's vCPUs may map 1 GiB pages: their CPUID offers `pdpe1gb` exactly when
    /// the host's KVM does (`kvm/cpuid.rs`). Without it a long-mode PDPTE with its PS bit set
    /// is a reserved-bit fault.
    pub(crate) fn offers_gib_pages(&self) -> bool {
        offers_gib_pages(&self.supported_cpuid)
    }

    /// Opens `/dev/kvm` and creates an empty VM for axvm VM `vm_id`.
    pub fn new(vm_id: usize) -> Result<Self, KvmError> {
        let kvm = Kvm::new().map_err(|errno| KvmError::Open { errno })?;
        require_capabilities(&kvm)?;
        install_kick_handler().map_err(KvmError::ioctl(
            "cannot install the vCPU kick signal handler",
        ))?;
        let vm = kvm.create_vm().map_err(KvmError::ioctl("KVM_CREATE_VM"))?;
        vm.set_tss_address(KVM_TSS_ADDRESS as usize)
            .map_err(KvmError::ioctl("KVM_SET_TSS_ADDR"))?;
        let irqchip = kvm.check_extension(Cap::Irqchip);
        if irqchip {
            vm.create_irq_chip()
                .map_err(KvmError::ioctl("KVM_CREATE_IRQCHIP"))?;
            // The i8254 PIT (ports 0x40-0x43), emulated in the kernel: kernels calibrate
            // their clocks against it. The dummy speaker makes KVM answer port 0x61 too.
            // KVM wires the PIT to GSI 0, which the PC routing below sends to PIC IRQ 0 and
            // IOAPIC pin 2 (see `platform::pc::layout`, "Interrupt wiring").
            let pit = kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            };
            vm.create_pit2(pit)
                .map_err(KvmError::ioctl("KVM_CREATE_PIT2"))?;
            set_pc_routing(&vm)?;
        }
        let msr_exits = kvm_enable_cap {
            cap: KVM_CAP_X86_USER_SPACE_MSR,
            args: [u64::from(KVM_MSR_EXIT_REASON_UNKNOWN), 0, 0, 0],
            ..Default::default()
        };
        vm.enable_cap(&msr_exits)
            .map_err(KvmError::ioctl("enabling MSR exits to user space"))?;
        let supported_cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(KvmError::ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        let vcpu_mmap_size = kvm
            .get_vcpu_mmap_size()
            .map_err(KvmError::ioctl("KVM_GET_VCPU_MMAP_SIZE"))?;
        let sync_regs = kvm.check_extension_int(Cap::SyncRegs) as u32 & KVM_SYNC_X86_REGS != 0;
        Ok(Self {
            vm_id,
            vm,
            supported_cpuid,
            vcpu_mmap_size,
            irqchip,
            sync_regs,
            limits: HostLimits::of(&kvm),
            next_slot: AtomicU32::new(0),
            read_only: Mutex::new(Vec::new()),
            kicks: KickRegistry::default(),
        })
    }

    /// The KVM VM.
    pub fn vm_fd(&self) -> &VmFd {
        &self.vm
    }

    /// Whether KVM emulates the local APICs, IOAPIC and PIC in the kernel.
    pub fn has_irqchip(&self) -> bool {
        self.irqchip
    }

    /// An interrupt line into the in-kernel irqchip: writing 1 to the returned eventfd
    /// pulses GSI `gsi` (PIC IRQ `gsi` and IOAPIC pin `gsi` for the ISA lines below 16),
    /// without a trip through this process's vCPU threads. An error without an irqchip.
    pub fn irq_line(&self, gsi: u32) -> Result<EventFd, KvmError> {
        if !self.irqchip {
            return Err(KvmError::NoIrqchip { gsi: Some(gsi) });
        }
        let line_error = |operation| {
            move |errno| KvmError::IrqLine {
                gsi,
                operation,
                errno,
            }
        };
        let line =
            EventFd::new(EFD_NONBLOCK).map_err(|err| line_error("eventfd")(Errno::from(err)))?;
        self.vm
            .register_irqfd(&line, gsi)
            .map_err(line_error("KVM_IRQFD"))?;
        Ok(line)
    }

    /// The lines the emulated HPET raises its interrupts on and silences the PIT with:
    /// KVM's, or none without an in-kernel irqchip (the HPET then only counts).
    pub fn hpet_lines(&self) -> Result<Box<dyn HpetLines>, KvmError> {
        match self.irqchip {
            true => Ok(Box::new(KvmHpetLines::new(&self.vm)?)),
            false => Ok(Box::new(NoLines)),
        }
    }

    /// Marks the calling thread as the one running `vcpu_id` until the guard drops, so that
    /// kicks and `current_vcpu_id` find it.
    pub fn enter_vcpu_thread(&self, vcpu_id: usize) -> VCpuThreadGuard<'_> {
        CURRENT_VCPU.with(|current| current.set(Some((self.vm_id, vcpu_id))));
        VCpuThreadGuard {
            _kick: self.kicks.register(vcpu_id),
        }
    }

    fn lock_read_only(&self) -> std::sync::MutexGuard<'_, Vec<(u64, u64)>> {
        self.read_only
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Keeps a thread registered as a vCPU's runner (see [`KvmHal::enter_vcpu_thread`]).
pub struct VCpuThreadGuard<'a> {
    _kick: KickGuard<'a>,
}

impl Drop for VCpuThreadGuard<'_> {
    fn drop(&mut self) {
        CURRENT_VCPU.with(|current| current.set(None));
    }
}

impl AxVMHal for KvmHal {
    type VCpu = KvmVCpu;
    type Error = KvmError;

    fn has_hardware_support(&self) -> bool {
        // The VM exists, so /dev/kvm works and has what axvm requires.
        true
    }

    fn alloc_memory_region(&self, size: u64) -> Result<HostVirtAddr, KvmError> {
        map_guest_ram(size).map_err(|error| match error {
            GuestRamError::TooLarge { size } => KvmError::TooLarge { size },
            GuestRamError::Mmap { size, errno } => KvmError::Mmap { size, errno },
        })
    }

    fn alloc_memory_region_at(&self, _base: HostPhysAddr, _size: u64) -> bool {
        // A Linux process cannot choose the physical addresses of its memory.
        false
    }

    fn dealloc_memory_region(&self, hva: HostVirtAddr, size: u64) {
        // SAFETY: `hva`/`size` come from `alloc_memory_region`, and axvm frees each once,
        // after the last vCPU has stopped.
        unsafe { unmap_guest_ram(hva, size) };
    }

    fn dealloc_memory_region_at(&self, _base: HostPhysAddr, _size: u64) {}

    fn phys_to_virt(&self, _paddr: HostPhysAddr) -> Option<HostVirtAddr> {
        None
    }

    fn map_guest_memory(
        &self,
        gpa: GuestPhysAddr,
        hva: HostVirtAddr,
        size: u64,
        flags: MappingFlags,
    ) -> Result<(), KvmError> {
        let read_only = !flags.contains(MappingFlags::WRITE);
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        // The plan refused these already, in the same words; KVM would only say EINVAL.
        let region = VmMemConfig {
            gpa,
            size,
            flags,
            map_type: VmMemMappingType::MapAlloc,
        };
        if let Some(refusal) = region_refusal(slot as usize, &region, Some(&self.limits)) {
            return Err(refusal);
        }
        let region = kvm_userspace_memory_region {
            slot,
            flags: if read_only { KVM_MEM_READONLY } else { 0 },
            guest_phys_addr: gpa.as_u64(),
            memory_size: size,
            userspace_addr: hva.as_u64(),
        };
        // SAFETY: the memory at `hva` is a live mapping of `size` bytes owned by the VM,
        // unmapped only after the VM (and this VmFd) stops running vCPUs.
        unsafe { self.vm.set_user_memory_region(region) }
            .map_err(KvmError::ioctl("KVM_SET_USER_MEMORY_REGION"))?;
        if read_only {
            self.lock_read_only()
                .push((gpa.as_u64(), gpa.as_u64() + size));
        }
        Ok(())
    }

    fn map_passthrough(
        &self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: u64,
        _flags: MappingFlags,
    ) -> Result<(), KvmError> {
        let served_by = pass_through_plan(gpa, hpa, size, self.irqchip)?;
        log::info!("pass-through at {gpa} is served here: {served_by}");
        Ok(())
    }

    fn create_vcpu(
        &self,
        vcpu_id: usize,
        _phys_cpu_set: Option<usize>,
    ) -> Result<KvmVCpu, KvmError> {
        let mut fd = self
            .vm
            .create_vcpu(vcpu_id as u64)
            .map_err(KvmError::ioctl("KVM_CREATE_VCPU"))?;
        let apic_id =
            u32::try_from(vcpu_id).map_err(|_| KvmError::ApicIdTooLarge { vcpu: vcpu_id })?;
        fd.set_cpuid2(&cpuid_for_vcpu(&self.supported_cpuid, apic_id))
            .map_err(KvmError::ioctl("KVM_SET_CPUID2"))?;
        if self.sync_regs {
            // Every exit then brings RIP with it, for the vCPU's ring of last exits.
            fd.set_sync_valid_reg(SyncReg::Register);
        }
        // SAFETY: the page is the vCPU's kvm_run mapping, which lives as long as `fd`, and
        // the vCPU unregisters its thread (KickGuard) before it is dropped.
        unsafe { self.kicks.add_vcpu(vcpu_id, fd.get_kvm_run()) };
        let read_only = Arc::new(self.lock_read_only().clone());
        Ok(KvmVCpu::new(
            vcpu_id,
            fd,
            self.irqchip,
            self.vcpu_mmap_size,
            read_only,
            self.sync_regs,
        ))
    }

    fn kick_vcpu(&self, vcpu_id: usize) {
        self.kicks.kick(vcpu_id);
    }

    fn inject_irq_to_vcpu(&self, vcpu_id: usize, irq: u8) -> Result<(), KvmError> {
        if !self.irqchip {
            return Err(KvmError::NoIrqchip { gsi: None });
        }
        // A fixed-delivery MSI to the vCPU's APIC id: the local APIC queues the vector and
        // wakes the vCPU if it halted, whichever thread sends it.
        let msi = kvm_msi {
            address_lo: MSI_ADDRESS_BASE | ((vcpu_id as u32 & 0xff) << 12),
            data: u32::from(irq),
            ..Default::default()
        };
        self.vm
            .signal_msi(msi)
            .map(|_| ())
            .map_err(KvmError::ioctl("KVM_SIGNAL_MSI"))
    }

    fn current_time_nanos(&self) -> u64 {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec to fill.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
        (now.tv_sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(now.tv_nsec as u64)
    }

    fn current_vcpu_id(&self) -> Option<usize> {
        CURRENT_VCPU
            .with(Cell::get)
            .filter(|&(vm, _)| vm == self.vm_id)
            .map(|(_, vcpu)| vcpu)
    }

    fn disassemble(
        &self,
        bytes: &[u8],
        ip: u64,
        bitness: u32,
        max_instructions: usize,
    ) -> Option<String> {
        axvm_pc::disassemble::disassemble(bytes, ip, bitness, max_instructions)
    }

    fn disassemble_access_before(
        &self,
        bytes: &[u8],
        end_ip: u64,
        bitness: u32,
        width: usize,
        port: bool,
    ) -> Option<(usize, String)> {
        axvm_pc::disassemble::access_ending_at(bytes, end_ip, bitness, width, port)
    }
}
