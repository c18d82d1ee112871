//! The board's guest-physical layout and interrupt numbers, each written once. The
//! addresses mirror QEMU's `-M virt` wherever it has the same device, so guests written
//! for QEMU's board (and device trees made for it) find the GIC and the UART where they
//! expect them; the crate documentation has the table.
//!
//! [`check_ram`] refuses a config whose RAM would cover a device: on arm64 every device is
//! MMIO, so RAM there would hide it from the guest (KVM gives memory slots priority over
//! MMIO exits).

use alloc::format;
use alloc::string::{String, ToString};
use core::ops::Range;

use axvm::{AxVMConfig, ConfigError};

/// The GIC distributor (GICv2 and GICv3 alike).
pub const GIC_DIST_BASE: u64 = 0x0800_0000;
/// The distributor's size: 64 KiB.
pub const GIC_DIST_SIZE: u64 = 0x1_0000;
/// The GICv2 CPU interface, right after the distributor.
pub const GICV2_CPU_BASE: u64 = 0x0801_0000;
/// The GICv2 CPU interface's size: 64 KiB, as QEMU declares it (KVM's interface is 8 KiB;
/// Linux accepts either).
pub const GICV2_CPU_SIZE: u64 = 0x1_0000;
/// The first GICv3 redistributor; vCPU *i*'s is at `GIC_REDIST_BASE + i * GIC_REDIST_SIZE_PER_CPU`.
pub const GIC_REDIST_BASE: u64 = 0x080A_0000;
/// One redistributor: two 64 KiB frames (RD_base and SGI_base).
pub const GIC_REDIST_SIZE_PER_CPU: u64 = 0x2_0000;
/// The most vCPUs the board has: as many redistributors as fit below the PL011.
pub const MAX_VCPUS: usize = ((PL011_BASE - GIC_REDIST_BASE) / GIC_REDIST_SIZE_PER_CPU) as usize;
/// The most vCPUs a GICv2 can address (its target lists are 8 bits wide).
pub const GICV2_MAX_VCPUS: usize = 8;

/// The PL011 UART, the guest's console.
pub const PL011_BASE: u64 = 0x0900_0000;
/// The PL011's size: 4 KiB.
pub const PL011_SIZE: u64 = 0x1000;
/// The PL011's shared peripheral interrupt number (SPI 1, INTID 33), level-high.
pub const PL011_SPI: u32 = 1;
/// The PL011's interrupt ID as the GIC numbers it.
pub const PL011_INTID: u32 = SPI_BASE_INTID + PL011_SPI;

/// axvm's exit device: a write at offset 0 stops the VM with that status.
pub const EXIT_DEVICE_BASE: u64 = 0x0910_0000;
/// The exit device's size: 4 KiB.
pub const EXIT_DEVICE_SIZE: u64 = 0x1000;

/// Where virtio-mmio transports will go (reserved; nothing is there yet).
pub const VIRTIO_MMIO_BASE: u64 = 0x0a00_0000;

/// The addresses reserved for devices: RAM must not overlap them. Everything from the GIC
/// to the end of what QEMU's board uses below its RAM at 1 GiB.
pub const DEVICE_WINDOW: Range<u64> = 0x0800_0000..0x4000_0000;

/// The first private peripheral interrupt's ID (PPIs are INTIDs 16..32).
pub const PPI_BASE_INTID: u32 = 16;
/// The first shared peripheral interrupt's ID: SPI *n* is INTID `32 + n`.
pub const SPI_BASE_INTID: u32 = 32;

/// The architected timer's secure physical interrupt (PPI 13).
pub const TIMER_SECURE_PHYS_INTID: u32 = 29;
/// The architected timer's non-secure physical interrupt (PPI 14).
pub const TIMER_NONSECURE_PHYS_INTID: u32 = 30;
/// The architected timer's virtual interrupt (PPI 11): the one a KVM guest's kernel uses.
pub const TIMER_VIRT_INTID: u32 = 27;
/// The architected timer's hypervisor interrupt (PPI 10).
pub const TIMER_HYP_INTID: u32 = 26;

/// The size of the GICv3 redistributor region for `vcpus` vCPUs.
pub const fn gic_redist_size(vcpus: usize) -> u64 {
    vcpus as u64 * GIC_REDIST_SIZE_PER_CPU
}

/// vCPU `index`'s MPIDR affinity fields, as KVM sets them by default (Aff0 = index % 16,
/// Aff1 = index / 16, Aff2 = index / 4096): the `reg` of its device-tree `cpu` node and the
/// target of PSCI `CPU_ON`.
pub const fn vcpu_mpidr(index: usize) -> u64 {
    let index = index as u64;
    (index & 0xf) | (((index >> 4) & 0xff) << 8) | (((index >> 12) & 0xff) << 16)
}

/// One device of the board, for messages about what a RAM region would hide.
struct BoardDevice {
    name: &'static str,
    range: Range<u64>,
}

/// The board's devices for a VM of `vcpus` vCPUs, lowest first.
fn board_devices(vcpus: usize) -> [BoardDevice; 5] {
    let redist_end = GIC_REDIST_BASE + gic_redist_size(vcpus.min(MAX_VCPUS));
    [
        BoardDevice {
            name: "the GIC distributor",
            range: GIC_DIST_BASE..GIC_DIST_BASE + GIC_DIST_SIZE,
        },
        BoardDevice {
            name: "the GICv2 CPU interface",
            range: GICV2_CPU_BASE..GICV2_CPU_BASE + GICV2_CPU_SIZE,
        },
        BoardDevice {
            name: "the GICv3 redistributors",
            range: GIC_REDIST_BASE..redist_end,
        },
        BoardDevice {
            name: "the PL011 UART",
            range: PL011_BASE..PL011_BASE + PL011_SIZE,
        },
        BoardDevice {
            name: "the axvm exit device",
            range: EXIT_DEVICE_BASE..EXIT_DEVICE_BASE + EXIT_DEVICE_SIZE,
        },
    ]
}

fn overlaps(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// What `range` covers inside the device window: the first device it hits, or the window.
fn what_is_hidden(range: &Range<u64>, vcpus: usize) -> String {
    board_devices(vcpus)
        .iter()
        .find(|device| overlaps(range, &device.range))
        .map(|device| {
            format!(
                "{} at {:#x}..{:#x}",
                device.name, device.range.start, device.range.end
            )
        })
        .unwrap_or_else(|| "the space reserved for devices (virtio-mmio and later)".to_string())
}

/// Refuses a config the board cannot run: RAM overlapping the device window (naming the
/// region, `kernel.memory_regions[i]`, and the device it would hide) or more vCPUs than
/// [`MAX_VCPUS`] (naming `base.cpu_num`). The message is a [`ConfigError`]'s, with the fix.
///
/// ```
/// use axvm::AxVMConfig;
/// use axvm_virt::layout::check_ram;
///
/// let good = AxVMConfig::builder("vm").ram(0x4000_0000, 0x800_0000).kernel_at(0x4020_0000).build().unwrap();
/// assert!(check_ram(&good).is_ok());
/// let bad = AxVMConfig::builder("vm").ram(0x0, 0x1000_0000).kernel_at(0x8000).build().unwrap();
/// let err = check_ram(&bad).unwrap_err();
/// assert!(err.contains("kernel.memory_regions[0]") && err.contains("GIC distributor"), "{err}");
/// ```
pub fn check_ram(config: &AxVMConfig) -> Result<(), String> {
    if config.cpu_num > MAX_VCPUS {
        return Err(ConfigError::invalid(
            "base.cpu_num",
            format!(
                "{} vCPUs are more than the {MAX_VCPUS} the arm64 virt board has redistributors for; use at most {MAX_VCPUS}",
                config.cpu_num
            ),
        )
        .to_string());
    }
    for (index, region) in config.memory_regions.iter().enumerate() {
        let start = region.gpa.as_u64();
        let range = start..start.saturating_add(region.size);
        if overlaps(&range, &DEVICE_WINDOW) {
            return Err(ConfigError::invalid(
                format!("kernel.memory_regions[{index}]"),
                format!(
                    "RAM at {:#x}..{:#x} overlaps {}: on the arm64 virt board RAM must lie outside the device window {:#x}..{:#x}; put RAM at {:#x} or above (as QEMU's virt does) or below {:#x}",
                    range.start,
                    range.end,
                    what_is_hidden(&range, config.cpu_num),
                    DEVICE_WINDOW.start,
                    DEVICE_WINDOW.end,
                    DEVICE_WINDOW.end,
                    DEVICE_WINDOW.start,
                ),
            )
            .to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with_ram(regions: &[(u64, u64)], cpus: usize) -> AxVMConfig {
        let mut builder = AxVMConfig::builder("vm");
        for &(base, size) in regions {
            builder = builder.ram(base, size);
        }
        let mut config = builder.kernel_at(regions[0].0).build().unwrap();
        config.cpu_num = cpus;
        config
    }

    #[test]
    fn the_table_adds_up() {
        assert_eq!(MAX_VCPUS, 123);
        assert_eq!(GIC_REDIST_BASE + gic_redist_size(MAX_VCPUS), PL011_BASE);
        assert_eq!(PL011_INTID, 33);
        assert!(DEVICE_WINDOW.contains(&VIRTIO_MMIO_BASE));
        for device in board_devices(MAX_VCPUS) {
            assert!(
                DEVICE_WINDOW.contains(&device.range.start),
                "{}",
                device.name
            );
            assert!(device.range.end <= DEVICE_WINDOW.end, "{}", device.name);
        }
    }

    #[test]
    fn mpidr_follows_kvm() {
        assert_eq!(vcpu_mpidr(0), 0);
        assert_eq!(vcpu_mpidr(15), 15);
        assert_eq!(vcpu_mpidr(16), 0x100);
        assert_eq!(vcpu_mpidr(122), 0x70a);
    }

    #[test]
    fn ram_outside_the_window_is_accepted() {
        let config = config_with_ram(&[(0x4000_0000, 0x1000_0000), (0x0, 0x800_0000)], 4);
        assert_eq!(check_ram(&config), Ok(()));
    }

    #[test]
    fn ram_over_a_device_names_region_and_device() {
        let config = config_with_ram(&[(0x4000_0000, 0x100_0000), (0x0900_0000, 0x1000)], 1);
        let err = check_ram(&config).unwrap_err();
        assert!(err.contains("kernel.memory_regions[1]"), "{err}");
        assert!(err.contains("PL011"), "{err}");
    }

    #[test]
    fn ram_in_the_reserved_part_names_the_window() {
        let config = config_with_ram(&[(0x2000_0000, 0x100_0000)], 1);
        let err = check_ram(&config).unwrap_err();
        assert!(err.contains("kernel.memory_regions[0]"), "{err}");
        assert!(err.contains("reserved for devices"), "{err}");
    }

    #[test]
    fn ram_ending_at_the_window_is_accepted_one_byte_more_is_not() {
        let fits = config_with_ram(&[(0x0, 0x0800_0000)], 1);
        assert_eq!(check_ram(&fits), Ok(()));
        let over = config_with_ram(&[(0x0, 0x0800_1000)], 1);
        assert!(check_ram(&over).unwrap_err().contains("GIC distributor"));
    }

    #[test]
    fn too_many_vcpus_names_cpu_num() {
        let config = config_with_ram(&[(0x4000_0000, 0x100_0000)], MAX_VCPUS + 1);
        let err = check_ram(&config).unwrap_err();
        assert!(err.contains("base.cpu_num"), "{err}");
        let config = config_with_ram(&[(0x4000_0000, 0x100_0000)], MAX_VCPUS);
        assert_eq!(check_ram(&config), Ok(()));
    }
}
