//! The exit loop (`AxVM::run_vcpu`) dispatching exits to devices: port, MMIO and MSR
//! accesses reach the device that claims them, values are cut to the access width and land
//! in the registers as x86 hardware puts them there, and a device can stop the VM.

mod common;

use axvm::device::{DeviceOffset, DeviceRange, DeviceSpace, UnclaimedAccessPolicy, WriteOutcome};
use axvm::vcpu::LoadExtension;
use axvm::{AccessWidth, AxVCpuExitReason as Exit, EmulatedDeviceType, VMStatus};
use common::configs::{booted_vm, config, device_set, emu, gpa};
use common::devices::{Access, Recorder};
use common::TestHal;

use AccessWidth::{Byte, Dword, Qword, Word};

fn io_read(port: u16, width: AccessWidth) -> Exit {
    Exit::IoRead { port, width }
}

fn io_write(port: u16, width: AccessWidth, data: u64) -> Exit {
    Exit::IoWrite { port, width, data }
}

fn log_of(log: &common::devices::AccessLog) -> Vec<Access> {
    log.lock().unwrap().clone()
}

#[test]
fn port_accesses_reach_the_device_that_claims_the_port() {
    let (data_log, data) = Recorder::new("kbd-data", DeviceRange::port(0x60, 1))
        .reads(0x11)
        .build();
    let (status_log, status) = Recorder::new("kbd-status", DeviceRange::port(0x64, 1))
        .reads(0x22)
        .build();
    let (uart_log, uart) = Recorder::new("uart", DeviceRange::port(0x3f8, 8))
        .reads(0x33)
        .build();
    let devices = device_set(UnclaimedAccessPolicy::Error, vec![uart, status, data]);
    let hal = TestHal::new();
    let vcpu = hal.vcpu(0);
    vcpu.script([
        io_read(0x64, Byte),
        io_read(0x3fd, Byte),
        io_write(0x60, Byte, 0xf4),
        io_write(0x3f8, Byte, 0x41),
    ]);
    let vm = booted_vm(config(1), &hal, devices);

    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
    assert_eq!(
        log_of(&status_log),
        [Access::Read {
            at: DeviceOffset::first(0),
            width: Byte
        }]
    );
    assert_eq!(
        log_of(&data_log),
        [Access::Write {
            at: DeviceOffset::first(0),
            width: Byte,
            value: 0xf4
        }]
    );
    assert_eq!(
        log_of(&uart_log),
        [
            Access::Read {
                at: DeviceOffset::first(5),
                width: Byte
            },
            Access::Write {
                at: DeviceOffset::first(0),
                width: Byte,
                value: 0x41
            }
        ]
    );
    assert_eq!(vcpu.state().read_results, [0x22, 0x33]);
}

#[test]
fn a_device_with_several_ranges_is_told_which_range_and_the_offset_in_it() {
    // Like a keyboard controller at 0x60 and 0x64 with a second block of MSRs: the manager
    // names the range by its place in the device's list, whatever order the bases sort in.
    let (log, device) = Recorder::new("two-blocks", DeviceRange::port(0x64, 1))
        .also(DeviceRange::port(0x60, 2))
        .also(DeviceRange::sysreg(0x4000_0010, 4))
        .build();
    let hal = TestHal::new();
    hal.vcpu(0).script([
        io_read(0x64, Byte),
        io_write(0x61, Byte, 0x5a),
        Exit::SysRegRead { addr: 0x4000_0013 },
    ]);
    let vm = booted_vm(
        config(1),
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![device]),
    );

    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
    assert_eq!(
        log_of(&log),
        [
            Access::Read {
                at: DeviceOffset::new(0, 0),
                width: Byte
            },
            Access::Write {
                at: DeviceOffset::new(1, 1),
                width: Byte,
                value: 0x5a
            },
            Access::Read {
                at: DeviceOffset::new(2, 3),
                width: Qword
            },
        ]
    );
}

#[test]
fn port_reads_are_cut_to_width_and_merge_into_rax_like_in() {
    let (_, device) = Recorder::new("wide", DeviceRange::port(0x510, 4))
        .reads(0x1122_3344_5566_7788)
        .build();
    let hal = TestHal::new();
    let vcpu = hal.vcpu(0);
    let vm = booted_vm(
        config(1),
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![device]),
    );

    let old_rax = 0xdead_beef_cafe_f00d;
    let cases = [
        (Byte, 0x88, 0xdead_beef_cafe_f088), // IN AL: RAX bits 8..63 unchanged
        (Word, 0x7788, 0xdead_beef_cafe_7788), // IN AX: bits 16..63 unchanged
        (Dword, 0x5566_7788, 0x5566_7788),   // IN EAX: zero-extends
    ];
    for (width, delivered, rax) in cases {
        vcpu.state().rax = old_rax;
        vcpu.script([io_read(0x510, width)]);
        assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
        let state = vcpu.state();
        assert_eq!(state.read_results.last(), Some(&delivered), "{width}");
        assert_eq!(state.rax, rax, "{width} read: rax {:#x}", state.rax);
    }
}

#[test]
fn port_writes_are_cut_to_the_access_width() {
    let (log, device) = Recorder::new("sink", DeviceRange::port(0x80, 4)).build();
    let hal = TestHal::new();
    hal.vcpu(0).script([
        io_write(0x80, Byte, 0x1234),
        io_write(0x81, Word, 0xdead_beef),
        io_write(0x80, Dword, 0x1_2345_6789),
    ]);
    let vm = booted_vm(
        config(1),
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![device]),
    );

    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
    assert_eq!(
        log_of(&log),
        [
            Access::Write {
                at: DeviceOffset::first(0),
                width: Byte,
                value: 0x34
            },
            Access::Write {
                at: DeviceOffset::first(1),
                width: Word,
                value: 0xbeef
            },
            Access::Write {
                at: DeviceOffset::first(0),
                width: Dword,
                value: 0x2345_6789
            },
        ]
    );
}

#[test]
fn mmio_reaches_the_scratch_registers_of_an_emu_devices_entry() {
    const BASE: u64 = 0xfeb0_0000;
    let mut config = config(1);
    config.emu_devices = vec![emu("scratch", BASE, 0x1000, EmulatedDeviceType::Dummy)];
    let hal = TestHal::new();
    let vcpu = hal.vcpu(0);
    vcpu.state().mmio_dest = u64::MAX;
    vcpu.script([
        Exit::MmioWrite {
            addr: gpa(BASE + 0x10),
            width: Dword,
            data: 0xffff_ffff_8765_4321,
        },
        Exit::MmioRead {
            addr: gpa(BASE + 0x10),
            width: Dword,
        },
    ]);
    let vm = booted_vm(
        config,
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![]),
    );

    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
    assert_eq!(vcpu.state().mmio_dest, 0x8765_4321, "MOV r32 zero-extends");
    let scratch = vm
        .devices()
        .find(DeviceSpace::Mmio, BASE + 0x10)
        .expect("claimed");
    assert_eq!(scratch.name(), "scratch");
    assert_eq!(
        scratch
            .handle_read(DeviceOffset::first(0x10), Qword)
            .unwrap(),
        0x8765_4321
    );

    // MOVSX of the byte 0x87 sign-extends; MOV r16 keeps the register's upper bits.
    vcpu.state().mmio_extension = LoadExtension::Sign;
    vcpu.script([Exit::MmioRead {
        addr: gpa(BASE + 0x13),
        width: Byte,
    }]);
    vm.run_vcpu(0).unwrap();
    assert_eq!(vcpu.state().mmio_dest, 0xffff_ffff_ffff_ff87);
    {
        let mut state = vcpu.state();
        state.mmio_extension = LoadExtension::Keep;
        state.mmio_dest = 0x1111_2222_3333_4444;
    }
    vcpu.script([Exit::MmioRead {
        addr: gpa(BASE + 0x10),
        width: Word,
    }]);
    vm.run_vcpu(0).unwrap();
    assert_eq!(vcpu.state().mmio_dest, 0x1111_2222_3333_4321);
}

#[test]
fn msr_reads_land_in_edx_eax_and_writes_reach_the_sysreg_device() {
    let (log, msrs) = Recorder::new("msrs", DeviceRange::sysreg(0x4000_0000, 0x100))
        .reads(0x1_4158_564d)
        .build();
    let hal = TestHal::new();
    let vcpu = hal.vcpu(0);
    {
        let mut state = vcpu.state();
        state.rax = u64::MAX;
        state.rdx = u64::MAX;
    }
    vcpu.script([
        Exit::SysRegRead { addr: 0x4000_0001 },
        Exit::SysRegWrite {
            addr: 0x4000_0002,
            value: 0xaaaa_bbbb_cccc_dddd,
        },
    ]);
    let vm = booted_vm(
        config(1),
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![msrs]),
    );

    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Halt);
    let state = vcpu.state();
    assert_eq!(
        (state.rdx, state.rax),
        (0x1, 0x4158_564d),
        "EDX:EAX, each zero-extended"
    );
    assert_eq!(
        log_of(&log),
        [
            Access::Read {
                at: DeviceOffset::first(1),
                width: Qword
            },
            Access::Write {
                at: DeviceOffset::first(2),
                width: Qword,
                value: 0xaaaa_bbbb_cccc_dddd
            },
        ]
    );
}

#[test]
fn a_stop_vm_write_stops_the_vm_and_returns_system_down() {
    let (_, exit_port) = Recorder::new("exit", DeviceRange::port(0x501, 1))
        .on_write(WriteOutcome::StopVm { exit_status: 3 })
        .build();
    let hal = TestHal::new();
    let vcpu = hal.vcpu(0);
    vcpu.script([
        io_write(0x501, Byte, 3),
        Exit::Hypercall {
            nr: 1,
            args: [0; 6],
        },
    ]);
    let vm = booted_vm(
        config(1),
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![exit_port]),
    );

    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::SystemDown);
    assert_eq!(vm.exit_status(), Some(3));
    assert!(matches!(
        vm.status(),
        VMStatus::Stopping | VMStatus::Stopped
    ));
    assert_eq!(vm.status(), VMStatus::Stopped, "no vCPU runs any more");
    assert_eq!(
        vcpu.remaining(),
        1,
        "the guest did not run after the exit write"
    );
    let runs = vcpu.state().runs;
    assert_eq!(vm.run_vcpu(0).unwrap(), Exit::Interrupted);
    assert_eq!(
        vcpu.state().runs,
        runs,
        "a stopped VM does not enter the guest"
    );
}
