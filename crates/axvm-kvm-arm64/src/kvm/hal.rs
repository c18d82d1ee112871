//! [`Arm64Hal`]: axvm's `AxVMHal` on an arm64 KVM virtual machine.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Instant;

use axvm::{AxVMHal, GuestPhysAddr, HostPhysAddr, HostVirtAddr, MappingFlags};
use axvm_linux::{install_kick_handler, map_guest_ram, unmap_guest_ram, KickGuard, KickRegistry};
use axvm_virt::layout::SPI_BASE_INTID;
use axvm_virt::pass_through::pass_through_plan;
use axvm_virt::GicVersion;
use kvm_bindings::{
    kvm_userspace_memory_region, kvm_vcpu_init, KVM_ARM_IRQ_TYPE_SHIFT, KVM_ARM_IRQ_TYPE_SPI,
    KVM_ARM_VCPU_POWER_OFF, KVM_ARM_VCPU_PSCI_0_2, KVM_MEM_READONLY,
};
use kvm_ioctls::{Kvm, VmFd};

use super::gic::Vgic;
use super::vcpu::Arm64VCpu;
use crate::error::Arm64Error;

/// One arm64 KVM virtual machine as an axvm host: guest RAM is anonymous host memory in KVM
/// memory slots, vCPUs are KVM vCPUs with PSCI, interrupts go through the in-kernel vGIC.
pub struct Arm64Hal {
    vm: VmFd,
    /// What `KVM_ARM_VCPU_INIT` needs: the host's preferred CPU target.
    target: kvm_vcpu_init,
    next_slot: AtomicU32,
    kicks: KickRegistry,
    vgic: OnceLock<Vgic>,
    started: Instant,
}

impl Arm64Hal {
    /// Opens `/dev/kvm` and creates an empty VM.
    pub fn new() -> Result<Self, Arm64Error> {
        let kvm = Kvm::new().map_err(|errno| Arm64Error::Open { errno })?;
        install_kick_handler()
            .map_err(Arm64Error::ioctl("installing the vCPU kick signal handler"))?;
        let vm = kvm
            .create_vm()
            .map_err(Arm64Error::ioctl("KVM_CREATE_VM"))?;
        let mut target = kvm_vcpu_init::default();
        vm.get_preferred_target(&mut target)
            .map_err(Arm64Error::ioctl("KVM_ARM_PREFERRED_TARGET"))?;
        Ok(Self {
            vm,
            target,
            next_slot: AtomicU32::new(0),
            kicks: KickRegistry::default(),
            vgic: OnceLock::new(),
            started: Instant::now(),
        })
    }

    /// Creates and initializes the in-kernel vGIC; call once, after every vCPU exists (the
    /// core creates them in `AxVM::new`) and before any runs. Returns its version.
    pub fn create_vgic(&self) -> Result<GicVersion, Arm64Error> {
        let vgic = Vgic::create(&self.vm)?;
        vgic.finish()?;
        let version = vgic.version();
        // A second call keeps the first vGIC (KVM would refuse a second one anyway).
        let _ = self.vgic.set(vgic);
        Ok(version)
    }

    /// The VM's GIC version, once [`create_vgic`](Self::create_vgic) made it.
    pub fn gic_version(&self) -> Option<GicVersion> {
        self.vgic.get().map(Vgic::version)
    }

    /// Sets the level of SPI `spi` (INTID 32 + `spi`) at the vGIC's distributor.
    pub fn set_spi(&self, spi: u32, level: bool) -> Result<(), Arm64Error> {
        let irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (SPI_BASE_INTID + spi);
        self.vm
            .set_irq_line(irq, level)
            .map_err(Arm64Error::ioctl("KVM_IRQ_LINE (SPI)"))
    }

    /// Makes the calling thread the one that runs `vcpu_id` (so that kicks reach it) until
    /// the guard drops.
    pub fn register_vcpu_thread(&self, vcpu_id: usize) -> KickGuard<'_> {
        self.kicks.register(vcpu_id)
    }

    fn add_slot(
        &self,
        gpa: GuestPhysAddr,
        hva: HostVirtAddr,
        size: u64,
        flags: MappingFlags,
    ) -> Result<(), Arm64Error> {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let region = kvm_userspace_memory_region {
            slot,
            flags: if flags.contains(MappingFlags::WRITE) {
                0
            } else {
                KVM_MEM_READONLY
            },
            guest_phys_addr: gpa.as_u64(),
            memory_size: size,
            userspace_addr: hva.as_u64(),
        };
        // SAFETY: the memory at `hva` is a mapping of `size` bytes the core allocated through
        // this HAL for the VM's lifetime; KVM only accesses it while the VM exists.
        unsafe { self.vm.set_user_memory_region(region) }
            .map_err(Arm64Error::ioctl("KVM_SET_USER_MEMORY_REGION"))
    }
}

impl AxVMHal for Arm64Hal {
    type VCpu = Arm64VCpu;
    type Error = Arm64Error;

    fn has_hardware_support(&self) -> bool {
        // The VM exists, so /dev/kvm works.
        true
    }

    fn alloc_memory_region(&self, size: u64) -> Result<HostVirtAddr, Arm64Error> {
        Ok(map_guest_ram(size)?)
    }

    fn alloc_memory_region_at(&self, _base: HostPhysAddr, _size: u64) -> bool {
        // A Linux process cannot choose the physical addresses of its memory.
        false
    }

    fn dealloc_memory_region(&self, hva: HostVirtAddr, size: u64) {
        // SAFETY: a mapping made by `alloc_memory_region`, which the core frees once, after
        // the VM (and so KVM) stopped using it.
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
    ) -> Result<(), Arm64Error> {
        self.add_slot(gpa, hva, size, flags)
    }

    fn map_passthrough(
        &self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: u64,
        _flags: MappingFlags,
    ) -> Result<(), Arm64Error> {
        // The board's own GIC and UART at their addresses need no mapping: the vGIC and the
        // emulated PL011 serve them. Anything else is refused with the fix.
        pass_through_plan(gpa.as_u64(), hpa.as_u64(), size)
            .map(drop)
            .map_err(Arm64Error::Boot)
    }

    fn create_vcpu(
        &self,
        vcpu_id: usize,
        _phys_cpu_set: Option<usize>,
    ) -> Result<Arm64VCpu, Arm64Error> {
        let id = u64::try_from(vcpu_id).unwrap_or(u64::MAX);
        let mut fd = self
            .vm
            .create_vcpu(id)
            .map_err(Arm64Error::ioctl("KVM_CREATE_VCPU"))?;
        let mut init = self.target;
        init.features[0] |= 1 << KVM_ARM_VCPU_PSCI_0_2;
        if vcpu_id != 0 {
            // Secondary vCPUs wait, powered off, for the guest's PSCI CPU_ON.
            init.features[0] |= 1 << KVM_ARM_VCPU_POWER_OFF;
        }
        fd.vcpu_init(&init)
            .map_err(Arm64Error::ioctl("KVM_ARM_VCPU_INIT"))?;
        // SAFETY: the page is the vCPU's kvm_run mapping, which lives as long as `fd`, and
        // the vCPU's thread unregisters (KickGuard) before the vCPU is dropped.
        unsafe { self.kicks.add_vcpu(vcpu_id, fd.get_kvm_run()) };
        Ok(Arm64VCpu::new(vcpu_id, fd))
    }

    fn kick_vcpu(&self, vcpu_id: usize) {
        self.kicks.kick(vcpu_id);
    }

    fn inject_irq_to_vcpu(&self, _vcpu_id: usize, irq: u8) -> Result<(), Arm64Error> {
        // On this board `irq` is an SPI's INTID; the distributor routes it (edge: a pulse).
        let spi = u32::from(irq).checked_sub(SPI_BASE_INTID).ok_or_else(|| {
            Arm64Error::Boot(format!(
                "cannot inject INTID {irq}: only SPIs (INTID 32 and up) can be raised from outside the vCPU"
            ))
        })?;
        self.set_spi(spi, true)?;
        self.set_spi(spi, false)
    }

    fn current_time_nanos(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn disassemble(
        &self,
        bytes: &[u8],
        ip: u64,
        _bitness: u32,
        max_instructions: usize,
    ) -> Option<String> {
        super::disassemble::a64(bytes, ip, max_instructions)
    }
}
