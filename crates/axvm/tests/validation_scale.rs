//! Validation of large configs (issue 10, items 9 and 10): 100 000 memory regions and tens
//! of thousands of devices are checked correctly (overlaps sorted out, not compared pair by
//! pair; the speed is measured by `cargo bench -p axvm --bench validation`), overlaps are
//! still found wherever they sit in sorted order and reported against the same region as
//! before, counts beyond the documented caps are refused, and a pass-through range that
//! wraps once rounded to pages is refused by validation and by the merge alike.

mod common;

use axvm::config::{MAX_DEVICES, MAX_MEMORY_REGIONS};
use axvm::memory::merge_pass_through;
use axvm::{AxVMConfig, EmulatedDeviceType};
use common::configs::{config, config_with_regions, emu, passthrough, ram};

const PAGE: u64 = 0x1000;

/// (field, message) of every problem.
fn problems(config: &AxVMConfig) -> Vec<(String, String)> {
    config
        .problems()
        .into_iter()
        .map(|p| (p.field().unwrap().to_string(), p.to_string()))
        .collect()
}

/// `count` one-page regions that tile `[0, count pages)` with no gap, listed in a scrambled
/// order (region `i` is page `i * 7919 mod count`), so sorted order is not index order.
fn scrambled_pages(count: u64) -> Vec<u64> {
    assert_ne!(count % 7919, 0, "7919 is prime: the order is a permutation");
    (0..count).map(|i| (i * 7919) % count).collect()
}

/// The index whose page is `page` in [`scrambled_pages`].
fn index_of_page(pages: &[u64], page: u64) -> usize {
    pages.iter().position(|&p| p == page).unwrap()
}

#[test]
fn a_hundred_thousand_adjacent_regions_validate() {
    let pages = scrambled_pages(100_000);
    let regions = pages.iter().map(|&p| ram(p * PAGE, PAGE)).collect();
    let config = config_with_regions(1, regions);
    assert_eq!(problems(&config), []);
    assert_eq!(config.validate(), Ok(()));
}

#[test]
fn overlaps_at_both_ends_of_sorted_order_are_found_among_a_hundred_thousand() {
    let count = 100_000;
    let pages = scrambled_pages(count);
    let mut regions: Vec<_> = pages.iter().map(|&p| ram(p * PAGE, PAGE)).collect();
    // A duplicate of the lowest region and a region over the highest one and past it.
    regions.push(ram(0, PAGE));
    regions.push(ram((count - 1) * PAGE, 2 * PAGE));
    let config = config_with_regions(1, regions);

    let lowest = index_of_page(&pages, 0);
    let highest = index_of_page(&pages, count - 1);
    let found = problems(&config);
    let fields: Vec<_> = found.iter().map(|(field, _)| field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "kernel.memory_regions[100000]",
            "kernel.memory_regions[100001]"
        ]
    );
    assert!(
        found[0].1.contains(&format!(
            "overlaps kernel.memory_regions[{lowest}] (0x0..0x1000)"
        )),
        "{found:?}"
    );
    assert!(
        found[1].1.contains(&format!(
            "0x1869f000..0x186a1000 overlaps kernel.memory_regions[{highest}] (0x1869f000..0x186a0000)"
        )),
        "{found:?}"
    );
}

#[test]
fn each_overlap_names_the_lowest_indexed_earlier_region() {
    let config = config_with_regions(
        1,
        vec![
            ram(0x10_0000, 0x10_0000), // [0]
            ram(0, 0x100_0000),        // [1] covers [0]
            ram(0x18_0000, PAGE),      // [2] inside [0] and [1]: named against [0]
            ram(0x80_0000, PAGE),      // [3] inside [1] only
            ram(0x200_0000, PAGE),     // [4] alone
            ram(0x200_0000, PAGE),     // [5] duplicate of [4]
        ],
    );
    let found = problems(&config);
    let pairs: Vec<_> = found
        .iter()
        .map(|(field, message)| {
            let other = message.split("overlaps ").nth(1).unwrap();
            (field.as_str(), other.split(' ').next().unwrap())
        })
        .collect();
    assert_eq!(
        pairs,
        [
            ("kernel.memory_regions[1]", "kernel.memory_regions[0]"),
            ("kernel.memory_regions[2]", "kernel.memory_regions[0]"),
            ("kernel.memory_regions[3]", "kernel.memory_regions[1]"),
            ("kernel.memory_regions[5]", "kernel.memory_regions[4]"),
        ]
    );
}

#[test]
fn more_regions_than_the_cap_are_refused_with_one_message() {
    let config = config_with_regions(1, vec![ram(0, PAGE); MAX_MEMORY_REGIONS + 1]);
    let found = problems(&config);
    assert_eq!(found.len(), 1, "the regions are not looked at one by one");
    assert_eq!(found[0].0, "kernel.memory_regions");
    assert!(
        found[0].1.contains(&format!(
            "has {} entries, more than the {MAX_MEMORY_REGIONS} memory regions",
            MAX_MEMORY_REGIONS + 1
        )),
        "{found:?}"
    );
}

/// A config with 1 MiB of RAM at 0 and `count` one-page Dummy devices tiling the space
/// from 4 GiB in scrambled order, named `d<index>`.
fn config_with_devices(count: u64) -> (AxVMConfig, Vec<u64>) {
    let mut config = config(1);
    let pages = scrambled_pages(count);
    config.emu_devices = pages
        .iter()
        .enumerate()
        .map(|(i, &p)| emu(&format!("d{i}"), (1 << 32) + p * PAGE, PAGE, Dummy))
        .collect();
    (config, pages)
}

use EmulatedDeviceType::Dummy;

#[test]
fn the_most_devices_allowed_validate_and_one_more_is_refused() {
    let (mut config, _) = config_with_devices(MAX_DEVICES as u64);
    assert_eq!(problems(&config), []);

    config
        .emu_devices
        .push(emu("extra", 0x1_0000_0000, PAGE, Dummy));
    let found = problems(&config);
    assert_eq!(found.len(), 1, "{:?}", &found[..found.len().min(3)]);
    assert_eq!(found[0].0, "devices.emu_devices");

    let mut config = AxVMConfig::clone(&config);
    config.emu_devices.clear();
    config.pass_through_devices = vec![passthrough("p", 0, 0, PAGE); MAX_DEVICES + 1];
    let found = problems(&config);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, "devices.passthrough_devices");
}

#[test]
fn device_overlaps_with_ram_and_each_other_are_found_among_many() {
    let count = 50_000;
    let (mut config, pages) = config_with_devices(count);
    let last = index_of_page(&pages, count - 1);
    // Over the end of RAM (the lowest address of all), and over the highest device.
    config
        .emu_devices
        .push(emu("low", 0xf_f000, 2 * PAGE, Dummy));
    config
        .emu_devices
        .push(emu("high", (1 << 32) + (count - 1) * PAGE, PAGE, Dummy));
    assert_eq!(
        problems(&config),
        [
            (
                "devices.emu_devices[50000] (low)".to_string(),
                "config field `devices.emu_devices[50000] (low)`: 0xff000+0x2000 overlaps RAM kernel.memory_regions[0]: the guest would reach RAM, never the device".to_string()
            ),
            (
                "devices.emu_devices[50001] (high)".to_string(),
                format!("config field `devices.emu_devices[50001] (high)`: overlaps devices.emu_devices[{last}] (d{last}): each address belongs to one device")
            ),
        ]
    );
}

#[test]
fn a_pass_through_range_that_wraps_once_rounded_to_pages_is_refused() {
    let field = "devices.passthrough_devices[1] (top)";
    let cases = [
        // 0xfff bytes in the last page: no wrap as given, a 0-byte range once rounded.
        (
            0xffff_ffff_ffff_f000,
            0xffff_ffff_ffff_f000,
            0xfff,
            "base_gpa",
        ),
        (
            0xffff_ffff_ffff_f800,
            0xffff_ffff_ffff_f800,
            0x10,
            "base_gpa",
        ),
        // The host side alone.
        (0x1000_0000, 0xffff_ffff_ffff_f000, 0x1, "base_hpa"),
    ];
    for (gpa, hpa, length, which) in cases {
        let mut config = config(1);
        config.pass_through_devices = vec![
            passthrough("ok", 0xfe00_0000, 0xfe00_0000, PAGE),
            passthrough("top", gpa, hpa, length),
        ];
        let err = config.validate().unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
        let base = if which == "base_gpa" { gpa } else { hpa };
        let named = format!("{which} {base:#x}+{length:#x}");
        assert!(err.to_string().contains(&named), "{err}");
        let merge_err = merge_pass_through(&config.pass_through_devices).unwrap_err();
        assert_eq!(merge_err, err, "the merge refuses it the same way");
    }
}

#[test]
fn a_pass_through_range_ending_at_the_last_page_boundary_is_accepted() {
    let mut config = config(1);
    let top = 0xffff_ffff_ffff_e000;
    config.pass_through_devices = vec![passthrough("top", top + 0x10, top + 0x10, 0xff0)];
    assert_eq!(config.validate(), Ok(()));
    let merged = merge_pass_through(&config.pass_through_devices).unwrap();
    assert_eq!((merged[0].gpa.as_u64(), merged[0].size), (top, PAGE));
}
