//! The CPUID each vCPU reports: what KVM supports, with the vCPU's own APIC id and a
//! processor brand string. Every feature bit is KVM's: a guest sees 1 GiB pages (`pdpe1gb`)
//! exactly when this host's KVM offers them, which `axvm check` reports (ArceOS and NimbOS
//! map memory with them at boot).

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

/// CPUID leaf 1 ECX bit 31: "running under a hypervisor".
const HYPERVISOR_BIT: u32 = 1 << 31;

/// The extended feature leaf.
const EXTENDED_FEATURES_LEAF: u32 = 0x8000_0001;
/// Leaf 0x80000001 EDX bit 26: 1 GiB pages (Linux's `pdpe1gb` flag).
const PDPE1GB: u32 = 1 << 26;

/// The leaf whose EAX is the highest extended leaf.
const EXTENDED_MAX_LEAF: u32 = 0x8000_0000;
/// The three leaves that hold the 48-byte brand string, 16 bytes each (EAX, EBX, ECX, EDX).
const BRAND_LEAVES: [u32; 3] = [0x8000_0002, 0x8000_0003, 0x8000_0004];
/// The brand string's length, with its NUL padding.
pub(crate) const BRAND_STRING_LEN: usize = 48;
/// The brand string of a vCPU on a host CPU that has none.
pub(crate) const AXVM_BRAND_STRING: &str = "axvm virtual CPU";

/// `supported` (from `KVM_GET_SUPPORTED_CPUID`) adjusted for vCPU `apic_id`: leaf 1 EBX[31:24]
/// and the x2APIC leaves 0xB/0x1F EDX carry the APIC id, which is how a guest finds out which
/// CPU it runs on; leaf 1 says a hypervisor is present; the brand string leaves carry
/// [`vcpu_brand_string`].
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
    with_brand_string(cpuid, &vcpu_brand_string())
}

/// Whether `cpuid` offers 1 GiB pages (leaf 0x80000001 EDX bit 26).
pub(crate) fn offers_gib_pages(cpuid: &CpuId) -> bool {
    cpuid
        .as_slice()
        .iter()
        .any(|entry| entry.function == EXTENDED_FEATURES_LEAF && entry.edx & PDPE1GB != 0)
}

/// The brand string vCPUs report: the host CPU's, as QEMU's `-cpu host` and Firecracker
/// do (a guest's `/proc/cpuinfo` then names the real processor rather than "17/01"), or
/// [`AXVM_BRAND_STRING`] when the host CPU has none.
///
/// KVM leaves these leaves zero in what it supports: the brand is the VMM's to choose.
pub(crate) fn vcpu_brand_string() -> [u8; BRAND_STRING_LEN] {
    brand_or_axvms(host_brand_string())
}

/// `host`, unless it is missing or blank: then [`AXVM_BRAND_STRING`], NUL-padded.
fn brand_or_axvms(host: Option<[u8; BRAND_STRING_LEN]>) -> [u8; BRAND_STRING_LEN] {
    host.filter(|brand| brand.iter().any(|&byte| byte != 0 && byte != b' '))
        .unwrap_or_else(|| {
            let mut brand = [0; BRAND_STRING_LEN];
            brand[..AXVM_BRAND_STRING.len()].copy_from_slice(AXVM_BRAND_STRING.as_bytes());
            brand
        })
}

/// The host CPU's brand string, `None` when its CPUID has no brand leaves.
fn host_brand_string() -> Option<[u8; BRAND_STRING_LEN]> {
    use core::arch::x86_64::__cpuid;
    if __cpuid(EXTENDED_MAX_LEAF).eax < BRAND_LEAVES[2] {
        return None;
    }
    let mut brand = [0; BRAND_STRING_LEN];
    for (chunk, leaf) in brand.chunks_exact_mut(16).zip(BRAND_LEAVES) {
        let regs = __cpuid(leaf);
        for (bytes, reg) in chunk
            .chunks_exact_mut(4)
            .zip([regs.eax, regs.ebx, regs.ecx, regs.edx])
        {
            bytes.copy_from_slice(&reg.to_le_bytes());
        }
    }
    Some(brand)
}

/// `cpuid` with `brand` in leaves 0x80000002-0x80000004 (added if KVM did not list them),
/// and leaf 0x80000000 reporting them.
fn with_brand_string(mut cpuid: CpuId, brand: &[u8; BRAND_STRING_LEN]) -> CpuId {
    raise_extended_max_leaf(&mut cpuid);
    for (chunk, leaf) in brand.chunks_exact(16).zip(BRAND_LEAVES) {
        let word =
            |i: usize| u32::from_le_bytes([chunk[i], chunk[i + 1], chunk[i + 2], chunk[i + 3]]);
        let entry = kvm_cpuid_entry2 {
            function: leaf,
            eax: word(0),
            ebx: word(4),
            ecx: word(8),
            edx: word(12),
            ..Default::default()
        };
        set_entry(&mut cpuid, entry);
    }
    cpuid
}

/// Makes leaf 0x80000000 EAX at least the last brand leaf, adding the leaf if missing.
fn raise_extended_max_leaf(cpuid: &mut CpuId) {
    let last = BRAND_LEAVES[2];
    match cpuid
        .as_mut_slice()
        .iter_mut()
        .find(|entry| entry.function == EXTENDED_MAX_LEAF)
    {
        Some(entry) => entry.eax = entry.eax.max(last),
        None => set_entry(
            cpuid,
            kvm_cpuid_entry2 {
                function: EXTENDED_MAX_LEAF,
                eax: last,
                ..Default::default()
            },
        ),
    }
}

/// Replaces the entry for `entry.function` (index 0), or adds it.
fn set_entry(cpuid: &mut CpuId, entry: kvm_cpuid_entry2) {
    let existing = cpuid
        .as_mut_slice()
        .iter_mut()
        .find(|e| e.function == entry.function && e.index == entry.index);
    match existing {
        Some(existing) => *existing = entry,
        None => {
            if let Err(err) = cpuid.push(entry) {
                // KVM's table holds 256 entries and lists far fewer; never seen.
                log::warn!(
                    "CPUID: cannot add leaf {:#x} to the vCPU's table ({err:?}); the guest sees it as zero",
                    entry.function
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(function: u32, eax: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            eax,
            ..Default::default()
        }
    }

    fn entry(cpuid: &CpuId, function: u32) -> kvm_cpuid_entry2 {
        *cpuid
            .as_slice()
            .iter()
            .find(|e| e.function == function)
            .unwrap_or_else(|| panic!("no leaf {function:#x}"))
    }

    /// The brand string as the guest reads it: leaves 0x80000002-4, EAX..EDX, to the NUL.
    fn brand_of(cpuid: &CpuId) -> String {
        let bytes: Vec<u8> = BRAND_LEAVES
            .iter()
            .flat_map(|&function| {
                let e = entry(cpuid, function);
                [e.eax, e.ebx, e.ecx, e.edx]
                    .into_iter()
                    .flat_map(u32::to_le_bytes)
            })
            .take_while(|&byte| byte != 0)
            .collect();
        String::from_utf8(bytes).expect("an ASCII brand string")
    }

    fn expected_brand() -> String {
        let brand = vcpu_brand_string();
        let end = brand
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(BRAND_STRING_LEN);
        String::from_utf8(brand[..end].to_vec()).expect("an ASCII brand string")
    }

    #[test]
    fn zero_brand_leaves_get_the_brand_string() {
        // What KVM_GET_SUPPORTED_CPUID gives on an AMD host: the leaves listed, all zero.
        let supported = CpuId::from_entries(&[
            leaf(0, 0x10),
            leaf(1, 0),
            leaf(EXTENDED_MAX_LEAF, 0x8000_0021),
            leaf(0x8000_0002, 0),
            leaf(0x8000_0003, 0),
            leaf(0x8000_0004, 0),
        ])
        .expect("a small table");
        let cpuid = cpuid_for_vcpu(&supported, 3);
        let brand = brand_of(&cpuid);
        assert!(!brand.trim().is_empty(), "{brand:?}");
        assert_eq!(brand, expected_brand());
        assert_eq!(entry(&cpuid, EXTENDED_MAX_LEAF).eax, 0x8000_0021);
        assert_eq!(entry(&cpuid, 1).ebx >> 24, 3);
        assert_eq!(cpuid.as_slice().len(), 6, "no entry added twice");
    }

    #[test]
    fn missing_brand_leaves_are_added_and_announced() {
        let supported = CpuId::from_entries(&[leaf(0, 0x10), leaf(EXTENDED_MAX_LEAF, 0x8000_0001)])
            .expect("a small table");
        let cpuid = cpuid_for_vcpu(&supported, 0);
        assert_eq!(entry(&cpuid, EXTENDED_MAX_LEAF).eax, 0x8000_0004);
        assert_eq!(brand_of(&cpuid), expected_brand());

        let without_extended = CpuId::from_entries(&[leaf(0, 0x10)]).expect("a small table");
        let cpuid = cpuid_for_vcpu(&without_extended, 0);
        assert_eq!(entry(&cpuid, EXTENDED_MAX_LEAF).eax, 0x8000_0004);
        assert_eq!(brand_of(&cpuid), expected_brand());
    }

    #[test]
    fn vcpus_offer_1_gib_pages_exactly_when_kvm_does() {
        let with_edx = |edx| {
            let features = kvm_cpuid_entry2 {
                function: EXTENDED_FEATURES_LEAF,
                edx,
                ..Default::default()
            };
            CpuId::from_entries(&[leaf(0, 0x10), features]).expect("a small table")
        };
        for (edx, offered) in [(PDPE1GB | 1 << 29, true), (1 << 29, false), (0, false)] {
            let supported = with_edx(edx);
            assert_eq!(offers_gib_pages(&supported), offered, "{edx:#x}");
            let vcpu = cpuid_for_vcpu(&supported, 1);
            assert_eq!(offers_gib_pages(&vcpu), offered, "{edx:#x}");
            assert_eq!(entry(&vcpu, EXTENDED_FEATURES_LEAF).edx, edx, "untouched");
        }
        let no_leaf = CpuId::from_entries(&[leaf(0, 0x10)]).expect("a small table");
        assert!(!offers_gib_pages(&cpuid_for_vcpu(&no_leaf, 0)));
    }

    #[test]
    fn the_brand_fills_the_leaves_in_register_order() {
        let mut brand = [0; BRAND_STRING_LEN];
        let text = b"0123456789abcdefGHIJKLMNOPQRSTUVwxyz";
        brand[..text.len()].copy_from_slice(text);
        let cpuid = with_brand_string(CpuId::new(0).expect("an empty table"), &brand);
        let first = entry(&cpuid, 0x8000_0002);
        assert_eq!(first.eax.to_le_bytes(), *b"0123");
        assert_eq!(first.edx.to_le_bytes(), *b"cdef");
        assert_eq!(entry(&cpuid, 0x8000_0004).eax.to_le_bytes(), *b"wxyz");
        assert_eq!(entry(&cpuid, 0x8000_0004).ebx, 0);
        assert_eq!(brand_of(&cpuid), "0123456789abcdefGHIJKLMNOPQRSTUVwxyz");
    }

    #[test]
    fn a_host_without_a_brand_gives_axvms() {
        let axvm = brand_or_axvms(None);
        assert_eq!(
            &axvm[..AXVM_BRAND_STRING.len()],
            AXVM_BRAND_STRING.as_bytes()
        );
        assert!(axvm[AXVM_BRAND_STRING.len()..].iter().all(|&b| b == 0));
        assert_eq!(brand_or_axvms(Some([b' '; BRAND_STRING_LEN])), axvm);
        assert_eq!(brand_or_axvms(Some([0; BRAND_STRING_LEN])), axvm);
        let mut host = [0; BRAND_STRING_LEN];
        host[..9].copy_from_slice(b"  Host 9k");
        assert_eq!(brand_or_axvms(Some(host)), host);
    }

    #[test]
    fn the_vcpu_brand_is_the_hosts_or_axvms() {
        let brand = expected_brand();
        assert!(!brand.trim().is_empty());
        match host_brand_string() {
            Some(host) if host.iter().any(|&b| b != 0 && b != b' ') => {
                assert_eq!(brand.as_bytes(), &host[..brand.len()]);
            }
            _ => assert_eq!(brand, AXVM_BRAND_STRING),
        }
    }
}
