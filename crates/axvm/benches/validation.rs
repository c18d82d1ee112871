//! How long config validation takes for many memory regions and devices (issue 10, item 9:
//! it used to compare every pair, 2.7 s for 100 000 regions).
//!
//! `cargo bench -p axvm --bench validation` prints a table (figures in docs/PERFORMANCE.md);
//! without `--bench` (as under `cargo test --benches`) it does one small round as a smoke
//! test, whose figures mean nothing. `AXVM_BENCH_SIZES=10000,100000` picks the sizes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use axvm::memory::merge_pass_through;
use axvm::{
    AxVMConfig, EmulatedDeviceConfig, EmulatedDeviceType, GuestPhysAddr, HostPhysAddr,
    MappingFlags, PassThroughDeviceConfig, VmMemConfig, VmMemMappingType,
};

const PAGE: u64 = 0x1000;

/// Page `i` of `count` in a scrambled order (a permutation as long as `count` is not a
/// multiple of the prime 7919), so that sorting has work to do.
fn scrambled(i: u64, count: u64) -> u64 {
    (i * 7919) % count
}

/// A valid config with `count` adjacent one-page regions, listed in scrambled order.
fn regions_config(count: u64) -> AxVMConfig {
    let mut config = AxVMConfig::new("bench", 1);
    config.memory_regions = (0..count)
        .map(|i| VmMemConfig {
            gpa: GuestPhysAddr::new(scrambled(i, count) * PAGE),
            size: PAGE,
            flags: MappingFlags::READ | MappingFlags::WRITE,
            map_type: VmMemMappingType::MapAlloc,
        })
        .collect();
    config
}

/// A valid config with one 1 MiB region and `count` one-page Dummy devices above 4 GiB.
fn devices_config(count: u64) -> AxVMConfig {
    let mut config = regions_config(1);
    config.memory_regions[0].size = 0x10_0000;
    config.emu_devices = (0..count)
        .map(|i| EmulatedDeviceConfig {
            name: format!("d{i}"),
            base_gpa: GuestPhysAddr::new((1 << 32) + scrambled(i, count) * PAGE),
            length: PAGE,
            irq_id: 0,
            emu_type: EmulatedDeviceType::Dummy,
            cfg_list: Vec::new(),
            backend: None,
        })
        .collect();
    config
}

/// `count` pass-through devices of half a page each, two to a page, in scrambled order.
fn pass_through(count: u64) -> Vec<PassThroughDeviceConfig> {
    (0..count)
        .map(|i| {
            let at = (1 << 32) + scrambled(i, count) * PAGE / 2;
            PassThroughDeviceConfig {
                name: format!("p{i}"),
                base_gpa: GuestPhysAddr::new(at),
                base_hpa: HostPhysAddr::new(at),
                length: PAGE / 2,
                irq_id: 0,
            }
        })
        .collect()
}

/// The median of `runs` timings of `work`.
fn median(runs: usize, mut work: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            work();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let default_sizes: &[u64] = if bench {
        &[10_000, 100_000, 1_000_000]
    } else {
        &[1_000]
    };
    let sizes: Vec<u64> = match std::env::var("AXVM_BENCH_SIZES") {
        Ok(list) => list.split(',').map(|s| s.trim().parse().unwrap()).collect(),
        Err(_) => default_sizes.to_vec(),
    };
    let runs = if bench { 5 } else { 1 };
    let title = format!("measure (median of {runs})");
    println!("| {title:<43} | {:>9} | {:>12} |", "count", "time");
    println!("|---------------------------------------------|-----------|--------------|");
    let row = |what: &str, count: u64, time: Duration| {
        println!("| {what:<43} | {count:>9} | {time:>12.2?} |")
    };
    for &count in &sizes {
        let config = regions_config(count);
        let time = median(runs, || assert_eq!(black_box(&config).validate(), Ok(())));
        row("validate, one-page regions", count, time);
    }
    for &count in &sizes {
        // Every region two pages long: each overlaps its neighbours, and is refused when one
        // of them comes earlier in the list (about two thirds of them, in this order).
        let mut config = regions_config(count);
        for region in &mut config.memory_regions {
            region.size = 2 * PAGE;
        }
        let time = median(runs, || {
            let problems = black_box(&config).problems();
            assert!(
                problems.len() as u64 > count / 2,
                "most overlap an earlier one"
            );
        });
        row("problems, every region overlapping", count, time);
    }
    // At most 64 Ki devices are accepted.
    let mut device_counts: Vec<u64> = sizes.iter().map(|&count| count.min(1 << 16)).collect();
    device_counts.dedup();
    for count in device_counts {
        let config = devices_config(count);
        let time = median(runs, || assert_eq!(black_box(&config).validate(), Ok(())));
        row("validate, emulated devices", count, time);
        let devices = pass_through(count);
        let time = median(runs, || {
            let merged = merge_pass_through(black_box(&devices)).unwrap();
            assert_eq!(merged.len(), 1, "the halves tile one range");
        });
        row("merge_pass_through, half-page devices", count, time);
    }
}
