//! virtio-blk over virtio-mmio: rings, descriptor chains and requests from the input, or
//! register traffic then a proper setup (`axvm_kvm::testing::virtio_fuzz`, which the seeded
//! tests in crates/axvm-kvm also run).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| axvm_kvm::testing::virtio_fuzz::fuzz_virtio_blk(data));
