//! A device of your own in a VM: `cargo run -p axvm-kvm --example my_device`.
//!
//! The embedded demo guest checks MMIO against a bank of scratch registers at 0xfeb0_0000
//! (its config asks axvm for one). Here the config leaves it out and the program supplies
//! its own device there through `VmOptions::extra_devices`: a 4 KiB register file that
//! returns what was written, little-endian, and counts the guest's accesses. The guest's
//! checks pass only if the device behaves; the program then reports what the device saw.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, AxVMConfig, EmulatedDeviceType};
use axvm_kvm::{BootImages, KvmVm, VmOptions, VmOutcome};

/// Where the demo guest expects its scratch registers.
const REGISTERS_AT: u64 = 0xfeb0_0000;
const REGISTERS_LEN: usize = 0x1000;

/// Registers that hold what the guest writes; reads past the end see zeros.
struct RegisterFile {
    bytes: Mutex<Vec<u8>>,
    reads: AtomicUsize,
    writes: AtomicUsize,
}

impl BaseDeviceOps for RegisterFile {
    fn name(&self) -> &str {
        "example register file"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::mmio(REGISTERS_AT, REGISTERS_LEN as u64)]
    }

    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        let value = (0..width.size()).fold(0u64, |value, i| {
            let byte = usize::try_from(at.offset)
                .ok()
                .and_then(|offset| bytes.get(offset + i));
            value | u64::from(byte.copied().unwrap_or(0)) << (8 * i)
        });
        Ok(value)
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        let mut bytes = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        for i in 0..width.size() {
            let offset = usize::try_from(at.offset).ok().map(|offset| offset + i);
            if let Some(byte) = offset.and_then(|offset| bytes.get_mut(offset)) {
                *byte = (value >> (8 * i)) as u8;
            }
        }
        Ok(WriteOutcome::Done)
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The demo's config (guests/demo/demo.toml) without its scratch device.
    let config = AxVMConfig::builder("my-device")
        .cpus(2)
        .ram(0, 16 << 20)
        .kernel_at(0x20_0000)
        .build()?;
    let registers = Arc::new(RegisterFile {
        bytes: Mutex::new(vec![0; REGISTERS_LEN]),
        reads: AtomicUsize::new(0),
        writes: AtomicUsize::new(0),
    });
    let options = VmOptions {
        extra_devices: vec![registers.clone()],
        ..Default::default()
    };
    let images = BootImages {
        kernel: axvm_guests::DEMO.to_vec(),
        ..Default::default()
    };
    let vm = KvmVm::create(config, &images, options)?;
    let outcome = vm.run()?;
    let (reads, writes) = (
        registers.reads.load(Ordering::Relaxed),
        registers.writes.load(Ordering::Relaxed),
    );
    println!("the VM ended: {outcome:?}; the register file saw {reads} reads and {writes} writes");
    if outcome != VmOutcome::Exited(0) || reads == 0 || writes == 0 {
        return Err("the guest's MMIO checks did not pass on the example device".into());
    }
    Ok(())
}
