//! The HPET register file: a sequence of accesses from the input, through the device's
//! `BaseDeviceOps` (see `axvm_kvm::testing::devices`).
#![no_main]

use axvm_kvm::testing::devices::{fuzz_device, PlatformDevice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| fuzz_device(PlatformDevice::Hpet, data));
