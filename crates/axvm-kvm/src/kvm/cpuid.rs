//! The CPUID each vCPU reports: what KVM supports, with the vCPU's own APIC id.

use kvm_bindings::CpuId;

/// CPUID leaf 1 ECX bit 31: "running under a hypervisor".
const HYPERVISOR_BIT: u32 = 1 << 31;

/// `supported` (from `KVM_GET_SUPPORTED_CPUID`) adjusted for vCPU `apic_id`: leaf 1 EBX[31:24]
/// and the x2APIC leaves 0xB/0x1F EDX carry the APIC id, which is how a guest finds out which
/// CPU it runs on; leaf 1 says a hypervisor is present.
pub(crate) fn cpuid_for_vcpu(supported: &CpuId, apic_id: u32) -> CpuId {
    let mut cpuid = supported.clone();
    for entry in cpuid.as_mut_slice() {
        match entry.function {
            1 => {
                entry.ebx = (entry.ebx & 0x00ff_ffff) | (apic_id << 24);
                entry.ecx |= HYPERVISOR_BIT;
            }
            0xb | 0x1f => entry.edx = apic_id,
            _ => {}
        }
    }
    cpuid
}
