//! The CPUID a guest sees: a real-mode guest executes CPUID and prints the processor brand
//! string (leaves 0x80000002-0x80000004), which KVM leaves zero and axvm fills: the host
//! CPU's brand string, or "axvm virtual CPU" on a host CPU that has none. Another exits with
//! its 1 GiB pages bit (`pdpe1gb`), which must be what this host's KVM offers.

mod common;

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::VmOutcome;
use common::guests::CPUID_BRAND;
use common::{boot, raw_config, require_kvm};
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::Kvm;

/// Exits with CPUID leaf 0x80000001 EDX bit 26, 1 GiB pages:
/// ```text
/// mov eax, 0x80000001
/// cpuid
/// shr edx, 26
/// and dl, 1
/// mov al, dl
/// out 0xf4, al
/// jmp $
/// ```
const CPUID_GIB_PAGES: &[u8] = &[
    0x66, 0xb8, 0x01, 0x00, 0x00, 0x80, 0x0f, 0xa2, 0x66, 0xc1, 0xea, 0x1a, 0x80, 0xe2, 0x01, 0x88,
    0xd0, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// The brand string this process's CPU reports, to its NUL; `None` if it has none.
fn host_brand() -> Option<String> {
    use std::arch::x86_64::__cpuid;
    if __cpuid(0x8000_0000).eax < 0x8000_0004 {
        return None;
    }
    let bytes: Vec<u8> = (0x8000_0002..=0x8000_0004)
        .flat_map(|leaf| {
            let r = __cpuid(leaf);
            [r.eax, r.ebx, r.ecx, r.edx]
                .into_iter()
                .flat_map(u32::to_le_bytes)
        })
        .take_while(|&byte| byte != 0)
        .collect();
    let brand = String::from_utf8_lossy(&bytes).into_owned();
    (!brand.trim().is_empty()).then_some(brand)
}

fn guest_sees_the_host_brand_string() {
    require_kvm();
    let (result, console) = boot(raw_config(), CPUID_BRAND, UnclaimedAccessPolicy::Error);
    let outcome = result.unwrap_or_else(|err| panic!("{err}; console {console:?}"));
    assert_eq!(outcome, VmOutcome::Exited(0), "console {console:?}");
    let printed = console
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("the guest did not finish its line: {console:?}"));
    assert!(!printed.trim().is_empty(), "an empty brand string");
    let want = host_brand().unwrap_or_else(|| "axvm virtual CPU".to_string());
    assert_eq!(printed, want);
}

/// Whether KVM here offers guests 1 GiB pages, asked of KVM directly.
fn kvm_offers_gib_pages() -> bool {
    let kvm = Kvm::new().expect("/dev/kvm");
    let supported = kvm
        .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
        .expect("KVM_GET_SUPPORTED_CPUID");
    supported
        .as_slice()
        .iter()
        .any(|entry| entry.function == 0x8000_0001 && entry.edx & 1 << 26 != 0)
}

fn guest_sees_1_gib_pages_exactly_when_kvm_offers_them() {
    require_kvm();
    let (result, console) = boot(raw_config(), CPUID_GIB_PAGES, UnclaimedAccessPolicy::Error);
    let outcome = result.unwrap_or_else(|err| panic!("{err}; console {console:?}"));
    let want = u8::from(kvm_offers_gib_pages());
    assert_eq!(outcome, VmOutcome::Exited(want), "pdpe1gb as KVM offers it");
}

axvm_test_harness::main!(
    guest_sees_the_host_brand_string,
    guest_sees_1_gib_pages_exactly_when_kvm_offers_them,
);
