//! The exit loop's policies: exits the VM does not handle go back to the caller,
//! unclaimed accesses read as zero or stop the VM (naming vCPU and address) depending on
//! `UnclaimedAccessPolicy`, and nested page faults are ignored for writes to ROM and
//! returned otherwise.

mod common;

use axvm::device::UnclaimedAccessPolicy;
use axvm::{AccessWidth, AxVCpuExitReason as Exit, AxVMError, MappingFlags, VMStatus};
use common::configs::{booted_vm, config, config_with_regions, device_set, gpa, ram, region};
use common::TestHal;

use AccessWidth::{Byte, Dword, Word};

fn io_read(port: u16, width: AccessWidth) -> Exit {
    Exit::IoRead { port, width }
}

fn io_write(port: u16, width: AccessWidth, data: u64) -> Exit {
    Exit::IoWrite { port, width, data }
}

#[test]
fn exits_the_vm_does_not_handle_are_returned_to_the_caller() {
    let hal = TestHal::new();
    let hypercall = Exit::Hypercall {
        nr: 0x10,
        args: [1, 2, 3, 4, 5, 6],
    };
    let cpu_up = Exit::CpuUp {
        target_cpu: 1,
        entry_point: gpa(0x9000),
        arg: 0x42,
    };
    hal.vcpu(0).script([Exit::Halt, hypercall, cpu_up]);
    let vm = booted_vm(
        config(2),
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![]),
    );

    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
    assert_eq!(vm.run_vcpu(0).unwrap(), hypercall);
    assert_eq!(vm.run_vcpu(0).unwrap(), cpu_up);
    assert_eq!(vm.status(), VMStatus::Running);
}

#[test]
fn unclaimed_accesses_read_as_zero_under_the_ignore_policy() {
    let hal = TestHal::new();
    let vcpu = hal.vcpu(0);
    {
        let mut state = vcpu.state();
        state.rax = 0xffff;
        state.mmio_dest = u64::MAX;
    }
    vcpu.script([io_read(0x80, Byte), io_write(0x80, Byte, 1)]);
    vcpu.script([Exit::MmioRead {
        addr: gpa(0xfe00_0000),
        width: Dword,
    }]);
    let vm = booted_vm(
        config(1),
        &hal,
        device_set(UnclaimedAccessPolicy::Ignore, vec![]),
    );

    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
    assert_eq!(vcpu.state().rax, 0xff00, "AL read as 0, AH kept");
    assert_eq!(vcpu.state().mmio_dest, 0);

    vcpu.state().rax = 0x1234;
    vcpu.state().rdx = 0x5678;
    vcpu.script([
        Exit::SysRegRead { addr: 0x1234 },
        Exit::SysRegWrite {
            addr: 0x1234,
            value: 9,
        },
    ]);
    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
    let state = vcpu.state();
    assert_eq!((state.rdx, state.rax), (0, 0));
    assert_eq!(state.read_results, [0, 0, 0]);
    drop(state);
    assert_eq!(vm.status(), VMStatus::Running);
}

/// A copy into a hole, down or up, counts as one run of adjacent addresses; a second copy
/// elsewhere and a polled port are runs of their own.
#[test]
fn unclaimed_accesses_are_counted_in_runs_of_adjacent_addresses() {
    let hal = TestHal::new();
    let vcpu = hal.vcpu(0);
    let write = |addr: u64| Exit::MmioWrite {
        addr: gpa(addr),
        width: Word,
        data: 0,
    };
    vcpu.script((0..64).rev().map(|i| write(0xfe00_0000 + 2 * i)));
    vcpu.script((0..8).map(|i| write(0xfe10_0000 + 2 * i)));
    vcpu.script((0..100).map(|_| io_read(0x2fd, Byte)));
    let vm = booted_vm(
        config(1),
        &hal,
        device_set(UnclaimedAccessPolicy::Ignore, vec![]),
    );
    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
    let (runs, overflow) = vm.devices().unclaimed_accesses();
    let lines: Vec<String> = runs.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "100 x 1-byte read at port 0x2fd",
            "64 x 2-byte write at MMIO 0xfe000000-0xfe00007f",
            "8 x 2-byte write at MMIO 0xfe100000-0xfe10000f",
        ]
    );
    assert_eq!(overflow, 0);
}

#[test]
fn unclaimed_accesses_stop_the_vm_under_the_error_policy() {
    let hal = TestHal::new();
    hal.vcpu(0).script([
        io_write(0x80, Byte, 0x12),
        Exit::Hypercall {
            nr: 0,
            args: [0; 6],
        },
    ]);
    let vm = booted_vm(
        config(2),
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![]),
    );

    let err = vm.run_vcpu(0).unwrap_err();
    assert!(
        matches!(
            err,
            AxVMError::UnclaimedAccess {
                vcpu: 0,
                access: "write",
                space: "port",
                addr: 0x80,
                width: Byte
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("vCPU 0") && message.contains("port 0x80"),
        "{message}"
    );
    assert_eq!(vm.status(), VMStatus::Stopped);
    assert_eq!(hal.kicks(), [0, 1], "every vCPU is told to stop");
    assert_eq!(hal.vcpu(0).remaining(), 1);
}

#[test]
fn unclaimed_mmio_names_the_vcpu_and_the_address() {
    let hal = TestHal::new();
    hal.vcpu(1).script([Exit::MmioRead {
        addr: gpa(0xfe00_0040),
        width: Word,
    }]);
    let vm = booted_vm(
        config(2),
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![]),
    );

    let err = vm.run_vcpu(1).unwrap_err();
    assert!(
        matches!(
            err,
            AxVMError::UnclaimedAccess {
                vcpu: 1,
                access: "read",
                space: "MMIO",
                addr: 0xfe00_0040,
                width: Word
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        vm.run_vcpu(0).unwrap(),
        Exit::Interrupted,
        "the other vCPU does not run on"
    );
    assert_eq!(hal.vcpu(0).state().runs, 0);
}

#[test]
fn a_write_to_rom_is_ignored_and_a_fault_outside_ram_is_returned() {
    const ROM: u64 = 0x10_0000;
    let rom = region(
        ROM,
        0x1_0000,
        MappingFlags::READ | MappingFlags::EXECUTE,
        Default::default(),
    );
    let config = config_with_regions(1, vec![ram(0, 0x10_0000), rom]);
    let hal = TestHal::new();
    let vcpu = hal.vcpu(0);
    let npf = |addr, access_flags| Exit::NestedPageFault {
        addr: gpa(addr),
        access_flags,
    };
    let outside = npf(0x20_0000, MappingFlags::READ);
    let rom_read = npf(ROM + 0x800, MappingFlags::READ);
    let ram_write = npf(0x1000, MappingFlags::WRITE);
    vcpu.script([
        npf(ROM + 0x800, MappingFlags::WRITE),
        npf(ROM + 0xfff0, MappingFlags::WRITE),
    ]);
    vcpu.script([
        Exit::Hypercall {
            nr: 7,
            args: [0; 6],
        },
        outside,
        rom_read,
        ram_write,
    ]);
    let vm = booted_vm(
        config,
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![]),
    );

    assert_eq!(
        vm.run_vcpu(0).unwrap(),
        Exit::Hypercall {
            nr: 7,
            args: [0; 6]
        }
    );
    assert_eq!(vcpu.state().runs, 3, "both ROM writes were resumed");
    assert_eq!(vm.run_vcpu(0).unwrap(), outside);
    assert_eq!(
        vm.run_vcpu(0).unwrap(),
        rom_read,
        "a read fault is not a RAM matter"
    );
    assert_eq!(
        vm.run_vcpu(0).unwrap(),
        ram_write,
        "a writable region's fault is not ROM"
    );
    assert_eq!(vm.status(), VMStatus::Running);
}
