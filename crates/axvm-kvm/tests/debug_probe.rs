//! `DebugSupport::probe` finds the guest-debug stops this host's KVM really delivers: all
//! three on VT-x/AMD-V; on kvm_pvm an execute breakpoint only (its emulator, which runs the
//! probe's real-mode code, delivers `int3` to the guest's own vector and checks no data
//! breakpoints); none in the kvm-amd harness's L1 under QEMU 7.2's TCG (see `host_model`).

use std::path::Path;

use axvm_kvm::DebugSupport;
use axvm_test_harness::require_kvm;

/// What this host delivers, known without axvm: kvm_pvm by its module; the kvm-amd
/// harness's L1 by `KVM_AMD_L0` ("qemu-tcg 7.2.22"), where TCG delivers an L2 `int3`
/// without checking KVM's `#BP` intercept and, before QEMU 9.1, arms no DR7 that VMRUN
/// loads; anything else is hardware virtualization, which delivers all.
fn host_model() -> DebugSupport {
    if Path::new("/sys/module/kvm_pvm").exists() {
        return DebugSupport {
            int3_stops: false,
            execute_breakpoints: true,
            write_watchpoints: false,
        };
    }
    let l0 = std::env::var("KVM_AMD_L0").unwrap_or_default();
    if let Some(version) = l0.strip_prefix("qemu-tcg ") {
        let mut numbers = version.split('.').map(|n| n.parse::<u32>().unwrap_or(0));
        let major_minor = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
        let debug_registers = major_minor >= (9, 1);
        return DebugSupport {
            int3_stops: false,
            execute_breakpoints: debug_registers,
            write_watchpoints: debug_registers,
        };
    }
    DebugSupport {
        int3_stops: true,
        execute_breakpoints: true,
        write_watchpoints: true,
    }
}

fn the_probe_finds_the_stops_this_host_delivers() {
    require_kvm();
    let found = DebugSupport::probe().expect("the probe VM runs");
    assert_eq!(
        found,
        host_model(),
        "KVM_AMD_L0={:?}",
        std::env::var("KVM_AMD_L0")
    );
}

axvm_test_harness::main!(the_probe_finds_the_stops_this_host_delivers);
