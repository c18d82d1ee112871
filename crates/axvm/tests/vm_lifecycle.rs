//! A VM's life around the exit loop: vCPU creation and entries, `boot` (refused without
//! hardware support), `run_vcpu` refused before boot and for unknown vCPUs, `shutdown`
//! kicking every vCPU (before a run or from a device in the middle of one), errors of
//! devices and backends stopping the VM, and interrupt injection.

mod common;

use std::sync::Arc;

use axvm::device::{DeviceRange, UnclaimedAccessPolicy};
use axvm::{AccessWidth, AxVCpuExitReason as Exit, AxVMError, VMStatus};
use common::configs::{booted_vm, config, device_set, gpa, new_vm};
use common::devices::{Recorder, ShutdownPort};
use common::{TestHal, TestSetup};

fn no_devices() -> axvm::device::AxVmDevices {
    device_set(UnclaimedAccessPolicy::Error, vec![])
}

#[test]
fn vcpus_get_their_entry_and_affinity() {
    let mut config = config(3);
    config.cpu_config.ap_entry = gpa(0x9000);
    config.phys_cpu_sets = Some(vec![0b01, 0b10]);
    let hal = TestHal::new();
    let vm = new_vm(config, &hal, no_devices());

    assert_eq!(vm.vcpu_num(), 3);
    assert_eq!(
        hal.state().created_vcpus,
        [(0, Some(0b01)), (1, Some(0b10)), (2, None)]
    );
    assert_eq!(hal.vcpu(0).state().entry, Some(gpa(0x8000)), "BSP entry");
    assert_eq!(hal.vcpu(1).state().entry, Some(gpa(0x9000)), "AP entry");
    assert_eq!(hal.vcpu(2).state().entry, Some(gpa(0x9000)), "AP entry");

    vm.set_vcpu_entry(2, gpa(0xa000)).unwrap();
    vm.setup_vcpu(2, TestSetup { rax: 1, rdx: 2 }).unwrap();
    assert_eq!(hal.vcpu(2).state().entry, Some(gpa(0xa000)));
    assert_eq!(hal.vcpu(2).state().setups, [TestSetup { rax: 1, rdx: 2 }]);

    vm.boot().unwrap();
    let err = vm.set_vcpu_entry(0, gpa(0x8000)).unwrap_err();
    assert!(matches!(err, AxVMError::BadStatus { .. }), "{err:?}");
    let err = vm.setup_vcpu(0, TestSetup::default()).unwrap_err();
    assert!(matches!(err, AxVMError::BadStatus { .. }), "{err:?}");
}

#[test]
fn run_vcpu_before_boot_is_refused_without_spoiling_the_vm() {
    let hal = TestHal::new();
    let vm = new_vm(config(1), &hal, no_devices());

    let err = vm.run_vcpu(0).unwrap_err();
    assert!(
        matches!(
            err,
            AxVMError::BadStatus {
                actual: "created",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(hal.vcpu(0).state().runs, 0, "the guest was not entered");
    assert_eq!(
        vm.status(),
        VMStatus::Created,
        "a refused call changes nothing"
    );
    vm.boot().expect("the VM can still boot");
    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
}

#[test]
fn run_vcpu_of_an_unknown_vcpu_is_no_such_vcpu() {
    let hal = TestHal::new();
    let vm = booted_vm(config(1), &hal, no_devices());

    let err = vm.run_vcpu(99).unwrap_err();
    assert!(
        matches!(err, AxVMError::NoSuchVCpu { vcpu: 99, count: 1 }),
        "{err:?}"
    );
    assert_eq!(
        vm.status(),
        VMStatus::Running,
        "asking for a wrong id stops nothing"
    );
    assert!(hal.kicks().is_empty());
}

#[test]
fn boot_is_refused_without_hardware_support() {
    let hal = TestHal::new().configure(|s| s.no_hardware_support = true);
    assert!(!axvm::has_hardware_support(&hal));
    let vm = new_vm(config(1), &hal, no_devices());

    let err = vm.boot().unwrap_err();
    assert!(
        matches!(
            err,
            AxVMError::Host {
                operation: "boot the VM",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(vm.status(), VMStatus::Created);
    assert!(vm.run_vcpu(0).is_err());
}

#[test]
fn boot_twice_is_refused() {
    let hal = TestHal::new();
    let vm = booted_vm(config(1), &hal, no_devices());
    assert!(matches!(
        vm.boot(),
        Err(AxVMError::BadStatus {
            expected: "created",
            actual: "running"
        })
    ));
}

#[test]
fn shutdown_kicks_every_vcpu_and_run_vcpu_returns_interrupted() {
    let hal = TestHal::new();
    hal.vcpu(1).script([Exit::Hypercall {
        nr: 1,
        args: [0; 6],
    }]);
    let vm = booted_vm(config(3), &hal, no_devices());

    vm.shutdown();
    assert_eq!(hal.kicks(), [0, 1, 2]);
    assert_eq!(vm.status(), VMStatus::Stopped, "no vCPU was running");
    for id in 0..3 {
        assert_eq!(vm.run_vcpu(id).unwrap(), Exit::Interrupted);
    }
    assert_eq!(
        hal.vcpu(1).state().runs,
        0,
        "the guest is not entered after shutdown"
    );
    assert_eq!(vm.exit_status(), None);

    vm.shutdown();
    assert_eq!(
        hal.kicks(),
        [0, 1, 2],
        "a second shutdown has nothing to kick"
    );
    assert!(vm.boot().is_err(), "a stopped VM does not boot again");
}

#[test]
fn shutdown_from_a_device_ends_the_running_vcpu_loop() {
    let (slot, button) = ShutdownPort::build(0x604);
    let hal = TestHal::new();
    let vcpu = hal.vcpu(0);
    vcpu.script([
        Exit::IoWrite {
            port: 0x604,
            width: AccessWidth::Word,
            data: 0x2000,
        },
        Exit::Hypercall {
            nr: 2,
            args: [0; 6],
        },
    ]);
    let vm = booted_vm(
        config(2),
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![button]),
    );
    slot.set(Arc::downgrade(&vm)).unwrap();

    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Interrupted);
    assert_eq!(
        vcpu.remaining(),
        1,
        "the loop saw the shutdown before entering again"
    );
    assert_eq!(hal.kicks(), [0, 1]);
    assert_eq!(vm.status(), VMStatus::Stopped, "the last runner left");
}

#[test]
fn shutdown_of_a_created_vm_stops_it() {
    let hal = TestHal::new();
    let vm = new_vm(config(1), &hal, no_devices());
    vm.shutdown();
    assert_eq!(vm.status(), VMStatus::Stopped);
    assert!(vm.boot().is_err());
}

#[test]
fn a_device_error_names_the_device_and_stops_the_vm() {
    let (_, cmos) = Recorder::new("cmos", DeviceRange::port(0x70, 2))
        .failing()
        .build();
    let hal = TestHal::new();
    hal.vcpu(0).script([Exit::IoRead {
        port: 0x71,
        width: AccessWidth::Byte,
    }]);
    let vm = booted_vm(
        config(1),
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![cmos]),
    );

    let err = vm.run_vcpu(0).unwrap_err();
    assert!(
        matches!(&err, AxVMError::Device(e) if e.device == "cmos"),
        "{err:?}"
    );
    assert!(err.to_string().contains("register is broken"), "{err}");
    assert_eq!(vm.status(), VMStatus::Stopped);
    assert!(
        hal.vcpu(0).state().read_results.is_empty(),
        "no value was delivered"
    );
}

#[test]
fn a_backend_failure_names_the_vcpu_and_stops_the_vm() {
    let hal = TestHal::new();
    hal.vcpu(1).fail_next_run("VM entry failed");
    let vm = booted_vm(config(2), &hal, no_devices());

    let err = vm.run_vcpu(1).unwrap_err();
    assert!(
        matches!(&err, AxVMError::VCpu { vcpu: 1, message, .. } if message == "VM entry failed")
    );
    assert_eq!(err.to_string(), "vCPU 1: VM entry failed");
    // The backend's own error comes back whole, for a caller that matches on it.
    let cause = err
        .host_cause()
        .and_then(|c| c.downcast_ref::<common::TestError>());
    assert_eq!(cause, Some(&common::TestError("VM entry failed".into())));
    assert_eq!(vm.status(), VMStatus::Stopped);
}

#[test]
fn interrupts_are_injected_through_the_host() {
    let hal = TestHal::new();
    let vm = booted_vm(config(2), &hal, no_devices());

    vm.inject_interrupt_to_vcpu(&[1, 0], 0x30).unwrap();
    assert_eq!(hal.state().irqs, [(1, 0x30), (0, 0x30)]);
    let err = vm.inject_interrupt_to_vcpu(&[2], 0x31).unwrap_err();
    assert!(
        matches!(err, AxVMError::NoSuchVCpu { vcpu: 2, count: 2 }),
        "{err:?}"
    );
    assert_eq!(hal.state().irqs.len(), 2);
}
