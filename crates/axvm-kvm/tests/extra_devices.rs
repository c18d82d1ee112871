//! Devices of the user's own (`VmOptions::extra_devices`) sit beside the platform devices:
//! the guest reaches them like any other, and one that claims a platform device's port is
//! refused when the VM is created, with both devices named.

mod common;

use std::sync::Arc;

use axvm::device::UnclaimedAccessPolicy;
use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};
use axvm_kvm::{BootImages, Error, KvmVm, VmOptions, VmOutcome};
use common::guests::{UNCLAIMED_PORT, UNCLAIMED_READ};
use common::{raw_config, require_kvm, run_bounded, Console};

/// One port that reads as a fixed value.
struct FixedPort {
    port: u16,
    value: u8,
}

impl BaseDeviceOps for FixedPort {
    fn name(&self) -> &str {
        "test fixed port"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(self.port, 1)]
    }

    fn handle_read(&self, _at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(self.value.into())
    }

    fn handle_write(
        &self,
        _at: DeviceOffset,
        _width: AccessWidth,
        _value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        Ok(WriteOutcome::Done)
    }
}

fn options_with(console: &Console, device: FixedPort) -> VmOptions {
    VmOptions {
        console: Box::new(console.clone()),
        extra_devices: vec![Arc::new(device)],
        unclaimed: UnclaimedAccessPolicy::Error,
        ..Default::default()
    }
}

fn images(kernel: &[u8]) -> BootImages {
    BootImages {
        kernel: kernel.to_vec(),
        ..Default::default()
    }
}

fn the_guest_reads_an_extra_device() {
    require_kvm();
    let console = Console::default();
    let device = FixedPort {
        port: UNCLAIMED_PORT,
        value: 0x37,
    };
    let vm = KvmVm::create(
        raw_config(),
        &images(UNCLAIMED_READ),
        options_with(&console, device),
    )
    .unwrap_or_else(|err| panic!("cannot create the VM: {err}"));
    let outcome = run_bounded(vm, &console).unwrap_or_else(|err| panic!("the VM failed: {err}"));
    assert_eq!(outcome, VmOutcome::Exited(0x37));
}

fn an_extra_device_on_com1_is_refused() {
    require_kvm();
    let console = Console::default();
    let device = FixedPort {
        port: 0x3f8,
        value: 0,
    };
    let refused = KvmVm::create(
        raw_config(),
        &images(UNCLAIMED_READ),
        options_with(&console, device),
    );
    match refused {
        Err(Error::ExtraDevice(err)) => {
            assert_eq!(err.device, "test fixed port");
            assert!(err.message.contains("COM1"), "{err}");
        }
        Err(other) => panic!("refused for another reason: {other}"),
        Ok(_) => panic!("a device on COM1's port was accepted"),
    }
}

axvm_test_harness::main!(
    the_guest_reads_an_extra_device,
    an_extra_device_on_com1_is_refused,
);
