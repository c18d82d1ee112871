//! Guest memory: how each mapping type obtains and maps its host memory (MapAlloc,
//! MapIdentical with and without host support, MapReserved), and that everything obtained
//! is given back on failure and on drop. The accessors are in `guest_access.rs`.

mod common;

use axvm::device::UnclaimedAccessPolicy;
use axvm::memory::RegionOutcome;
use axvm::{AxVM, AxVMError, MappingFlags, VmMemMappingType};
use common::configs::{config_with_regions, device_set, gpa, new_vm, ram, region, rwx};
use common::{MapCall, TestHal};

use VmMemMappingType::{MapAlloc, MapIdentical, MapReserved};

fn try_new(regions: Vec<axvm::VmMemConfig>, hal: &TestHal) -> Result<(), AxVMError> {
    let config = config_with_regions(1, regions);
    AxVM::new(
        config,
        hal.clone(),
        device_set(UnclaimedAccessPolicy::Error, vec![]),
    )
    .map(drop)
}

fn host_bytes(hva: u64, len: usize) -> Vec<u8> {
    // SAFETY: the caller passes memory the test host allocated and still holds.
    unsafe { std::slice::from_raw_parts(hva as *const u8, len) }.to_vec()
}

#[test]
fn map_alloc_regions_are_allocated_and_mapped_with_their_flags() {
    let rom = MappingFlags::READ | MappingFlags::EXECUTE;
    let regions = vec![ram(0, 0x10_0000), region(0x10_0000, 0x2000, rom, MapAlloc)];
    let hal = TestHal::new();
    let vm = new_vm(
        config_with_regions(1, regions),
        &hal,
        device_set(Default::default(), vec![]),
    );

    assert_eq!(hal.state().alloc_calls, [0x10_0000, 0x2000]);
    let guest = vm.memory().regions();
    let expected = [
        MapCall {
            gpa: 0,
            host: guest[0].hva.as_u64(),
            size: 0x10_0000,
            flags: rwx(),
        },
        MapCall {
            gpa: 0x10_0000,
            host: guest[1].hva.as_u64(),
            size: 0x2000,
            flags: rom,
        },
    ];
    assert_eq!(hal.maps(), expected);
    assert!(guest.iter().all(|r| r.outcome == RegionOutcome::Allocated));
    assert!(guest.iter().all(|r| r.hva.as_u64() % 0x1000 == 0));

    drop(vm);
    let state = hal.state();
    assert_eq!(state.deallocs.len(), 2);
    assert!(state.bad_frees.is_empty(), "{:?}", state.bad_frees);
    drop(state);
    assert_eq!(
        hal.live_allocations(),
        0,
        "dropping the VM gives its RAM back"
    );
}

#[test]
fn map_identical_uses_the_host_memory_at_the_same_physical_address() {
    let hal = TestHal::new().configure(|s| s.alloc_at_succeeds = true);
    let regions = vec![region(0x20_0000, 0x4000, rwx(), MapIdentical)];
    let vm = new_vm(
        config_with_regions(1, regions),
        &hal,
        device_set(Default::default(), vec![]),
    );

    let region = vm.memory().regions()[0];
    assert_eq!(region.outcome, RegionOutcome::Identical);
    assert_eq!(hal.state().alloc_at_calls, [(0x20_0000, 0x4000)]);
    assert!(hal.state().alloc_calls.is_empty(), "no fallback allocation");
    let maps = hal.maps();
    assert_eq!(maps.len(), 1);
    assert_eq!(
        maps[0].host,
        region.hva.as_u64(),
        "mapped where phys_to_virt said"
    );

    drop(vm);
    assert_eq!(hal.state().dealloc_ats, [(0x20_0000, 0x4000)]);
    assert!(hal.state().deallocs.is_empty());
    assert_eq!(hal.live_allocations(), 0);
}

#[test]
fn map_identical_falls_back_with_one_allocation_and_one_mapping_per_region() {
    let hal = TestHal::new(); // alloc_memory_region_at answers false
    let regions = vec![
        region(0, 0x10_0000, rwx(), MapIdentical),
        region(0x20_0000, 0x1000, rwx(), MapIdentical),
    ];
    let vm = new_vm(
        config_with_regions(1, regions),
        &hal,
        device_set(Default::default(), vec![]),
    );

    let state = hal.state();
    assert_eq!(state.alloc_at_calls, [(0, 0x10_0000), (0x20_0000, 0x1000)]);
    assert_eq!(
        state.alloc_calls,
        [0x10_0000, 0x1000],
        "exactly one allocation each"
    );
    let mapped: Vec<(u64, u64)> = state.maps.iter().map(|m| (m.gpa, m.size)).collect();
    assert_eq!(
        mapped,
        [(0, 0x10_0000), (0x20_0000, 0x1000)],
        "exactly one mapping each"
    );
    drop(state);
    let regions = vm.memory().regions();
    assert!(regions
        .iter()
        .all(|r| r.outcome == RegionOutcome::IdenticalFallback));

    drop(vm);
    assert_eq!(hal.state().deallocs.len(), 2);
    assert!(hal.state().dealloc_ats.is_empty());
    assert_eq!(hal.live_allocations(), 0);
}

#[test]
fn map_identical_memory_the_host_cannot_reach_is_an_error_and_is_given_back() {
    let hal = TestHal::new().configure(|s| {
        s.alloc_at_succeeds = true;
        s.identical_unreachable = true;
    });
    let err = try_new(vec![region(0x20_0000, 0x4000, rwx(), MapIdentical)], &hal).unwrap_err();

    assert!(
        matches!(
            err,
            AxVMError::Host {
                operation: "reach identical memory",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("kernel.memory_regions[0]"),
        "{err}"
    );
    assert_eq!(hal.state().dealloc_ats, [(0x20_0000, 0x4000)]);
    assert_eq!(hal.live_allocations(), 0);
}

#[test]
fn map_reserved_maps_the_reserved_memory_in_place() {
    let hal = TestHal::new();
    let hva = hal.reserve(0x4000_0000, 0x2000);
    let regions = vec![
        ram(0, 0x10_0000),
        region(0x4000_0000, 0x2000, rwx(), MapReserved),
    ];
    let vm = new_vm(
        config_with_regions(1, regions),
        &hal,
        device_set(Default::default(), vec![]),
    );

    assert_eq!(vm.memory().regions()[1].outcome, RegionOutcome::Reserved);
    assert_eq!(
        hal.maps()[1],
        MapCall {
            gpa: 0x4000_0000,
            host: hva,
            size: 0x2000,
            flags: rwx()
        }
    );
    assert_eq!(
        hal.state().alloc_calls,
        [0x10_0000],
        "reserved memory is not allocated"
    );

    vm.write_to_guest_of(gpa(0x4000_1ff8), &0x0123_4567_89ab_cdefu64)
        .unwrap();
    assert_eq!(host_bytes(hva + 0x1ff8, 2), [0xef, 0xcd]);
    drop(vm);
    assert_eq!(
        hal.state().deallocs.len(),
        1,
        "reserved memory is not freed by axvm"
    );
    assert_eq!(
        hal.live_allocations(),
        1,
        "the reservation is still the host's"
    );
}

#[test]
fn map_reserved_without_phys_to_virt_is_a_clear_error() {
    let hal = TestHal::new();
    let regions = vec![
        ram(0, 0x10_0000),
        region(0x4000_0000, 0x2000, rwx(), MapReserved),
    ];
    let err = try_new(regions, &hal).unwrap_err();

    assert!(
        matches!(
            err,
            AxVMError::Host {
                operation: "map reserved memory",
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("kernel.memory_regions[1]"), "{message}");
    assert!(
        message.contains("MapReserved") && message.contains("0x40000000"),
        "{message}"
    );
    assert_eq!(hal.state().deallocs.len(), 1, "region 0 was given back");
    assert_eq!(hal.live_allocations(), 0);
}

#[test]
fn a_failing_map_gives_back_the_regions_already_obtained() {
    let hal = TestHal::new().configure(|s| s.fail_map_call = Some(2));
    let regions = vec![
        ram(0, 0x1000),
        ram(0x1000, 0x1000),
        ram(0x2000, 0x1000),
        ram(0x3000, 0x1000),
    ];
    let err = try_new(regions, &hal).unwrap_err();

    assert!(
        matches!(
            err,
            AxVMError::Host {
                operation: "map guest memory",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("kernel.memory_regions[2]"),
        "{err}"
    );
    let cause = err
        .host_cause()
        .and_then(|c| c.downcast_ref::<common::TestError>());
    assert_eq!(
        cause,
        Some(&common::TestError("no more memory slots".into()))
    );
    let state = hal.state();
    assert_eq!(state.alloc_calls.len(), 3, "region 3 was never asked for");
    assert_eq!(
        state.deallocs.len(),
        3,
        "regions 0, 1 and the failed 2 are freed"
    );
    assert!(state.bad_frees.is_empty(), "{:?}", state.bad_frees);
    drop(state);
    assert_eq!(hal.live_allocations(), 0);
}

#[test]
fn a_failing_vcpu_creation_gives_back_the_memory() {
    let hal = TestHal::new().configure(|s| s.fail_create_vcpu = Some(1));
    let config = config_with_regions(2, vec![ram(0, 0x10_0000)]);
    let err = AxVM::new(config, hal.clone(), device_set(Default::default(), vec![])).map(drop);

    assert!(
        matches!(err, Err(AxVMError::VCpu { vcpu: 1, .. })),
        "{err:?}"
    );
    assert_eq!(hal.live_allocations(), 0);
}
