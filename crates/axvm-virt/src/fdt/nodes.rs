//! One function per node of the generated tree, in the order they appear. The root has
//! `#address-cells = #size-cells = 2`, so every `reg` here is pairs of u64.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use vm_fdt::FdtWriter;

use super::{FdtError, APB_PCLK_PHANDLE, GIC_PHANDLE};
use crate::layout::{
    gic_redist_size, vcpu_mpidr, EXIT_DEVICE_BASE, EXIT_DEVICE_SIZE, GICV2_CPU_BASE,
    GICV2_CPU_SIZE, GIC_DIST_BASE, GIC_DIST_SIZE, GIC_REDIST_BASE, PL011_BASE, PL011_SIZE,
    PL011_SPI, PPI_BASE_INTID, TIMER_HYP_INTID, TIMER_NONSECURE_PHYS_INTID,
    TIMER_SECURE_PHYS_INTID, TIMER_VIRT_INTID,
};
use crate::GicVersion;

type NodeResult = Result<(), FdtError>;

/// The first cell of a GIC interrupt specifier: a shared peripheral interrupt.
const GIC_SPI: u32 = 0;
/// The first cell of a GIC interrupt specifier: a private peripheral interrupt.
const GIC_PPI: u32 = 1;
/// The third cell's trigger type: level-sensitive, active high.
const IRQ_TYPE_LEVEL_HIGH: u32 = 4;
/// The APB clock QEMU's board feeds its PL011 with; Linux's driver wants a clock to bind.
const APB_PCLK_HZ: u32 = 24_000_000;

/// The path of the console's node, which `/chosen/stdout-path` names.
pub(crate) const PL011_PATH: &str = "/pl011@9000000";

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|value| String::from(*value)).collect()
}

/// `/cpus`: one `cpu@MPIDR` per vCPU, started by PSCI.
pub(super) fn cpus(fdt: &mut FdtWriter, vcpus: usize) -> NodeResult {
    let node = fdt.begin_node("cpus")?;
    // MPIDRs of at most 123 vCPUs fit in 32 bits (Aff3 = 0), so one address cell.
    fdt.property_u32("#address-cells", 1)?;
    fdt.property_u32("#size-cells", 0)?;
    for index in 0..vcpus {
        let mpidr = vcpu_mpidr(index) as u32;
        let cpu = fdt.begin_node(&format!("cpu@{mpidr:x}"))?;
        fdt.property_string("device_type", "cpu")?;
        fdt.property_string("compatible", "arm,arm-v8")?;
        fdt.property_string("enable-method", "psci")?;
        fdt.property_u32("reg", mpidr)?;
        fdt.end_node(cpu)?;
    }
    Ok(fdt.end_node(node)?)
}

/// `/memory@BASE` for each RAM region.
pub(super) fn memory(fdt: &mut FdtWriter, ram: &[(u64, u64)]) -> NodeResult {
    for &(base, size) in ram {
        let node = fdt.begin_node(&format!("memory@{base:x}"))?;
        fdt.property_string("device_type", "memory")?;
        fdt.property_array_u64("reg", &[base, size])?;
        fdt.end_node(node)?;
    }
    Ok(())
}

/// `/intc@8000000`: the GIC, the root's interrupt parent. A GICv3's second `reg` pair
/// covers one redistributor per vCPU; a GICv2's is its CPU interface.
pub(super) fn gic(fdt: &mut FdtWriter, version: GicVersion, vcpus: usize) -> NodeResult {
    let node = fdt.begin_node(&format!("intc@{GIC_DIST_BASE:x}"))?;
    let (compatible, reg) = match version {
        GicVersion::V3 => (
            "arm,gic-v3",
            [
                GIC_DIST_BASE,
                GIC_DIST_SIZE,
                GIC_REDIST_BASE,
                gic_redist_size(vcpus),
            ],
        ),
        GicVersion::V2 => (
            "arm,cortex-a15-gic",
            [GIC_DIST_BASE, GIC_DIST_SIZE, GICV2_CPU_BASE, GICV2_CPU_SIZE],
        ),
    };
    fdt.property_string("compatible", compatible)?;
    fdt.property_array_u64("reg", &reg)?;
    fdt.property_u32("#interrupt-cells", 3)?;
    // No child nodes (no ITS, no v2m), but an interrupt provider states its address cells
    // (interrupt-map parsing reads them; dtc warns without).
    fdt.property_u32("#address-cells", 0)?;
    fdt.property_null("interrupt-controller")?;
    fdt.property_phandle(GIC_PHANDLE)?;
    Ok(fdt.end_node(node)?)
}

/// The flags cell of the timer's PPIs: level-high, and on a GICv2 the mask of CPUs the
/// PPI goes to (bits 8..16), as the GICv2 binding asks.
fn ppi_flags(version: GicVersion, vcpus: usize) -> u32 {
    match version {
        GicVersion::V3 => IRQ_TYPE_LEVEL_HIGH,
        GicVersion::V2 => IRQ_TYPE_LEVEL_HIGH | ((((1u32 << vcpus) - 1) & 0xff) << 8),
    }
}

/// `/timer`: the architected timer's four PPIs in the binding's order (secure physical,
/// non-secure physical, virtual, hypervisor).
pub(super) fn timer(fdt: &mut FdtWriter, version: GicVersion, vcpus: usize) -> NodeResult {
    let node = fdt.begin_node("timer")?;
    fdt.property_string("compatible", "arm,armv8-timer")?;
    let flags = ppi_flags(version, vcpus);
    let mut interrupts = Vec::new();
    for intid in [
        TIMER_SECURE_PHYS_INTID,
        TIMER_NONSECURE_PHYS_INTID,
        TIMER_VIRT_INTID,
        TIMER_HYP_INTID,
    ] {
        interrupts.extend_from_slice(&[GIC_PPI, intid - PPI_BASE_INTID, flags]);
    }
    fdt.property_array_u32("interrupts", &interrupts)?;
    fdt.property_null("always-on")?;
    Ok(fdt.end_node(node)?)
}

/// `/psci`: PSCI 0.2 (1.0 first when the host has it) through HVC.
pub(super) fn psci(fdt: &mut FdtWriter, psci_1_0: bool) -> NodeResult {
    let node = fdt.begin_node("psci")?;
    let compatible = if psci_1_0 {
        strings(&["arm,psci-1.0", "arm,psci-0.2"])
    } else {
        strings(&["arm,psci-0.2"])
    };
    fdt.property_string_list("compatible", compatible)?;
    fdt.property_string("method", "hvc")?;
    Ok(fdt.end_node(node)?)
}

/// `/apb-pclk`: the fixed 24 MHz clock the PL011 names.
pub(super) fn apb_pclk(fdt: &mut FdtWriter) -> NodeResult {
    let node = fdt.begin_node("apb-pclk")?;
    fdt.property_string("compatible", "fixed-clock")?;
    fdt.property_u32("#clock-cells", 0)?;
    fdt.property_u32("clock-frequency", APB_PCLK_HZ)?;
    fdt.property_string("clock-output-names", "clk24mhz")?;
    fdt.property_phandle(APB_PCLK_PHANDLE)?;
    Ok(fdt.end_node(node)?)
}

/// `/pl011@9000000`: the console UART on SPI 1. Linux's AMBA bus binds it by its
/// PrimeCell ID once `apb_pclk` is there.
pub(super) fn pl011(fdt: &mut FdtWriter) -> NodeResult {
    let node = fdt.begin_node(&PL011_PATH[1..])?;
    fdt.property_string_list("compatible", strings(&["arm,pl011", "arm,primecell"]))?;
    fdt.property_array_u64("reg", &[PL011_BASE, PL011_SIZE])?;
    fdt.property_array_u32("interrupts", &[GIC_SPI, PL011_SPI, IRQ_TYPE_LEVEL_HIGH])?;
    fdt.property_array_u32("clocks", &[APB_PCLK_PHANDLE, APB_PCLK_PHANDLE])?;
    fdt.property_string_list("clock-names", strings(&["uartclk", "apb_pclk"]))?;
    Ok(fdt.end_node(node)?)
}

/// `/axvm-exit@9100000`: where a guest writes its exit status.
pub(super) fn exit_device(fdt: &mut FdtWriter) -> NodeResult {
    let node = fdt.begin_node(&format!("axvm-exit@{EXIT_DEVICE_BASE:x}"))?;
    fdt.property_string("compatible", "axvm,exit-device")?;
    fdt.property_array_u64("reg", &[EXIT_DEVICE_BASE, EXIT_DEVICE_SIZE])?;
    Ok(fdt.end_node(node)?)
}

/// `/chosen`: the console, the command line and the initrd.
pub(super) fn chosen(
    fdt: &mut FdtWriter,
    bootargs: Option<&str>,
    initrd: Option<(u64, u64)>,
) -> NodeResult {
    let node = fdt.begin_node("chosen")?;
    fdt.property_string("stdout-path", PL011_PATH)?;
    if let Some(bootargs) = bootargs {
        fdt.property_string("bootargs", bootargs)?;
    }
    if let Some((start, end)) = initrd {
        fdt.property_u64("linux,initrd-start", start)?;
        fdt.property_u64("linux,initrd-end", end)?;
    }
    Ok(fdt.end_node(node)?)
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn gicv2_ppi_flags_carry_the_cpu_mask() {
        assert_eq!(ppi_flags(GicVersion::V3, 4), 4);
        assert_eq!(ppi_flags(GicVersion::V2, 1), 0x104);
        assert_eq!(ppi_flags(GicVersion::V2, 8), 0xff04);
    }

    #[test]
    fn the_pl011_path_names_its_base() {
        assert_eq!(PL011_PATH, format!("/pl011@{PL011_BASE:x}"));
    }
}
