//! Config files in the ArceOS hypervisor's TOML format (`AxVMCrateConfig::from_toml`): a
//! full x86_64 config parses into the expected `AxVMConfig`; unknown keys and wrong types
//! are refused with their line; unknown flag bits, map types and interrupt modes name their
//! field; the ArceOS aliases and hex with underscores are accepted; and no text, however
//! broken, makes the parser panic.

use axvm::config::toml::AxVMCrateConfig;
use axvm::config::{DeviceBackend, MacAddress, NetBackend};
use axvm::{
    AxVCpuConfig, AxVMConfig, ConfigError, GuestPhysAddr, HostPhysAddr, MappingFlags,
    PassThroughDeviceConfig, VMImageConfig, VMInterruptMode, VmMemConfig, VmMemMappingType,
};

/// The x86_64 NimbOS config of the ArceOS hypervisor, comments and all.
const ARCEOS_X86_64: &str = r#"
# Vm base info configs
#
[base]
# Guest vm id.
id = 1
# Guest vm name.
name = "nimbos"
# Virtualization type.
vm_type = 1
# The number of virtual CPUs.
cpu_num = 1
# Guest vm physical cpu sets.
phys_cpu_sets = [1]

#
# Vm kernel configs
#
[kernel]
# The entry point of the kernel image.
entry_point = 0x8000
# The location of image: "memory" | "fs".
image_location = "fs"
# The file path of the BIOS image.
bios_path = "axvm-bios.bin"
# The load address of the BIOS image.
bios_load_addr = 0x8000
# The file path of the kernel image.
kernel_path = "nimbos.bin"
# The load address of the kernel image.
kernel_load_addr = 0x20_0000
# The file path of the device tree blob (DTB).
#dtb_path = "path/aarch64-dtb.bin"
# The load address of the device tree blob (DTB).
#dtb_load_addr = 0x4000_0000

# Memory regions with format (`base_paddr`, `size`, `flags`, `map_type`).
# For `map_type`, 0 means `MAP_ALLOC`, 1 means `MAP_IDENTICAL`.
memory_regions = [
    [0x0000_0000, 0x100_0000, 0x7, 0], # Low RAM 16M 0b111 R|W|EXECUTE
]

#
# Device specifications
#
[devices]
# The interrupt mode.
interrupt_mode = "passthrough"

# Emu_devices.
# Name Base-Ipa Ipa_len Alloc-Irq Emu-Type EmuConfig.
emu_devices = [
]

# Pass-through devices.
# Name Base-Ipa Base-Pa Length Alloc-Irq.
passthrough_devices = [
    [
        "IO APIC",
        0xfec0_0000,
        0xfec0_0000,
        0x1000,
        0x1,
    ],
    [
        "Local APIC",
        0xfee0_0000,
        0xfee0_0000,
        0x1000,
        0x1,
    ],
    [
        "HPET",
        0xfed0_0000,
        0xfed0_0000,
        0x1000,
        0x1,
    ],
]
"#;

/// A minimal valid file; `base_extra`, `kernel_extra` and `devices` are spliced in.
fn file(base_extra: &str, kernel_extra: &str, devices: &str) -> String {
    format!(
        "[base]\nid = 1\nname = \"t\"\ncpu_num = 1\n{base_extra}\n\
         [kernel]\nentry_point = 0x8000\nkernel_path = \"k.bin\"\nkernel_load_addr = 0x8000\n\
         {kernel_extra}\n[devices]\n{devices}\n"
    )
}

fn with_regions(regions: &str) -> String {
    file("", &format!("memory_regions = {regions}"), "")
}

fn with_interrupt_mode(mode: &str) -> String {
    file(
        "",
        "memory_regions = [[0, 0x10_0000, 0x7, 0]]",
        &format!("interrupt_mode = \"{mode}\""),
    )
}

fn parse(text: &str) -> Result<AxVMConfig, ConfigError> {
    AxVMCrateConfig::from_toml(text)?.into_vm_config()
}

fn parse_error(text: &str) -> (usize, String) {
    match AxVMCrateConfig::from_toml(text) {
        Err(ConfigError::Parse { line, message, .. }) => (line, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

fn pass_through(name: &str, addr: u64) -> PassThroughDeviceConfig {
    PassThroughDeviceConfig {
        name: name.into(),
        base_gpa: GuestPhysAddr::new(addr),
        base_hpa: HostPhysAddr::new(addr),
        length: 0x1000,
        irq_id: 1,
    }
}

#[test]
fn the_arceos_x86_64_config_parses_into_the_expected_vm_config() {
    let file = AxVMCrateConfig::from_toml(ARCEOS_X86_64).unwrap();
    assert_eq!(file.kernel.kernel_path, "nimbos.bin");
    assert_eq!(file.kernel.bios_path.as_deref(), Some("axvm-bios.bin"));
    assert_eq!(file.kernel.image_location.as_deref(), Some("fs"));

    let expected = AxVMConfig {
        id: 1,
        name: "nimbos".into(),
        vm_type: 1,
        cpu_num: 1,
        phys_cpu_ids: None,
        phys_cpu_sets: Some(vec![1]),
        cpu_config: AxVCpuConfig {
            bsp_entry: GuestPhysAddr::new(0x8000),
            ap_entry: GuestPhysAddr::new(0x8000),
        },
        image_config: VMImageConfig {
            kernel_load_gpa: GuestPhysAddr::new(0x20_0000),
            bios_load_gpa: Some(GuestPhysAddr::new(0x8000)),
            dtb_load_gpa: None,
            ramdisk_load_gpa: None,
        },
        cmdline: None,
        memory_regions: vec![VmMemConfig {
            gpa: GuestPhysAddr::new(0),
            size: 0x100_0000,
            flags: MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE,
            map_type: VmMemMappingType::MapAlloc,
        }],
        emu_devices: vec![],
        pass_through_devices: vec![
            pass_through("IO APIC", 0xfec0_0000),
            pass_through("Local APIC", 0xfee0_0000),
            pass_through("HPET", 0xfed0_0000),
        ],
        interrupt_mode: VMInterruptMode::Passthrough,
    };
    assert_eq!(file.into_vm_config().unwrap(), expected);
}

#[test]
fn an_unknown_key_is_refused_with_its_line_and_name() {
    let text = file("cpu_nmu = 2", "memory_regions = []", "");
    let (line, message) = parse_error(&text);
    assert_eq!(line, 5, "{message}");
    assert!(message.contains("cpu_nmu"), "{message}");

    let text = file("", "memory_regions = []", "emu_device = []");
    let (line, message) = parse_error(&text);
    assert_eq!(line, 12, "{message}");
    assert!(message.contains("emu_device"), "{message}");
}

#[test]
fn a_value_of_the_wrong_type_is_refused_with_its_line() {
    let text = "[base]\nid = 1\nname = \"t\"\ncpu_num = \"2\"\n[kernel]\nentry_point = 0\n";
    let (line, message) = parse_error(text);
    assert_eq!(line, 4);
    assert!(
        message.contains("string") && message.contains("usize"),
        "{message}"
    );

    let text = with_regions("[[0, 0x1000, 0x7]]");
    let (line, message) = parse_error(&text);
    assert_eq!(line, 10, "{message}");
    assert!(message.contains("invalid length 3"), "{message}");
}

#[test]
fn a_memory_region_row_with_an_extra_column_is_refused() {
    // A fifth column has no meaning; accepting it would silently drop what the user wrote.
    let text = with_regions("[\n  [0, 0x10_0000, 0x7, 0],\n  [0x10_0000, 0x1000, 0x7, 0, 1],\n]");
    let (line, message) = parse_error(&text);
    assert_eq!(line, 12, "{message}");
    assert!(message.contains("invalid length 5"), "{message}");
}

#[test]
fn device_rows_with_an_extra_column_are_refused() {
    let memory = "memory_regions = [[0, 0x10_0000, 0x7, 0]]";
    let emu = "emu_devices = [[\"scratch\", 0xfeb0_0000, 0x1000, 0, 0x0, [], 9]]";
    let (line, message) = parse_error(&file("", memory, emu));
    assert_eq!(line, 12, "{message}");
    assert!(message.contains("invalid length 7"), "{message}");

    let pt = "passthrough_devices = [[\"HPET\", 0xfed0_0000, 0xfed0_0000, 0x1000, 0x1, 0x2]]";
    let (line, message) = parse_error(&file("", memory, pt));
    assert_eq!(line, 12, "{message}");
    assert!(message.contains("invalid length 6"), "{message}");

    // Optional trailing columns may still be left out.
    let short = "emu_devices = [[\"scratch\", 0xfeb0_0000, 0x1000, 0, 0x0]]\n\
                 passthrough_devices = [[\"HPET\", 0xfed0_0000, 0xfed0_0000, 0x1000]]";
    let config = parse(&file("", memory, short)).unwrap();
    assert!(config.emu_devices[0].cfg_list.is_empty());
    assert_eq!(config.pass_through_devices[0].irq_id, 0);
}

#[test]
fn unknown_flag_bits_and_map_types_name_the_region() {
    let err = parse(&with_regions(
        "[[0, 0x10_0000, 0x7, 0], [0x20_0000, 0x1000, 0x47, 0]]",
    ))
    .unwrap_err();
    assert_eq!(err.field(), Some("kernel.memory_regions[1]"));
    assert!(err.to_string().contains("0x47"), "{err}");

    let err = parse(&with_regions("[[0, 0x10_0000, 0x7, 3]]")).unwrap_err();
    assert_eq!(err.field(), Some("kernel.memory_regions[0]"));
    assert!(err.to_string().contains("map_type 3"), "{err}");

    let config = parse(&with_regions(
        "[[0, 0x10_0000, 0x7, 1], [0x20_0000, 0x1000, 0x5, 2]]",
    ))
    .unwrap();
    let map_types: Vec<_> = config.memory_regions.iter().map(|r| r.map_type).collect();
    assert_eq!(
        map_types,
        [
            VmMemMappingType::MapIdentical,
            VmMemMappingType::MapReserved
        ]
    );
}

#[test]
fn interrupt_modes_accept_the_arceos_aliases_and_refuse_others() {
    let cases = [
        ("no_irq", VMInterruptMode::NoIrq),
        ("no", VMInterruptMode::NoIrq),
        ("none", VMInterruptMode::NoIrq),
        ("emu", VMInterruptMode::Emulated),
        ("emulated", VMInterruptMode::Emulated),
        ("passthrough", VMInterruptMode::Passthrough),
        ("pt", VMInterruptMode::Passthrough),
    ];
    for (name, mode) in cases {
        assert_eq!(
            parse(&with_interrupt_mode(name)).unwrap().interrupt_mode,
            mode,
            "{name}"
        );
    }
    let err = parse(&with_interrupt_mode("msi")).unwrap_err();
    assert_eq!(err.field(), Some("devices.interrupt_mode"));
    assert!(err.to_string().contains("\"msi\""), "{err}");

    let without = file("", "memory_regions = [[0, 0x10_0000, 0x7, 0]]", "");
    assert_eq!(
        parse(&without).unwrap().interrupt_mode,
        VMInterruptMode::NoIrq
    );
}

#[test]
fn hex_numbers_with_underscores_are_accepted() {
    let config = parse(&with_regions(
        "[[0x0, 0x100_0000, 0x7, 0], [0x1_0000_0000, 0x10_0000, 0b11, 0o0]]",
    ))
    .unwrap();
    assert_eq!(config.memory_regions[0].size, 0x100_0000);
    assert_eq!(
        config.memory_regions[1].gpa,
        GuestPhysAddr::new(0x1_0000_0000)
    );
    assert_eq!(
        config.memory_regions[1].flags,
        MappingFlags::READ | MappingFlags::WRITE
    );
}

#[test]
fn emu_devices_and_passthrough_addresses_are_converted() {
    let devices = "emu_devices = [[\"scratch\", 0xfeb0_0000, 0x1000, 0, 0x0, [1, 2]], [\"blk\", 0xfeb1_0000, 0x200, 33, 0xE1]]\n\
                   passthrough_addresses = [{ base_gpa = 0xfe00_0000, length = 0x2000 }]\n\
                   [devices.backends]\n\
                   blk = { path = \"disk.img\", read_only = true }";
    let text = file("", "memory_regions = [[0, 0x10_0000, 0x7, 0]]", devices);
    let config = parse(&text).unwrap();
    let emu = &config.emu_devices;
    assert_eq!(emu[0].emu_type, axvm::EmulatedDeviceType::Dummy);
    assert_eq!(emu[0].cfg_list, [1, 2]);
    assert_eq!(
        (emu[1].emu_type, emu[1].irq_id),
        (axvm::EmulatedDeviceType::VirtioBlk, 33)
    );
    assert_eq!(
        emu[1].backend,
        Some(DeviceBackend::Disk {
            path: "disk.img".into(),
            read_only: true
        })
    );
    let pt = &config.pass_through_devices[0];
    assert_eq!(pt.name, "passthrough_addresses[0]");
    assert_eq!(
        (pt.base_gpa.as_u64(), pt.base_hpa.as_u64(), pt.length),
        (0xfe00_0000, 0xfe00_0000, 0x2000)
    );
}

#[test]
fn validation_errors_of_a_parsed_file_name_the_field() {
    let text = file("", "memory_regions = [[0x10_0000, 0x10_0000, 0x7, 0]]", "");
    let err = parse(&text).unwrap_err();
    assert_eq!(
        err.field(),
        Some("kernel.entry_point"),
        "entry 0x8000 is not in RAM"
    );
    let unchecked = AxVMCrateConfig::from_toml(&text)
        .unwrap()
        .to_vm_config_unchecked();
    assert!(
        unchecked.is_ok(),
        "only meaningless values are refused unchecked"
    );
}

#[test]
fn no_text_makes_the_parser_panic() {
    let mut texts: Vec<String> = (0..=ARCEOS_X86_64.len())
        .filter(|&end| ARCEOS_X86_64.is_char_boundary(end))
        .map(|end| ARCEOS_X86_64[..end].to_string())
        .collect();
    texts.extend(
        [
            "",
            "[",
            "[base",
            "\u{0}",
            "[base]\nid = -1",
            "x = 0x",
            "[[base]]",
            "[kernel]\nentry_point = 1e400",
        ]
        .map(String::from),
    );
    texts.push(ARCEOS_X86_64.replace("0x1000,", "0xffff_ffff_ffff_ffff,"));
    texts.push(ARCEOS_X86_64.replace("0x7, 0]", "0xffff_ffff_ffff_ffff, 0xffff_ffff_ffff_ffff]"));
    for text in &texts {
        let outcome = std::panic::catch_unwind(|| {
            if let Ok(file) = AxVMCrateConfig::from_toml(text) {
                let _ = file.to_vm_config_unchecked();
                let _ = file.into_vm_config();
            }
        });
        assert!(outcome.is_ok(), "panicked on:\n{text}");
    }
}

/// A config with `rows` as its emu_devices, `backends` as its `[devices.backends]` table and
/// `kernel_extra` in its `[kernel]` table.
fn with_backends(rows: &str, backends: &str, kernel_extra: &str) -> String {
    file(
        "",
        &format!("memory_regions = [[0, 0x10_0000, 0x7, 0]]\n{kernel_extra}"),
        &format!("emu_devices = [{rows}]\n[devices.backends]\n{backends}"),
    )
}

const VIRTIO_ROWS: &str = "[\"vda\", 0xd000_0000, 0x1000, 5, 0xE1, []], \
                           [\"vdb\", 0xd000_1000, 0x1000, 6, 0xE1, []], \
                           [\"net0\", 0xd000_2000, 0x1000, 7, 0xE2, []], \
                           [\"hvc0\", 0xd000_3000, 0x1000, 10, 0xE3, []]";

#[test]
fn backends_attach_to_their_rows_and_disk_path_is_the_first_disk() {
    let text = with_backends(
        VIRTIO_ROWS,
        "vdb = { path = \"data.img\" }\nnet0 = { net = \"switch:lan\", mac = \"52:54:00:00:00:07\" }",
        "disk_path = \"root.img\"",
    );
    let config = parse(&text).unwrap();
    let backend = |index: usize| config.emu_devices[index].backend.clone();
    let disk = |path: &str| DeviceBackend::Disk {
        path: path.into(),
        read_only: false,
    };
    assert_eq!(backend(0), Some(disk("root.img")), "kernel.disk_path");
    assert_eq!(backend(1), Some(disk("data.img")));
    assert_eq!(
        backend(2),
        Some(DeviceBackend::Net {
            network: NetBackend::Switch("lan".into()),
            mac: Some(MacAddress::new([0x52, 0x54, 0, 0, 0, 7])),
        })
    );
    assert_eq!(backend(3), None, "a console needs none");
}

#[test]
fn bad_backends_are_refused_with_the_field_named() {
    let cases = [
        (
            "vdc = { path = \"x.img\" }",
            "devices.backends.vdc",
            "names no emu_devices row",
        ),
        (
            "net0 = { net = \"bridge:br0\" }",
            "devices.backends.net0",
            "\"tap:NAME\"",
        ),
        (
            "net0 = { net = \"tap:a/b\" }",
            "devices.backends.net0",
            "interface name",
        ),
        (
            "net0 = { net = \"switch:lan\", mac = \"01:00:00:00:00:01\" }",
            "devices.backends.net0",
            "multicast",
        ),
        (
            "vda = { path = \"a.img\", net = \"switch:lan\" }",
            "devices.backends.vda",
            "exactly one",
        ),
        (
            "vda = { path = \"a.img\", mac = \"52:54:00:00:00:01\" }",
            "devices.backends.vda",
            "no `mac`",
        ),
    ];
    for (backends, field, words) in cases {
        let text = with_backends(VIRTIO_ROWS, backends, "");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field(), Some(field), "{backends}: {err}");
        assert!(err.to_string().contains(words), "{backends}: {err}");
    }
}

#[test]
fn virtio_devices_without_the_backend_they_need_are_refused() {
    let cases = [
        ("", "devices.emu_devices[0] (vda)", "needs a disk"),
        ("vda = { path = \"a.img\" }\nvdb = { path = \"b.img\" }", "devices.emu_devices[2] (net0)", "needs a network"),
        ("vda = { net = \"switch:lan\" }", "devices.emu_devices[0] (vda)", "gives a network"),
        ("vda = { path = \"a.img\" }\nvdb = { path = \"b.img\" }\nnet0 = { net = \"switch:x\" }\nhvc0 = { path = \"c.img\" }", "devices.emu_devices[3] (hvc0)", "takes no backend"),
    ];
    for (backends, field, words) in cases {
        let text = with_backends(VIRTIO_ROWS, backends, "");
        let err = parse(&text).unwrap_err();
        assert_eq!(err.field(), Some(field), "{backends}: {err}");
        assert!(err.to_string().contains(words), "{backends}: {err}");
    }
}

#[test]
fn a_virtio_window_too_small_for_its_registers_is_refused() {
    let rows = "[\"hvc0\", 0xd000_0000, 0x100, 10, 0xE3, []]";
    let err = parse(&with_backends(rows, "", "")).unwrap_err();
    assert_eq!(err.field(), Some("devices.emu_devices[0] (hvc0)"));
    assert!(err.to_string().contains("at least 0x200"), "{err}");
}
