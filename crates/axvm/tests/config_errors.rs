//! Config validation: each config that cannot work is refused with the `ConfigError::field()`
//! the user has to fix (regions, entry points, image placement, vCPU lists, emulated and
//! pass-through devices, unknown device types), before any host resource is touched; and
//! no config, however absurd, makes validation or `AxVM::new` panic.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use axvm::device::{DeviceRange, UnclaimedAccessPolicy};
use axvm::{AxVM, AxVMConfig, AxVMError, ConfigError, EmulatedDeviceType, MappingFlags};
use common::configs::{config, config_with_regions, device_set, emu, gpa, passthrough, ram};
use common::devices::Recorder;
use common::TestHal;

use EmulatedDeviceType::Dummy;

/// The field of the first problem, asserting there is one.
fn refused_field(config: &AxVMConfig) -> String {
    let err = config.validate().expect_err("config should be refused");
    err.field()
        .expect("a validation error names its field")
        .to_string()
}

/// The fields of every problem.
fn problem_fields(config: &AxVMConfig) -> Vec<String> {
    config
        .problems()
        .iter()
        .map(|p| p.field().unwrap().to_string())
        .collect()
}

#[test]
fn the_base_config_is_valid() {
    assert_eq!(config(2).validate(), Ok(()));
    assert!(config(2).problems().is_empty());
}

#[test]
fn overlapping_memory_regions_name_the_later_one() {
    let config = config_with_regions(1, vec![ram(0, 0x10_0000), ram(0x8_0000, 0x10_0000)]);
    assert_eq!(refused_field(&config), "kernel.memory_regions[1]");
    let message = config.validate().unwrap_err().to_string();
    assert!(
        message.contains("overlaps kernel.memory_regions[0]"),
        "{message}"
    );

    let adjacent = config_with_regions(1, vec![ram(0, 0x10_0000), ram(0x10_0000, 0x1000)]);
    assert_eq!(adjacent.validate(), Ok(()), "touching is not overlapping");
}

#[test]
fn ram_with_the_device_flag_is_refused() {
    let mut region = ram(0, 0x10_0000);
    region.flags = region.flags | MappingFlags::DEVICE;
    let config = config_with_regions(1, vec![region]);
    assert_eq!(refused_field(&config), "kernel.memory_regions[0]");
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("DEVICE"));
}

#[test]
fn unaligned_zero_sized_and_wrapping_regions_are_refused() {
    let unaligned_start = config_with_regions(1, vec![ram(0, 0x10_0000), ram(0x20_0800, 0x1000)]);
    assert_eq!(refused_field(&unaligned_start), "kernel.memory_regions[1]");
    let unaligned_size = config_with_regions(1, vec![ram(0, 0x10_0800)]);
    assert_eq!(refused_field(&unaligned_size), "kernel.memory_regions[0]");

    let empty = config_with_regions(1, vec![ram(0, 0x10_0000), ram(0x20_0000, 0)]);
    assert_eq!(refused_field(&empty), "kernel.memory_regions[1]");
    assert!(empty.validate().unwrap_err().to_string().contains("size 0"));

    let wrapping = config_with_regions(
        1,
        vec![ram(0, 0x10_0000), ram(0xffff_ffff_ffff_f000, 0x2000)],
    );
    assert_eq!(refused_field(&wrapping), "kernel.memory_regions[1]");
    assert!(wrapping
        .validate()
        .unwrap_err()
        .to_string()
        .contains("wraps"));
}

#[test]
fn an_entry_point_outside_ram_is_refused_once() {
    let mut config = config(2);
    config.cpu_config.bsp_entry = gpa(0x10_0000); // one past the end of RAM
    config.cpu_config.ap_entry = gpa(0x10_0000);
    assert_eq!(problem_fields(&config), ["kernel.entry_point"]);

    config.cpu_config.bsp_entry = gpa(0xf_ffff);
    assert_eq!(problem_fields(&config), ["kernel.entry_point (AP entry)"]);

    let mut single = common::configs::config(1);
    single.cpu_config.ap_entry = gpa(0x4000_0000);
    assert_eq!(single.validate(), Ok(()), "no AP runs the AP entry");
}

#[test]
fn an_image_that_does_not_fit_its_region_is_refused() {
    let config = config(1); // RAM 0..0x10_0000
    let field = "kernel.kernel_load_addr";
    assert_eq!(
        config.check_image_fits(field, gpa(0xf_f000), 0x1000),
        Ok(())
    );
    assert_eq!(config.check_image_fits(field, gpa(0), 0x10_0000), Ok(()));

    let err = config
        .check_image_fits(field, gpa(0xf_f000), 0x1001)
        .unwrap_err();
    assert_eq!(err.field(), Some(field));
    let message = err.to_string();
    assert!(
        message.contains("kernel.memory_regions[0]") && message.contains("0x1 bytes short"),
        "{message}"
    );

    let outside = config.check_image_fits("kernel.bios_load_addr", gpa(0x10_0000), 1);
    assert_eq!(outside.unwrap_err().field(), Some("kernel.bios_load_addr"));
    let huge = config.check_image_fits(field, gpa(0x1000), u64::MAX);
    assert_eq!(huge.unwrap_err().field(), Some(field));
}

#[test]
fn vcpu_lists_longer_than_cpu_num_are_refused() {
    let mut ids = config(2);
    ids.phys_cpu_ids = Some(vec![0, 1, 2]);
    assert_eq!(refused_field(&ids), "base.phys_cpu_ids");
    ids.phys_cpu_ids = Some(vec![0, 1]);
    assert_eq!(ids.validate(), Ok(()));

    let mut sets = config(1);
    sets.phys_cpu_sets = Some(vec![0b1, 0b10]);
    assert_eq!(refused_field(&sets), "base.phys_cpu_sets");
    let message = sets.validate().unwrap_err().to_string();
    assert!(
        message.contains("2 entries") && message.contains("base.cpu_num is 1"),
        "{message}"
    );
}

#[test]
fn zero_vcpus_are_refused() {
    assert_eq!(refused_field(&config(0)), "base.cpu_num");
}

#[test]
fn more_vcpus_than_apic_ids_are_refused() {
    assert!(config(axvm::config::MAX_CPU_NUM).validate().is_ok());
    assert_eq!(
        refused_field(&config(axvm::config::MAX_CPU_NUM + 1)),
        "base.cpu_num"
    );
}

#[test]
fn an_emulated_device_overlapping_ram_is_refused() {
    let mut config = config(1);
    config.emu_devices = vec![emu("uart", 0xf_f000, 0x2000, Dummy)];
    assert_eq!(refused_field(&config), "devices.emu_devices[0] (uart)");
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("kernel.memory_regions[0]"));
}

#[test]
fn overlapping_emulated_devices_are_refused() {
    let mut config = config(1);
    config.emu_devices = vec![
        emu("a", 0xfeb0_0000, 0x1000, Dummy),
        emu("b", 0xfeb0_0ff0, 0x20, Dummy),
    ];
    assert_eq!(refused_field(&config), "devices.emu_devices[1] (b)");
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("devices.emu_devices[0] (a)"));

    config.emu_devices[1].base_gpa = gpa(0xfeb0_1000);
    assert_eq!(config.validate(), Ok(()));
    config.emu_devices[1].length = 0;
    assert_eq!(refused_field(&config), "devices.emu_devices[1] (b)");
}

#[test]
fn an_empty_or_wrapping_pass_through_device_is_refused() {
    let mut config = config(1);
    config.pass_through_devices = vec![passthrough("hpet", 0xfed0_0000, 0xfed0_0000, 0)];
    assert_eq!(
        refused_field(&config),
        "devices.passthrough_devices[0] (hpet)"
    );
    config.pass_through_devices = vec![passthrough("hi", 0x1000, u64::MAX - 0x10, 0x1000)];
    assert_eq!(
        refused_field(&config),
        "devices.passthrough_devices[0] (hi)"
    );
}

#[test]
fn problems_lists_every_problem_in_field_order() {
    let mut config = config_with_regions(0, vec![ram(0, 0x1800), ram(0x2000, 0)]);
    config.cpu_config.bsp_entry = gpa(0x40_0000);
    config.emu_devices = vec![emu("rtc", 0x1000, 0x10, Dummy)];
    assert_eq!(
        problem_fields(&config),
        [
            "base.cpu_num",
            "kernel.memory_regions[0]",
            "kernel.memory_regions[1]",
            "kernel.entry_point",
            "devices.emu_devices[0] (rtc)",
        ]
    );
}

fn new_vm_err(
    config: AxVMConfig,
    hal: &TestHal,
    devices: axvm::device::AxVmDevices,
) -> ConfigError {
    match AxVM::new(config, hal.clone(), devices) {
        Err(AxVMError::Config(err)) => err,
        Err(other) => panic!("expected a config error, got {other:?}"),
        Ok(_) => panic!("expected a config error, got a VM"),
    }
}

#[test]
fn an_emu_type_axvm_does_not_emulate_is_refused_by_vm_creation() {
    // Known types the host did not provide a device for; an unknown one becomes Dummy, as in
    // the ArceOS hypervisor.
    for emu_type in [
        EmulatedDeviceType::VirtioConsole,
        EmulatedDeviceType::GPPTDistributor,
    ] {
        let mut config = config(1);
        config.emu_devices = vec![
            emu("scratch", 0xfeb0_0000, 0x100, Dummy),
            emu("blk", 0xfeb1_0000, 0x200, emu_type),
        ];
        assert_eq!(
            config.validate(),
            Ok(()),
            "the type is checked by AxVM::new"
        );
        let hal = TestHal::new();
        let err = new_vm_err(
            config,
            &hal,
            device_set(UnclaimedAccessPolicy::Error, vec![]),
        );
        assert_eq!(err.field(), Some("devices.emu_devices[1] (blk)"));
        assert!(err.to_string().contains(&emu_type.to_string()), "{err}");
        assert!(
            hal.state().alloc_calls.is_empty() && hal.maps().is_empty(),
            "host untouched"
        );
    }
}

#[test]
fn an_emulated_device_overlapping_a_platform_device_is_refused() {
    let mut config = config(1);
    config.emu_devices = vec![emu("scratch", 0xfeb0_0000, 0x1000, Dummy)];
    let (_, platform) = Recorder::new("vga", DeviceRange::mmio(0xfeb0_0800, 0x10)).build();
    let hal = TestHal::new();
    let err = new_vm_err(
        config,
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![platform]),
    );
    assert_eq!(err.field(), Some("devices.emu_devices[0] (scratch)"));
    assert!(err.to_string().contains("vga"), "{err}");
}

#[test]
fn an_invalid_config_touches_no_host_resource() {
    let hal = TestHal::new();
    let config = config_with_regions(1, vec![ram(0, 0x10_0000), ram(0x8_0000, 0x1000)]);
    let err = new_vm_err(
        config,
        &hal,
        device_set(UnclaimedAccessPolicy::Error, vec![]),
    );
    assert_eq!(err.field(), Some("kernel.memory_regions[1]"));
    let state = hal.state();
    assert!(
        state.alloc_calls.is_empty() && state.maps.is_empty() && state.created_vcpus.is_empty()
    );
}

/// Configs with every number at an extreme.
fn absurd_configs() -> Vec<AxVMConfig> {
    let extremes = [
        0,
        1,
        0xfff,
        0x1000,
        u64::MAX - 0xfff,
        u64::MAX - 1,
        u64::MAX,
    ];
    let mut configs = Vec::new();
    for &a in &extremes {
        for &b in &extremes {
            let mut config = config_with_regions(1, vec![ram(a, b), ram(b, a)]);
            config.cpu_config.bsp_entry = gpa(a);
            config.cpu_config.ap_entry = gpa(b);
            config.emu_devices = vec![emu("e", a, b, Dummy), emu("f", b, a, Dummy)];
            config.pass_through_devices =
                vec![passthrough("p", a, b, a), passthrough("q", b, b, b)];
            config.phys_cpu_ids = Some(vec![usize::MAX; 3]);
            configs.push(config);
        }
    }
    configs
}

#[test]
fn no_config_makes_validation_or_vm_creation_panic() {
    for config in absurd_configs() {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let problems = config.problems();
            assert_eq!(config.validate().is_err(), !problems.is_empty());
            for (g, len) in [(0, u64::MAX), (u64::MAX, 1), (u64::MAX, 0)] {
                let _ = config.check_image_fits("kernel.kernel_load_addr", gpa(g), len);
            }
            let mut one_cpu = config.clone();
            one_cpu.phys_cpu_ids = None;
            let hal = TestHal::new();
            let devices = device_set(UnclaimedAccessPolicy::Ignore, vec![]);
            if let Ok(vm) = AxVM::new(one_cpu, hal.clone(), devices) {
                let vm: Arc<AxVM<TestHal>> = vm;
                let _ = vm.read_from_guest_of::<u64>(gpa(u64::MAX));
            }
        }));
        assert!(outcome.is_ok(), "panicked on {config:#?}");
    }
}
