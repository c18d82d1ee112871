//! The CPUID a guest sees: a real-mode guest executes CPUID and prints the processor brand
//! string (leaves 0x80000002-0x80000004), which KVM leaves zero and axvm fills: the host
//! CPU's brand string, or "axvm virtual CPU" on a host CPU that has none.

mod common;

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::VmOutcome;
use common::guests::CPUID_BRAND;
use common::{boot, raw_config, require_kvm};

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

axvm_test_harness::main!(guest_sees_the_host_brand_string,);
