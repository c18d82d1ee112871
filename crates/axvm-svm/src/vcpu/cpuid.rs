//! The CPUID a vCPU sees: the host processor's, with the changes the KVM host makes that a
//! guest can observe (`crates/axvm-kvm/src/kvm/cpuid.rs`) and the ones a bare-metal host
//! needs because nothing filters the host's answer for it (KVM's supported table does).
//!
//! - leaf 1: EBX bits 31-24 is the vCPU's APIC id; ECX says a hypervisor is present, has no
//!   MONITOR/MWAIT (KVM does not offer it either), and OSXSAVE follows the guest's CR4;
//! - leaves 0xB and 0x1F: EDX is the x2APIC id (the vCPU id);
//! - leaf 7: OSPKE follows the guest's CR4;
//! - SVM is hidden (leaf 0x8000_0001 ECX bit 2, leaf 0x8000_000A zero): the guest cannot
//!   nest;
//! - the hypervisor leaves 0x4000_0000–0x4000_00FF are zero: under the KVM host the guest
//!   sees KVM's paravirtual interface there, which KVM implements; this backend implements
//!   none, and a signature would make a guest use MSRs that do not exist;
//! - the brand string is the host processor's, or "axvm virtual CPU" when it has none.

/// Leaf 1 ECX bits.
const LEAF1_ECX_MONITOR: u32 = 1 << 3;
const LEAF1_ECX_OSXSAVE: u32 = 1 << 27;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 7 ECX bit 4.
const LEAF7_ECX_OSPKE: u32 = 1 << 4;
/// Leaf 0x8000_0001 ECX bit 2.
const EXT_ECX_SVM: u32 = 1 << 2;
const CR4_OSXSAVE: u64 = 1 << 18;
const CR4_PKE: u64 = 1 << 22;
/// The brand string of a vCPU on a host processor without one (the KVM host's too).
pub const AXVM_BRAND_STRING: &[u8] = b"axvm virtual CPU";
const BRAND_LEAVES: core::ops::RangeInclusive<u32> = 0x8000_0002..=0x8000_0004;

/// The answer `[eax, ebx, ecx, edx]` to CPUID `leaf`/`subleaf` for vCPU `apic_id` whose
/// CR4 is `guest_cr4`; `host` answers CPUID on the host processor.
pub fn answer_cpuid(
    leaf: u32,
    subleaf: u32,
    apic_id: u32,
    guest_cr4: u64,
    host: impl Fn(u32, u32) -> [u32; 4],
) -> [u32; 4] {
    if (0x4000_0000..=0x4000_00ff).contains(&leaf) || leaf == crate::cpu::SVM_FEATURES_LEAF {
        return [0; 4];
    }
    let mut regs = host(leaf, subleaf);
    match leaf {
        1 => {
            regs[1] = (regs[1] & 0x00ff_ffff) | (apic_id << 24);
            regs[2] &= !(LEAF1_ECX_MONITOR | LEAF1_ECX_OSXSAVE);
            regs[2] |= LEAF1_ECX_HYPERVISOR;
            if guest_cr4 & CR4_OSXSAVE != 0 {
                regs[2] |= LEAF1_ECX_OSXSAVE;
            }
        }
        7 if subleaf == 0 => {
            regs[2] &= !LEAF7_ECX_OSPKE;
            if guest_cr4 & CR4_PKE != 0 {
                regs[2] |= LEAF7_ECX_OSPKE;
            }
        }
        0xb | 0x1f => regs[3] = apic_id,
        0x8000_0001 => regs[2] &= !EXT_ECX_SVM,
        _ if BRAND_LEAVES.contains(&leaf) && host_brand_is_blank(&host) => {
            regs = axvm_brand_leaf(leaf);
        }
        _ => {}
    }
    regs
}

/// Whether the host processor has no brand string (its leaves are missing or blank).
fn host_brand_is_blank(host: &impl Fn(u32, u32) -> [u32; 4]) -> bool {
    if host(0x8000_0000, 0)[0] < *BRAND_LEAVES.end() {
        return true;
    }
    BRAND_LEAVES.flat_map(|leaf| host(leaf, 0)).all(|word| {
        word.to_le_bytes()
            .iter()
            .all(|&byte| byte == 0 || byte == b' ')
    })
}

/// The registers of brand leaf `leaf` spelling [`AXVM_BRAND_STRING`], NUL-padded.
fn axvm_brand_leaf(leaf: u32) -> [u32; 4] {
    let mut brand = [0u8; 48];
    brand[..AXVM_BRAND_STRING.len()].copy_from_slice(AXVM_BRAND_STRING);
    let start = (leaf - BRAND_LEAVES.start()) as usize * 16;
    let mut regs = [0u32; 4];
    for (i, reg) in regs.iter_mut().enumerate() {
        let at = start + 4 * i;
        *reg = u32::from_le_bytes([brand[at], brand[at + 1], brand[at + 2], brand[at + 3]]);
    }
    regs
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host processor like QEMU's EPYC: SVM, MONITOR, a brand string, APIC id 0.
    fn epyc(leaf: u32, subleaf: u32) -> [u32; 4] {
        match (leaf, subleaf) {
            (0x8000_0000, _) => [0x8000_001f, 0, 0, 0],
            (1, _) => [0x0080_0f12, 0x0001_0800, 0xfed8_320b, 0x078b_fbff],
            (7, 0) => [0, 0x219c_01ab, LEAF7_ECX_OSPKE, 0],
            (0xb, n) => [1, 1, 0x100 | n, 0],
            (0x8000_0001, _) => [0, 0, 0x0000_0ff7, 0x2fd3_fbff],
            (0x8000_000a, _) => [1, 16, 0, 0x9],
            (0x8000_0002, _) => [
                u32::from_le_bytes(*b"AMD "),
                u32::from_le_bytes(*b"EPYC"),
                0,
                0,
            ],
            (0x8000_0003 | 0x8000_0004, _) => [0; 4],
            (0x4000_0000, _) => [0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d],
            _ => [leaf, subleaf, 0, 0],
        }
    }

    #[test]
    fn leaf_1_carries_the_apic_id_and_the_hypervisor_bit_and_no_monitor() {
        let [eax, ebx, ecx, edx] = answer_cpuid(1, 0, 3, 0, epyc);
        assert_eq!(eax, 0x0080_0f12, "family/model untouched");
        assert_eq!(
            ebx, 0x0301_0800,
            "APIC id in EBX[31:24], the rest the host's"
        );
        assert_ne!(ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_eq!(ecx & LEAF1_ECX_MONITOR, 0);
        assert_eq!(ecx & LEAF1_ECX_OSXSAVE, 0, "guest CR4.OSXSAVE is clear");
        assert_eq!(edx, 0x078b_fbff);
        let [_, _, ecx, _] = answer_cpuid(1, 0, 3, CR4_OSXSAVE, epyc);
        assert_ne!(ecx & LEAF1_ECX_OSXSAVE, 0, "follows the guest's CR4");
    }

    #[test]
    fn the_x2apic_leaves_carry_the_vcpu_id_in_every_subleaf() {
        for subleaf in 0..3 {
            let regs = answer_cpuid(0xb, subleaf, 5, 0, epyc);
            assert_eq!(regs[3], 5);
            assert_eq!(regs[2], 0x100 | subleaf, "the level info stays the host's");
            assert_eq!(answer_cpuid(0x1f, subleaf, 5, 0, epyc)[3], 5);
        }
    }

    #[test]
    fn svm_and_the_hypervisor_leaves_are_hidden() {
        let [_, _, ecx, edx] = answer_cpuid(0x8000_0001, 0, 0, 0, epyc);
        assert_eq!(ecx, 0x0000_0ff7 & !EXT_ECX_SVM);
        assert_eq!(edx, 0x2fd3_fbff);
        assert_eq!(answer_cpuid(0x8000_000a, 0, 0, 0, epyc), [0; 4]);
        assert_eq!(answer_cpuid(0x4000_0000, 0, 0, 0, epyc), [0; 4]);
        assert_eq!(answer_cpuid(0x4000_0001, 0, 0, 0, epyc), [0; 4]);
    }

    #[test]
    fn ospke_follows_the_guests_cr4() {
        assert_eq!(answer_cpuid(7, 0, 0, 0, epyc)[2] & LEAF7_ECX_OSPKE, 0);
        assert_ne!(answer_cpuid(7, 0, 0, CR4_PKE, epyc)[2] & LEAF7_ECX_OSPKE, 0);
        assert_eq!(answer_cpuid(7, 0, 0, 0, epyc)[1], 0x219c_01ab);
    }

    #[test]
    fn the_brand_is_the_hosts_or_axvms() {
        assert_eq!(
            answer_cpuid(0x8000_0002, 0, 0, 0, epyc)[1].to_le_bytes(),
            *b"EPYC"
        );
        let blank = |leaf: u32, subleaf: u32| match leaf {
            0x8000_0000 => [0x8000_0001, 0, 0, 0],
            _ => epyc(leaf, subleaf),
        };
        let words: alloc::vec::Vec<u8> = (0x8000_0002..=0x8000_0004)
            .flat_map(|leaf| answer_cpuid(leaf, 0, 0, 0, blank))
            .flat_map(u32::to_le_bytes)
            .collect();
        assert_eq!(&words[..AXVM_BRAND_STRING.len()], AXVM_BRAND_STRING);
        assert!(words[AXVM_BRAND_STRING.len()..].iter().all(|&b| b == 0));
    }

    #[test]
    fn other_leaves_are_the_hosts() {
        assert_eq!(answer_cpuid(0xd, 1, 7, 0, epyc), [0xd, 1, 0, 0]);
    }
}
