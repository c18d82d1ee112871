//! [`SvmHal`]: the core's `AxVMHal` on bare metal. Guest RAM comes from the frame allocator
//! (exactly the configured host range for `MapIdentical`), is mapped for the guest by nested
//! page tables, and every vCPU is an `axvm_svm::SvmVCpu` on one physical CPU.

use alloc::string::String;
use alloc::sync::Arc;
use core::ptr::NonNull;

use axvm::{AxVMHal, GuestPhysAddr, HostPhysAddr, HostVirtAddr, MappingFlags};
use axvm_svm::memory::{default_iopm, default_msrpm, HostMemory, HostMemoryError, PermissionMaps};
use axvm_svm::npt::{NestedPageTables, NptError, NptRegion, PageTableMemory};
use axvm_svm::{SvmError, SvmVCpu, VCpuResources};
use spin::Mutex;

use super::irq::VmInterrupts;
use crate::mm::{self, frames};
use crate::{apic, smp, svm, time};

/// Why this host could not do what the core asked.
#[derive(Debug, thiserror::Error)]
pub enum HvError {
    /// The frame allocator has no `pages` free contiguous frames.
    #[error("out of host memory: no {pages} free contiguous 4 KiB frames")]
    OutOfMemory {
        /// How many were asked for.
        pages: usize,
    },
    /// The nested page tables refused a mapping.
    #[error("nested page tables: {0}")]
    Npt(#[from] NptError),
    /// The SVM backend refused.
    #[error("{0}")]
    Svm(#[from] SvmError),
    /// The permission maps could not be set up.
    #[error("{0}")]
    HostMemory(#[from] HostMemoryError),
    /// The VM needs more CPUs than the machine has.
    #[error("base.cpu_num = {vcpus}, but this machine has {cpus} CPU(s) and each vCPU runs on one of its own: give QEMU -smp {vcpus} or more")]
    TooFewCpus {
        /// The vCPUs asked for.
        vcpus: usize,
        /// The CPUs there are.
        cpus: usize,
    },
    /// A pass-through range that covers part of an emulated interrupt controller's page.
    #[error("pass-through {gpa:#x}+{size:#x} overlaps the {device} page at {page:#x}, which this host emulates: pass through exactly that page (host = guest address), or leave it out")]
    PassThroughOverlapsEmulated {
        /// The range's guest-physical start.
        gpa: u64,
        /// Its size.
        size: u64,
        /// The emulated device.
        device: &'static str,
        /// Its page.
        page: u64,
    },
    /// The vCPU's local APIC did not take the interrupt.
    #[error("vCPU {vcpu}'s local APIC dropped vector {vector:#x}: the guest has not software-enabled it (SVR bit 8), or the vector is below 16")]
    InterruptDropped {
        /// The vCPU.
        vcpu: usize,
        /// The vector.
        vector: u8,
    },
}

/// Host memory for the backend: frames from the frame allocator, reached through the
/// identity map.
pub struct Frames;

// SAFETY: `phys_to_virt` gives identity-mapped addresses of RAM the kernel maps for good, and
// the allocations come from the frame allocator, which hands each frame out once.
unsafe impl HostMemory for Frames {
    fn alloc_zeroed_contiguous(&mut self, pages: usize) -> Option<u64> {
        frames::alloc(pages)
    }

    fn phys_to_virt(&self, hpa: u64, len: usize) -> Option<NonNull<u8>> {
        let _ = len;
        NonNull::new(mm::phys_to_virt(hpa))
    }
}

impl PageTableMemory for Frames {
    fn alloc_zeroed_page(&mut self) -> Option<u64> {
        frames::alloc(1)
    }

    fn table(&self, host_phys: u64) -> Option<&[u64; 512]> {
        // SAFETY: page-table frames come from `alloc_zeroed_page`, are 4 KiB aligned RAM the
        // identity map covers, and live as long as the VM (never freed while it runs).
        host_phys
            .is_multiple_of(mm::PAGE_SIZE)
            .then(|| unsafe { &*(mm::phys_to_virt(host_phys) as *const [u64; 512]) })
    }

    fn table_mut(&mut self, host_phys: u64) -> Option<&mut [u64; 512]> {
        // SAFETY: as in `table`; the NPT lock gives one writer at a time.
        host_phys
            .is_multiple_of(mm::PAGE_SIZE)
            .then(|| unsafe { &mut *(mm::phys_to_virt(host_phys) as *mut [u64; 512]) })
    }
}

/// The host of one VM: its nested page tables, its I/O and MSR permission maps, and how
/// many vCPUs it has.
pub struct SvmHal {
    npt: Mutex<NestedPageTables>,
    maps: PermissionMaps,
    vcpu_count: usize,
    irq: Arc<VmInterrupts>,
}

impl SvmHal {
    /// A host for a VM of `vcpu_count` vCPUs, which must not exceed the physical CPUs (vCPU
    /// *i* runs on CPU *i*).
    /// Interrupts go to `irq`'s local APICs.
    pub fn new(vcpu_count: usize, irq: Arc<VmInterrupts>) -> Result<Self, HvError> {
        let cpus = smp::cpu_count();
        if vcpu_count > cpus {
            return Err(HvError::TooFewCpus {
                vcpus: vcpu_count,
                cpus,
            });
        }
        Ok(Self {
            npt: Mutex::new(NestedPageTables::new(&mut Frames)?),
            maps: PermissionMaps::install(&mut Frames, &default_iopm(), &default_msrpm())?,
            vcpu_count,
            irq,
        })
    }

    fn map(&self, gpa: u64, hpa: u64, size: u64, flags: MappingFlags) -> Result<(), HvError> {
        let region = NptRegion {
            gpa,
            hpa,
            size,
            flags,
        };
        Ok(self.npt.lock().map(&mut Frames, &region)?)
    }
}

/// The interrupt controller pages this host emulates (`axvm_pc`'s devices).
const EMULATED_PAGES: [(&str, u64); 2] = [
    ("local APIC", axvm_pc::LAPIC_BASE),
    ("IOAPIC", axvm_pc::IOAPIC_BASE),
];

fn pages(size: u64) -> usize {
    size.div_ceil(mm::PAGE_SIZE) as usize
}

impl AxVMHal for SvmHal {
    type VCpu = SvmVCpu<Frames>;
    type Error = HvError;

    fn has_hardware_support(&self) -> bool {
        svm::usable()
    }

    fn alloc_memory_region(&self, size: u64) -> Result<HostVirtAddr, HvError> {
        let pages = pages(size);
        let phys = frames::alloc(pages).ok_or(HvError::OutOfMemory { pages })?;
        Ok(HostVirtAddr::new(mm::phys_to_virt(phys) as u64))
    }

    fn alloc_memory_region_at(&self, base: HostPhysAddr, size: u64) -> bool {
        frames::alloc_at(base.as_u64(), pages(size))
    }

    fn dealloc_memory_region(&self, hva: HostVirtAddr, size: u64) {
        frames::free(mm::virt_to_phys(hva.as_u64() as *const u8), pages(size));
    }

    fn dealloc_memory_region_at(&self, base: HostPhysAddr, size: u64) {
        frames::free(base.as_u64(), pages(size));
    }

    fn virt_to_phys(&self, vaddr: HostVirtAddr) -> Option<HostPhysAddr> {
        Some(HostPhysAddr::new(mm::virt_to_phys(
            vaddr.as_u64() as *const u8
        )))
    }

    fn phys_to_virt(&self, paddr: HostPhysAddr) -> Option<HostVirtAddr> {
        Some(HostVirtAddr::new(mm::phys_to_virt(paddr.as_u64()) as u64))
    }

    fn map_guest_memory(
        &self,
        gpa: GuestPhysAddr,
        hva: HostVirtAddr,
        size: u64,
        flags: MappingFlags,
    ) -> Result<(), HvError> {
        let hpa = mm::virt_to_phys(hva.as_u64() as *const u8);
        self.map(gpa.as_u64(), hpa, size, flags)
    }

    /// Pass-throughs of the local APIC and IOAPIC pages (the ArceOS hypervisor's x86
    /// configs list them) mean "give the guest that device": the emulated ones serve them, as
    /// KVM's in-kernel ones do under the KVM host, and the page is left unmapped so that
    /// accesses exit. (Mapping them would hand the guest this machine's own APIC.)
    fn map_passthrough(
        &self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: u64,
        flags: MappingFlags,
    ) -> Result<(), HvError> {
        let (gpa, hpa) = (gpa.as_u64(), hpa.as_u64());
        for (device, page) in EMULATED_PAGES {
            let inside = gpa >= page && gpa.saturating_add(size) <= page + mm::PAGE_SIZE;
            let overlaps = gpa < page + mm::PAGE_SIZE && gpa.saturating_add(size) > page;
            if inside && gpa == hpa {
                log::info!("pass-through {gpa:#x}+{size:#x}: served by the emulated {device}");
                return Ok(());
            }
            if overlaps {
                return Err(HvError::PassThroughOverlapsEmulated {
                    gpa,
                    size,
                    device,
                    page,
                });
            }
        }
        self.map(gpa, hpa, size, flags)
    }

    fn create_vcpu(
        &self,
        vcpu_id: usize,
        _phys_cpu_set: Option<usize>,
    ) -> Result<SvmVCpu<Frames>, HvError> {
        let resources = VCpuResources {
            npt: *self.npt.lock(),
            maps: self.maps,
            // ASID 0 is the host's; each vCPU its own, as the backend asks.
            asid: u32::try_from(vcpu_id + 1).map_err(|_| HvError::TooFewCpus {
                vcpus: vcpu_id + 1,
                cpus: self.vcpu_count,
            })?,
        };
        let mut vcpu = SvmVCpu::new(vcpu_id, resources, Frames)?;
        // The runner checks for interrupts with IF clear and enters right after: a kick sent
        // after its check must still make the guest exit (see `irq`).
        vcpu.set_host_interrupts_always_exit(true);
        Ok(vcpu)
    }

    fn kick_vcpu(&self, vcpu_id: usize) {
        if vcpu_id != smp::this_cpu() && vcpu_id < self.vcpu_count {
            apic::send_ipi(vcpu_id, apic::KICK_VECTOR);
        }
    }

    /// A fixed interrupt to the vCPU's local APIC, which wakes or kicks the vCPU.
    fn inject_irq_to_vcpu(&self, vcpu_id: usize, irq: u8) -> Result<(), HvError> {
        if self.irq.inject(vcpu_id, irq) {
            Ok(())
        } else {
            Err(HvError::InterruptDropped {
                vcpu: vcpu_id,
                vector: irq,
            })
        }
    }

    fn current_time_nanos(&self) -> u64 {
        time::now_nanos()
    }

    fn current_vcpu_id(&self) -> Option<usize> {
        Some(smp::this_cpu()).filter(|&cpu| cpu < self.vcpu_count)
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
}
