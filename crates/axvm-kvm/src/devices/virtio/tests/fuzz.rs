//! Seeded runs of the virtio-blk fuzz harness (`crate::testing::virtio_fuzz`, which the
//! `virtio_blk` cargo-fuzz target drives too): thousands of random queues and requests, and
//! of random register traffic.
//!
//! Deterministic: case `i` of a run uses seed `AXVM_FUZZ_SEED ^ i`, so a failure names the
//! seed that reproduces it; `AXVM_FUZZ_ITERATIONS` runs more (or fewer), `AXVM_FUZZ_TRACE`
//! prints each seed and its time.

use std::rc::Rc;

use crate::testing::entropy::SeededRng;
use crate::testing::virtio_driver::TempDisk;
use crate::testing::virtio_fuzz::{queue_case, register_case, seeds, FUZZ_SECTORS};

/// Runs `case` for each seed of this run.
fn seeded(default_iterations: u64, case: fn(&mut SeededRng, &Rc<TempDisk>, &str)) {
    let disk = Rc::new(TempDisk::new(FUZZ_SECTORS));
    for seed in seeds(default_iterations) {
        let start = std::time::Instant::now();
        case(&mut SeededRng::new(seed), &disk, &format!("seed {seed:#x}"));
        if std::env::var("AXVM_FUZZ_TRACE").is_ok() {
            eprintln!("seed {seed:#x}: {:?}", start.elapsed());
        }
    }
}

#[test]
fn random_queues_and_requests() {
    seeded(2000, queue_case);
}

#[test]
fn random_register_traffic() {
    seeded(1000, register_case);
}

/// Inputs the `virtio_blk` fuzz target once failed on, replayed.
#[test]
fn fuzz_target_findings() {
    // The harness itself overflowed computing ring slots for a descriptor table placed near
    // the top of the address space (the device was fine).
    crate::testing::virtio_fuzz::fuzz_virtio_blk(&[
        3, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 20, 59, 67,
    ]);
}
