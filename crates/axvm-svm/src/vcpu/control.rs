//! Setting up a vCPU's VMCB control area from the VM's resources.

use super::{SvmError, VCpuResources};
use crate::memory::{HostMemory, HostMemoryError};
use crate::vmcb::{int_ctl, intercept, nested_ctl, Vmcb};

pub(super) fn check_resources(vcpu: usize, resources: &VCpuResources) -> Result<(), SvmError> {
    let bad = |what, value, fix| {
        Err(SvmError::BadResource {
            vcpu,
            what,
            value,
            fix,
        })
    };
    if resources.asid == 0 {
        return bad("ASID", 0, "ASID 0 is the host's; give guests 1 or more");
    }
    let maps = &resources.maps;
    if maps.iopm_pa % 0x1000 != 0 {
        return bad("IOPM address", maps.iopm_pa, "it must be 4 KiB-aligned");
    }
    if maps.msrpm_pa % 0x1000 != 0 {
        return bad("MSRPM address", maps.msrpm_pa, "it must be 4 KiB-aligned");
    }
    Ok(())
}

pub(super) fn alloc_page(
    memory: &mut impl HostMemory,
    what: &'static str,
) -> Result<u64, HostMemoryError> {
    let hpa = memory
        .alloc_zeroed_page()
        .ok_or(HostMemoryError::OutOfMemory { what, pages: 1 })?;
    if hpa % 0x1000 != 0 {
        return Err(HostMemoryError::Unreachable { what, hpa });
    }
    Ok(hpa)
}

/// The intercepts and controls every entry uses.
pub(super) fn init_control_area(vmcb: &mut Vmcb, resources: &VCpuResources) {
    let control = &mut vmcb.control;
    control.intercept_misc1 = intercept::INTR
        | intercept::NMI
        | intercept::CPUID
        | intercept::HLT
        | intercept::INVLPGA
        | intercept::IOIO_PROT
        | intercept::MSR_PROT
        | intercept::SHUTDOWN;
    control.intercept_misc2 = intercept::VMRUN
        | intercept::VMMCALL
        | intercept::VMLOAD
        | intercept::VMSAVE
        | intercept::STGI
        | intercept::CLGI
        | intercept::SKINIT;
    control.intercept_exceptions = 0;
    control.iopm_base_pa = resources.maps.iopm_pa;
    control.msrpm_base_pa = resources.maps.msrpm_pa;
    control.guest_asid = resources.asid;
    control.int_ctl = int_ctl::V_INTR_MASKING;
    control.nested_ctl = nested_ctl::NP_ENABLE;
    control.nested_cr3 = resources.npt.root();
}
