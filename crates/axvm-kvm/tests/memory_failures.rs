//! Memory allocation failures at VM creation (the troubleshooting guide's "memory allocation
//! failures"): a region the host cannot give memory to, or cannot map, is refused with the
//! region named by its config path, its size and address, the host's reason, and what to
//! change; MapReserved is refused with the fix; MapIdentical falls back to allocated memory
//! and the VM runs.

mod common;

use axvm::memory::RegionOutcome;
use axvm::VmMemMappingType;
use common::guests::EXIT_42;
use common::{boot_raw, parse_config, raw_config_text, require_kvm, Console};
use common::{options, run_bounded};

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::{KvmVm, VmOutcome};

/// The raw test config with a second region `[gpa, size, 0x7, map_type]`.
fn config_with_region(gpa: u64, size: u64, map_type: u64) -> axvm::AxVMConfig {
    let text = raw_config_text(0x10_0000, 0x8000, 0x8000).replace(
        "memory_regions = [[0x0, 0x100000, 0x7, 0]]",
        &format!(
            "memory_regions = [[0x0, 0x100000, 0x7, 0], [{gpa:#x}, {size:#x}, 0x7, {map_type}]]"
        ),
    );
    assert!(
        text.contains(&format!("{gpa:#x}")),
        "the edit did nothing:\n{text}"
    );
    parse_config(&text)
}

/// Creates the VM, which must fail; returns the error's message.
fn refusal(config: axvm::AxVMConfig) -> String {
    match KvmVm::create(config, &common::kernel(EXIT_42), Default::default()) {
        Ok(_) => panic!("the VM was created"),
        Err(err) => err.to_string(),
    }
}

fn assert_names_region(message: &str, size: &str, gpa: &str) {
    for want in ["kernel.memory_regions[1]", size, gpa] {
        assert!(message.contains(want), "{want:?} is not in: {message}");
    }
    assert!(!message.contains("memory_regions[0]"), "{message}");
}

/// Lowers this process's address-space limit to 64 GiB (or its hard limit), so that a
/// region of 256 GiB, which one KVM slot could hold (and which ends below the 40 address
/// bits even a nested host has), cannot be mmapped.
fn limit_address_space() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit structures for this process; only the soft limit is lowered.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(64 << 30);
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &limit), 0);
    }
}

fn region_too_large_to_allocate_is_refused_naming_it() {
    require_kvm();
    // 256 GiB in a process allowed 64 GiB of address space: mmap fails.
    limit_address_space();
    let message = refusal(config_with_region(0x40_0000_0000, 0x40_0000_0000, 0));
    assert_names_region(&message, "0x4000000000 bytes", "0x4000000000");
    assert!(message.contains("mmap"), "the host's reason: {message}");
    assert!(
        message.contains("make the region smaller or free host memory"),
        "the fix: {message}"
    );
}

fn region_too_large_for_a_kvm_slot_is_refused_naming_it() {
    require_kvm();
    // 16 TiB: a KVM memory slot holds at most 2^31 - 1 pages (8 TiB). The plan refuses it
    // before anything is allocated, with KVM's limit and the fix.
    let message = refusal(config_with_region(0x1000_0000_0000, 0x1000_0000_0000, 0));
    assert_names_region(&message, "0x100000000000 bytes", "0x100000000000");
    assert!(
        message.contains("more than one KVM memory slot holds (0x7fffffff000)"),
        "the host's reason: {message}"
    );
    assert!(message.contains("split it"), "the fix: {message}");
}

fn map_reserved_is_refused_with_the_fix() {
    require_kvm();
    let message = refusal(config_with_region(0x1000_0000, 0x1000, 2));
    assert_names_region(&message, "0x1000 bytes", "0x10000000");
    assert!(message.contains("MapReserved"), "{message}");
    assert!(message.contains("use map_type 0 (MapAlloc)"), "{message}");
}

fn map_identical_falls_back_to_allocated_memory_and_runs() {
    require_kvm();
    let mut config = common::raw_config();
    config.memory_regions[0].map_type = VmMemMappingType::MapIdentical;
    let console = Console::default();
    let vm = KvmVm::create(
        config,
        &common::kernel(EXIT_42),
        options(&console, UnclaimedAccessPolicy::Ignore),
    )
    .unwrap_or_else(|err| panic!("cannot create the VM: {err}"));
    let outcomes: Vec<RegionOutcome> = vm
        .vm()
        .memory()
        .regions()
        .iter()
        .map(|r| r.outcome)
        .collect();
    assert_eq!(outcomes, [RegionOutcome::IdenticalFallback]);
    let outcome = run_bounded(vm, &console).expect("the VM runs");
    assert_eq!(outcome, VmOutcome::Exited(42));
    // And plain MapAlloc for comparison.
    assert_eq!(boot_raw(EXIT_42).0, VmOutcome::Exited(42));
}

axvm_test_harness::main!(
    region_too_large_to_allocate_is_refused_naming_it,
    region_too_large_for_a_kvm_slot_is_refused_naming_it,
    map_reserved_is_refused_with_the_fix,
    map_identical_falls_back_to_allocated_memory_and_runs,
);
