//! The generated blob parsed back with an independent reader (the `fdt` crate).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use super::*;
use crate::layout::{vcpu_mpidr, GIC_REDIST_BASE, GIC_REDIST_SIZE_PER_CPU};

fn spec(vcpus: usize, gic: GicVersion) -> FdtSpec {
    FdtSpec {
        vcpus,
        ram: vec![(0x4000_0000, 0x2000_0000)],
        gic,
        bootargs: None,
        initrd: None,
        psci_1_0: false,
    }
}

/// A parsed tree, with helpers that read properties as the binding's cells.
struct Tree(Vec<u8>);

impl Tree {
    fn of(spec: &FdtSpec) -> Self {
        Self(generate_fdt(spec).unwrap())
    }

    fn parsed(&self) -> ::fdt::Fdt<'_> {
        ::fdt::Fdt::new(&self.0).expect("the blob parses")
    }

    fn raw(&self, path: &str, name: &str) -> Option<Vec<u8>> {
        let tree = self.parsed();
        let node = tree.find_node(path)?;
        node.property(name).map(|property| property.value.to_vec())
    }

    fn prop(&self, path: &str, name: &str) -> Vec<u8> {
        self.raw(path, name)
            .unwrap_or_else(|| panic!("{path} has no property {name}"))
    }

    fn u32s(&self, path: &str, name: &str) -> Vec<u32> {
        self.prop(path, name)
            .chunks(4)
            .map(|cell| u32::from_be_bytes(cell.try_into().unwrap()))
            .collect()
    }

    fn u64s(&self, path: &str, name: &str) -> Vec<u64> {
        self.prop(path, name)
            .chunks(8)
            .map(|pair| u64::from_be_bytes(pair.try_into().unwrap()))
            .collect()
    }

    fn strings(&self, path: &str, name: &str) -> Vec<String> {
        let value = self.prop(path, name);
        value
            .split(|byte| *byte == 0)
            .filter(|part| !part.is_empty())
            .map(|part| String::from_utf8(part.to_vec()).unwrap())
            .collect()
    }

    fn children(&self, path: &str) -> Vec<String> {
        let tree = self.parsed();
        let node = tree.find_node(path).unwrap();
        node.children().map(|child| child.name.into()).collect()
    }
}

#[test]
fn the_root_is_a_dummy_virt_with_two_cells_and_the_gic_as_parent() {
    let tree = Tree::of(&spec(1, GicVersion::V3));
    assert_eq!(tree.strings("/", "compatible"), ["linux,dummy-virt"]);
    assert_eq!(tree.u32s("/", "#address-cells"), [2]);
    assert_eq!(tree.u32s("/", "#size-cells"), [2]);
    assert_eq!(tree.u32s("/", "interrupt-parent"), [GIC_PHANDLE]);
    assert_eq!(tree.u32s("/intc@8000000", "phandle"), [GIC_PHANDLE]);
}

#[test]
fn one_psci_cpu_per_vcpu_with_its_mpidr() {
    let tree = Tree::of(&spec(20, GicVersion::V3));
    let cpus = tree.children("/cpus");
    assert_eq!(cpus.len(), 20);
    assert_eq!(cpus[0], "cpu@0");
    assert_eq!(cpus[16], "cpu@100");
    for index in [0, 5, 16, 19] {
        let path = format!("/cpus/cpu@{:x}", vcpu_mpidr(index));
        assert_eq!(tree.u32s(&path, "reg"), [vcpu_mpidr(index) as u32]);
        assert_eq!(tree.strings(&path, "device_type"), ["cpu"]);
        assert_eq!(tree.strings(&path, "compatible"), ["arm,arm-v8"]);
        assert_eq!(tree.strings(&path, "enable-method"), ["psci"]);
    }
    assert_eq!(tree.u32s("/cpus", "#address-cells"), [1]);
    assert_eq!(tree.u32s("/cpus", "#size-cells"), [0]);
}

#[test]
fn every_ram_region_has_a_memory_node() {
    let mut spec = spec(1, GicVersion::V3);
    spec.ram = vec![(0x4000_0000, 0x1000_0000), (0x1_0000_0000, 0x4000_0000)];
    let tree = Tree::of(&spec);
    assert_eq!(
        tree.u64s("/memory@40000000", "reg"),
        [0x4000_0000, 0x1000_0000]
    );
    assert_eq!(
        tree.u64s("/memory@100000000", "reg"),
        [0x1_0000_0000, 0x4000_0000]
    );
    assert_eq!(tree.strings("/memory@40000000", "device_type"), ["memory"]);
}

#[test]
fn a_gicv3_covers_one_redistributor_per_vcpu() {
    for vcpus in [1, 4, MAX_VCPUS] {
        let tree = Tree::of(&spec(vcpus, GicVersion::V3));
        assert_eq!(tree.strings("/intc@8000000", "compatible"), ["arm,gic-v3"]);
        assert_eq!(
            tree.u64s("/intc@8000000", "reg"),
            [
                0x0800_0000,
                0x1_0000,
                GIC_REDIST_BASE,
                vcpus as u64 * GIC_REDIST_SIZE_PER_CPU
            ]
        );
        assert_eq!(tree.u32s("/intc@8000000", "#interrupt-cells"), [3]);
        assert!(tree.raw("/intc@8000000", "interrupt-controller").is_some());
    }
}

#[test]
fn a_gicv2_has_its_cpu_interface_and_timer_cpu_masks() {
    let tree = Tree::of(&spec(2, GicVersion::V2));
    assert_eq!(
        tree.strings("/intc@8000000", "compatible"),
        ["arm,cortex-a15-gic"]
    );
    assert_eq!(
        tree.u64s("/intc@8000000", "reg"),
        [0x0800_0000, 0x1_0000, 0x0801_0000, 0x1_0000]
    );
    let interrupts = tree.u32s("/timer", "interrupts");
    assert_eq!(interrupts[2], 0x304, "level-high, CPUs 0 and 1");
}

#[test]
fn the_timer_has_the_four_architected_ppis() {
    let tree = Tree::of(&spec(1, GicVersion::V3));
    assert_eq!(tree.strings("/timer", "compatible"), ["arm,armv8-timer"]);
    assert_eq!(
        tree.u32s("/timer", "interrupts"),
        [1, 13, 4, 1, 14, 4, 1, 11, 4, 1, 10, 4]
    );
    assert!(tree.raw("/timer", "always-on").is_some());
}

#[test]
fn psci_is_hvc_with_1_0_only_when_asked() {
    let mut spec = spec(1, GicVersion::V3);
    let tree = Tree::of(&spec);
    assert_eq!(tree.strings("/psci", "compatible"), ["arm,psci-0.2"]);
    assert_eq!(tree.strings("/psci", "method"), ["hvc"]);
    spec.psci_1_0 = true;
    let tree = Tree::of(&spec);
    assert_eq!(
        tree.strings("/psci", "compatible"),
        ["arm,psci-1.0", "arm,psci-0.2"]
    );
}

#[test]
fn the_pl011_is_a_primecell_on_spi_1_with_its_clocks() {
    let tree = Tree::of(&spec(1, GicVersion::V3));
    let uart = "/pl011@9000000";
    assert_eq!(
        tree.strings(uart, "compatible"),
        ["arm,pl011", "arm,primecell"]
    );
    assert_eq!(tree.u64s(uart, "reg"), [0x0900_0000, 0x1000]);
    assert_eq!(tree.u32s(uart, "interrupts"), [0, 1, 4]);
    assert_eq!(
        tree.u32s(uart, "clocks"),
        [APB_PCLK_PHANDLE, APB_PCLK_PHANDLE]
    );
    assert_eq!(tree.strings(uart, "clock-names"), ["uartclk", "apb_pclk"]);
    assert_eq!(tree.u32s("/apb-pclk", "phandle"), [APB_PCLK_PHANDLE]);
    assert_eq!(tree.u32s("/apb-pclk", "clock-frequency"), [24_000_000]);
    assert_eq!(tree.strings("/apb-pclk", "compatible"), ["fixed-clock"]);
}

#[test]
fn the_exit_device_is_described() {
    let tree = Tree::of(&spec(1, GicVersion::V3));
    assert_eq!(
        tree.strings("/axvm-exit@9100000", "compatible"),
        ["axvm,exit-device"]
    );
    assert_eq!(
        tree.u64s("/axvm-exit@9100000", "reg"),
        [0x0910_0000, 0x1000]
    );
}

#[test]
fn chosen_has_the_console_and_only_what_was_given() {
    let tree = Tree::of(&spec(1, GicVersion::V3));
    assert_eq!(tree.strings("/chosen", "stdout-path"), ["/pl011@9000000"]);
    assert_eq!(tree.raw("/chosen", "bootargs"), None);
    assert_eq!(tree.raw("/chosen", "linux,initrd-start"), None);

    let mut spec = spec(1, GicVersion::V3);
    spec.bootargs = Some("console=ttyAMA0 earlycon".into());
    spec.initrd = Some((0x4800_0000, 0x4812_3456));
    let tree = Tree::of(&spec);
    assert_eq!(
        tree.strings("/chosen", "bootargs"),
        ["console=ttyAMA0 earlycon"]
    );
    assert_eq!(tree.u64s("/chosen", "linux,initrd-start"), [0x4800_0000]);
    assert_eq!(tree.u64s("/chosen", "linux,initrd-end"), [0x4812_3456]);
    assert_eq!(
        tree.parsed().chosen().bootargs(),
        Some("console=ttyAMA0 earlycon")
    );
}

#[test]
fn impossible_specs_are_refused_with_a_reason() {
    let refused = |spec: FdtSpec| match generate_fdt(&spec) {
        Err(FdtError::InvalidSpec(problem)) => problem,
        other => panic!("{spec:?} gave {other:?}"),
    };
    assert!(refused(spec(0, GicVersion::V3)).contains("0 vCPUs"));
    assert!(refused(spec(MAX_VCPUS + 1, GicVersion::V3)).contains("124 vCPUs"));
    assert!(refused(spec(9, GicVersion::V2)).contains("GICv2"));
    let mut no_ram = spec(1, GicVersion::V3);
    no_ram.ram.clear();
    assert!(refused(no_ram).contains("no RAM"));
    let mut empty = spec(1, GicVersion::V3);
    empty.ram.push((0x8000_0000, 0));
    assert!(refused(empty).contains("0x80000000"));
    let mut backwards = spec(1, GicVersion::V3);
    backwards.initrd = Some((0x5000_0000, 0x4000_0000));
    assert!(refused(backwards).contains("initrd"));
}

#[test]
fn a_nul_in_the_bootargs_is_a_writer_error_not_a_panic() {
    let mut spec = spec(1, GicVersion::V3);
    spec.bootargs = Some("a\0b".into());
    let err = generate_fdt(&spec).unwrap_err();
    assert!(matches!(err, FdtError::Writer(_)), "{err:?}");
    assert!(err.to_string().starts_with("device tree writer"));
}

#[test]
fn the_length_depends_on_whether_there_is_an_initrd_not_where() {
    // The image planner's documented recipe: size the tree with any initrd addresses.
    let mut spec = spec(2, GicVersion::V3);
    spec.initrd = Some((0, 0));
    let placeholder = generate_fdt(&spec).unwrap().len();
    spec.initrd = Some((0x4800_0000, 0xffff_ffff_0000));
    assert_eq!(generate_fdt(&spec).unwrap().len(), placeholder);
    spec.initrd = None;
    assert!(generate_fdt(&spec).unwrap().len() < placeholder);
}
