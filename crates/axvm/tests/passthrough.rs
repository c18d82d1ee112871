//! Pass-through devices: `merge_pass_through` rounds ranges to pages, sorts and merges
//! them while keeping each page's host address, and refuses what no mapping can do;
//! `AxVM::new` maps each merged range once, and names the device when the host refuses.

mod common;

use axvm::memory::{merge_pass_through, PassThroughRange};
use axvm::{AxVM, AxVMError, ConfigError, MappingFlags};
use common::configs::{config, device_set, new_vm, passthrough};
use common::{MapCall, TestHal};

/// (gpa, hpa, size) of each merged range.
fn spans(ranges: &[PassThroughRange]) -> Vec<(u64, u64, u64)> {
    ranges
        .iter()
        .map(|r| (r.gpa.as_u64(), r.hpa.as_u64(), r.size))
        .collect()
}

fn device_flags() -> MappingFlags {
    MappingFlags::READ | MappingFlags::WRITE | MappingFlags::DEVICE
}

#[test]
fn ranges_are_rounded_out_to_whole_pages() {
    let merged = merge_pass_through(&[passthrough("uart", 0x1_0010, 0x1_0010, 0x8)]).unwrap();
    assert_eq!(spans(&merged), [(0x1_0000, 0x1_0000, 0x1000)]);

    let merged = merge_pass_through(&[passthrough("bar", 0x2_0ff0, 0x2_0ff0, 0x20)]).unwrap();
    assert_eq!(
        spans(&merged),
        [(0x2_0000, 0x2_0000, 0x2000)],
        "straddles a page boundary"
    );
}

#[test]
fn ranges_are_sorted_and_overlapping_or_adjacent_ones_merged() {
    let devices = [
        passthrough("hpet", 0xfed0_0000, 0xfed0_0000, 0x400),
        passthrough("lapic", 0xfee0_0000, 0xfee0_0000, 0x1000),
        passthrough("ioapic", 0xfec0_0000, 0xfec0_0000, 0x1000),
        passthrough("ioapic-2", 0xfec0_0800, 0xfec0_0800, 0x1000), // overlaps ioapic
        passthrough("ioapic-3", 0xfec0_2000, 0xfec0_2000, 0x1000), // adjacent to ioapic-2
    ];
    let merged = merge_pass_through(&devices).unwrap();
    assert_eq!(
        spans(&merged),
        [
            (0xfec0_0000, 0xfec0_0000, 0x3000),
            (0xfed0_0000, 0xfed0_0000, 0x1000),
            (0xfee0_0000, 0xfee0_0000, 0x1000),
        ]
    );
    assert_eq!(merged[0].names, "ioapic, ioapic-2, ioapic-3");
    assert_eq!(merged[1].names, "hpet");
}

#[test]
fn merging_keeps_the_guest_to_host_delta() {
    let devices = [
        passthrough("b", 0x8_1000, 0x4_0001_1000, 0x1000),
        passthrough("a", 0x8_0010, 0x4_0001_0010, 0x10),
        passthrough("c", 0x10_0000, 0x2000, 0x1000),
    ];
    let merged = merge_pass_through(&devices).unwrap();
    assert_eq!(
        spans(&merged),
        [
            (0x8_0000, 0x4_0001_0000, 0x2000),
            (0x10_0000, 0x2000, 0x1000)
        ],
        "a GPA above its HPA works too"
    );
}

#[test]
fn overlapping_ranges_with_different_host_addresses_are_refused() {
    let devices = [
        passthrough("gic", 0x800_0000, 0x800_0000, 0x2000),
        passthrough("gic-alias", 0x800_1000, 0x900_1000, 0x1000),
    ];
    let err = merge_pass_through(&devices).unwrap_err();
    assert_eq!(err.field(), Some("devices.passthrough_devices"));
    let message = err.to_string();
    assert!(
        message.contains("gic") && message.contains("gic-alias"),
        "{message}"
    );

    // Two devices in the same page cannot go to different host pages either.
    let same_page = [
        passthrough("x", 0x1000, 0x1000, 0x10),
        passthrough("y", 0x1800, 0x5800, 0x10),
    ];
    assert!(merge_pass_through(&same_page).is_err());
}

#[test]
fn adjacent_ranges_with_different_host_addresses_stay_separate() {
    // Two BARs next to each other in the guest, far apart on the host: each page still
    // has one host page, so this is fine, and must not be merged into one range.
    let devices = [
        passthrough("bar0", 0xc000_0000, 0x3_0000_0000, 0x1000),
        passthrough("bar1", 0xc000_1000, 0x5_0000_0000, 0x1000),
    ];
    let merged = merge_pass_through(&devices).unwrap();
    assert_eq!(
        spans(&merged),
        [
            (0xc000_0000, 0x3_0000_0000, 0x1000),
            (0xc000_1000, 0x5_0000_0000, 0x1000)
        ]
    );
}

#[test]
fn different_offsets_within_a_page_are_refused_with_the_device_named() {
    let devices = [
        passthrough("ok", 0x1000, 0x1000, 0x10),
        passthrough("skewed", 0x2010, 0x3020, 0x10),
    ];
    let err = merge_pass_through(&devices).unwrap_err();
    assert_eq!(err.field(), Some("devices.passthrough_devices[1] (skewed)"));
    assert!(matches!(err, ConfigError::Invalid { .. }));
}

#[test]
fn vm_creation_maps_each_merged_range_once_with_its_host_address() {
    let mut config = config(1);
    config.pass_through_devices = vec![
        passthrough("lapic", 0xfee0_0000, 0xfee0_0000, 0x1000),
        passthrough("ioapic", 0xfec0_0000, 0xfec0_0000, 0x1000),
        passthrough("ioapic-hi", 0xfec0_0400, 0xfec0_0400, 0x100),
        passthrough("fb", 0xd000_0000, 0x1_8000_0000, 0x3000),
    ];
    let hal = TestHal::new();
    let _vm = new_vm(config, &hal, device_set(Default::default(), vec![]));

    let call = |gpa, host, size| MapCall {
        gpa,
        host,
        size,
        flags: device_flags(),
    };
    assert_eq!(
        hal.passthrough_maps(),
        [
            call(0xd000_0000, 0x1_8000_0000, 0x3000),
            call(0xfec0_0000, 0xfec0_0000, 0x1000),
            call(0xfee0_0000, 0xfee0_0000, 0x1000),
        ]
    );
    assert_eq!(hal.maps().len(), 1, "RAM is mapped separately");
}

#[test]
fn a_host_that_refuses_gets_the_device_named_and_memory_back() {
    let mut config = config(1);
    config.pass_through_devices = vec![passthrough("HPET", 0xfed0_0000, 0xfed0_0000, 0x1000)];
    let hal = TestHal::new()
        .configure(|s| s.refuse_passthrough = Some("KVM cannot map host-physical memory".into()));
    let result = AxVM::new(config, hal.clone(), device_set(Default::default(), vec![]));

    let err = result.map(drop).unwrap_err();
    assert!(
        matches!(
            err,
            AxVMError::Host {
                operation: "map a pass-through device",
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("HPET") && message.contains("0xfed00000"),
        "{message}"
    );
    assert!(
        message.contains("KVM cannot map host-physical memory"),
        "{message}"
    );
    assert_eq!(hal.live_allocations(), 0, "guest RAM is given back");
    assert!(hal.state().created_vcpus.is_empty());
}
