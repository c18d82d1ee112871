//! The ACPI tables a PC firmware leaves in the BIOS area, written by axvm because its guests
//! boot without a BIOS. An SMP kernel learns its CPUs and interrupt controllers from them,
//! and its ACPI interpreter the fixed power-management hardware and the devices:
//!
//! - the RSDP ("RSD PTR "), which kernels find by scanning 0xe0000-0xfffff on 16-byte
//!   boundaries, or receive from their boot protocol (PVH `rsdp_paddr`, Linux
//!   `acpi_rsdp_addr`), points to both root tables:
//! - the RSDT (32-bit pointers, what 32-bit kernels read) and the XSDT (64-bit pointers), each
//!   listing the FADT, the MADT and the HPET table if any (`sdt.rs`);
//! - the FADT ("FACP", `fadt.rs`): the fixed hardware, that is the ACPI PM block of the
//!   host's ACPI PM device (the KVM host's `devices::AcpiPm`: PM1a event and control
//!   blocks, PM timer) with its SCI on IRQ 9, and
//!   reboot through the reset register (port 0xcf9). Not hardware-reduced, so kernels keep
//!   using the legacy PIC and PIT. It points to the DSDT and the FACS;
//! - the DSDT (`dsdt.rs`): AML declaring `\_S5` (how to power off), the PCI root bridge
//!   `\_SB.PCI0` with the bus numbers, ports and memory window it decodes, and the HPET
//!   when the VM has it;
//! - the MADT ("APIC", `madt.rs`): one enabled local APIC per vCPU (processor id = APIC id =
//!   vCPU id), the IOAPIC, and the ISA IRQs that do not reach the IOAPIC pin of their own
//!   number;
//! - the `HPET` table (`hpet.rs`), when the VM has the emulated HPET: its address and
//!   capabilities.
//!
//! Every table lies in [`ACPI_START`]..[`ACPI_END`], the RSDP first (or, when an image covers
//! that, in the free bytes of 0xe0000-0xfffff the boot layout found); the e820 map reports the
//! area reserved, so the kernel does not reuse it. [`acpi_tables()`] is pure (bytes from an
//! [`AcpiInputs`]); [`write_acpi_tables`] takes the inputs from a VM and writes the bytes.

mod dsdt;
mod fadt;
mod hpet;
mod madt;
mod sdt;

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use axvm::config::MAX_CPU_NUM;
use axvm::{AxVM, AxVMConfig, AxVMHal, ConfigError, GuestPhysAddr};

/// The interrupt controllers' addresses and the SCI's IRQ, which the tables declare, are the
/// PC layout's; named here too for the tables' readers.
pub use crate::layout::SCI_IRQ;
use crate::layout::{ACPI_END, ACPI_START};

pub use dsdt::{pci_memory_window, VirtioMmioSlot};
pub use hpet::{HPET_CAPABILITIES, HPET_PERIOD_FS, HPET_TIMERS};

/// The reset register the FADT names: the chipset's reset control port.
pub const RESET_PORT: u16 = 0xcf9;
/// What a kernel writes to [`RESET_PORT`] to reboot: "reset CPU" with "system reset".
pub const RESET_VALUE: u8 = 0x06;

/// The PM1a event block (PM1_STS at +0, PM1_EN at +2, 16 bits each): the ports QEMU's PC
/// gives its PIIX4 power-management function, so kernels and tools built against QEMU find
/// the registers where they expect them.
pub const PM1A_EVENT_PORT: u16 = 0x600;
/// The PM1a event block's length (the FADT's `PM1_EVT_LEN`).
pub const PM1_EVENT_LEN: u8 = 4;
/// The PM1a control block (PM1_CNT, 16 bits).
pub const PM1A_CONTROL_PORT: u16 = 0x604;
/// The PM1a control block's length (the FADT's `PM1_CNT_LEN`).
pub const PM1_CONTROL_LEN: u8 = 2;
/// The PM timer (32 bits: the FADT sets `TMR_VAL_EXT`).
pub const PM_TIMER_PORT: u16 = 0x608;
/// The PM timer block's length (the FADT's `PM_TMR_LEN`).
pub const PM_TIMER_LEN: u8 = 4;
/// The SLP_TYP value of the soft-off state S5, which the DSDT's `\_S5` declares and a write
/// of SLP_TYP | SLP_EN to PM1_CNT requests: 0, as QEMU's DSDT declares it and QEMU's PC
/// chipsets power off on it. Kernels built for QEMU (ArceOS and NimbOS) power off without
/// reading the DSDT, by writing SLP_EN alone (0x2000) to port 0x604.
pub const S5_SLEEP_TYPE: u8 = 0;

/// Identifies axvm as the tables' maker (the OEM ID kernels print at boot).
const OEM_ID: [u8; 6] = *b"AXVM  ";
const OEM_TABLE_ID: [u8; 8] = *b"AXVM    ";
const CREATOR_ID: [u8; 4] = *b"AXVM";
const HEADER_LEN: usize = 36;
const RSDP_LEN: usize = 36;

/// What the tables describe of a VM, so that [`acpi_tables()`] needs nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcpiInputs {
    /// The vCPU count: one local APIC each in the MADT.
    pub cpu_num: usize,
    /// The PCI root bridge's 32-bit memory window (first and last address), or `None` when
    /// RAM below 4 GiB leaves no room for one (see [`pci_memory_window`]).
    pub pci_memory_window: Option<(u32, u32)>,
    /// The virtio-mmio devices, each declared in the DSDT so kernels find them.
    pub virtio_devices: Vec<VirtioMmioSlot>,
    /// Whether the VM has the emulated HPET, which the `HPET` table then describes.
    pub hpet: bool,
}

impl AcpiInputs {
    /// The inputs describing the VM `config` configures.
    pub fn for_config(config: &AxVMConfig) -> Self {
        let virtio_devices = VirtioMmioSlot::of_config(config);
        // The PCI window starts above RAM and above every virtio device, which are not PCI's.
        let regions = config
            .memory_regions
            .iter()
            .map(|region| (region.gpa.as_u64(), region.size))
            .chain(
                virtio_devices
                    .iter()
                    .map(|d| (u64::from(d.base), u64::from(d.length))),
            );
        Self {
            cpu_num: config.cpu_num,
            pci_memory_window: pci_memory_window(regions),
            virtio_devices,
            hpet: crate::config_devices::has_hpet(config),
        }
    }
}

/// The IOAPIC's id: kernels expect it to differ from every local APIC id, so it comes right
/// after the last vCPU's (at most 254, never the broadcast id 0xff).
pub fn ioapic_id(cpu_num: usize) -> u8 {
    cpu_num.min(MAX_CPU_NUM) as u8
}

/// The byte that makes `bytes` sum to zero (mod 256) when added: the checksum of ACPI tables
/// and MP structures, which kernels verify before they trust a table.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0u8, |sum, byte| sum.wrapping_sub(*byte))
}

/// Little-endian appends, to build firmware tables field by field in their spec order.
pub(super) trait PutLe {
    fn put_u8(&mut self, value: u8) -> &mut Self;
    fn put_u16(&mut self, value: u16) -> &mut Self;
    fn put_u32(&mut self, value: u32) -> &mut Self;
    fn put_u64(&mut self, value: u64) -> &mut Self;
    fn put_bytes(&mut self, value: &[u8]) -> &mut Self;
}

impl PutLe for Vec<u8> {
    fn put_u8(&mut self, value: u8) -> &mut Self {
        self.push(value);
        self
    }
    fn put_u16(&mut self, value: u16) -> &mut Self {
        self.put_bytes(&value.to_le_bytes())
    }
    fn put_u32(&mut self, value: u32) -> &mut Self {
        self.put_bytes(&value.to_le_bytes())
    }
    fn put_u64(&mut self, value: u64) -> &mut Self {
        self.put_bytes(&value.to_le_bytes())
    }
    fn put_bytes(&mut self, value: &[u8]) -> &mut Self {
        self.extend_from_slice(value);
        self
    }
}

/// The vCPU count as the 8-bit APIC id range the tables can describe.
pub(super) fn checked_cpu_count(cpu_num: usize) -> Result<u8, ConfigError> {
    match u8::try_from(cpu_num) {
        Ok(count) if (1..=MAX_CPU_NUM).contains(&cpu_num) => Ok(count),
        _ => Err(ConfigError::invalid(
            "base.cpu_num",
            format!("the firmware tables describe 1 to {MAX_CPU_NUM} vCPUs, not {cpu_num}"),
        )),
    }
}

/// Writes `image` at `start` after checking that all of `start..end` is RAM, so that a config
/// without low memory is refused whole, with the fix, rather than half-written.
pub(super) fn write_area<H: AxVMHal>(
    vm: &AxVM<H>,
    what: &str,
    (start, end): (u64, u64),
    image: &[u8],
) -> Result<(), ConfigError> {
    let memory = vm.memory();
    let gpa = GuestPhysAddr::new(start);
    memory
        .translated_byte_buffer(gpa, (end - start) as usize)
        .and_then(|_| memory.write(gpa, image))
        .map_err(|err| {
            ConfigError::invalid(
                "kernel.memory_regions",
                format!(
                    "the {what} go at {start:#x}..{end:#x}, which must be RAM ({err}); \
                     add RAM from 0 to at least 1 MiB, e.g. [0x0, 0x10_0000, 0x7, 0]"
                ),
            )
        })
}

/// Builds the ACPI tables for `vm` (its vCPUs and memory layout) and writes them at
/// `ACPI_START`; returns the RSDP's address, for boot protocols that pass it to the kernel.
pub fn write_acpi_tables<H: AxVMHal>(vm: &AxVM<H>) -> Result<GuestPhysAddr, ConfigError> {
    write_acpi_tables_at(vm, (ACPI_START, ACPI_END))
}

/// [`write_acpi_tables`] in `area` (`[start, end)`, inside 0xe0000-0xfffff so kernels find
/// the RSDP), where the boot layout put them clear of the images.
pub fn write_acpi_tables_at<H: AxVMHal>(
    vm: &AxVM<H>,
    area: (u64, u64),
) -> Result<GuestPhysAddr, ConfigError> {
    let image = acpi_tables_at(&AcpiInputs::for_config(vm.config()), area.0)?;
    write_area(vm, "ACPI tables", area, &image)?;
    Ok(GuestPhysAddr::new(area.0))
}

/// The bytes of the ACPI area from [`ACPI_START`] on, for a VM as `inputs` describes it: the
/// RSDP, then the FACS, DSDT, FADT, MADT, the HPET table (if the VM has one), RSDT and XSDT.
pub fn acpi_tables(inputs: &AcpiInputs) -> Result<Vec<u8>, ConfigError> {
    acpi_tables_at(inputs, ACPI_START)
}

/// [`acpi_tables()`] for an area starting at `base`: the tables point to each other by
/// address.
pub fn acpi_tables_at(inputs: &AcpiInputs, base: u64) -> Result<Vec<u8>, ConfigError> {
    let cpu_num = inputs.cpu_num;
    let cpu_count = checked_cpu_count(cpu_num)?;
    let mut area = vec![0; RSDP_LEN];
    let facs = place(&mut area, base, &sdt::facs(), 64);
    let dsdt = place(
        &mut area,
        base,
        &dsdt::dsdt(
            inputs.pci_memory_window,
            &inputs.virtio_devices,
            inputs.hpet,
        ),
        16,
    );
    let fadt = place(&mut area, base, &fadt::fadt(facs, dsdt), 16);
    let madt = place(&mut area, base, &madt::madt(cpu_count), 16);
    let mut listed = vec![fadt, madt];
    if inputs.hpet {
        listed.push(place(&mut area, base, &hpet::hpet_table(), 16));
    }
    let rsdt = place(&mut area, base, &sdt::rsdt(&listed), 16);
    let xsdt = place(&mut area, base, &sdt::xsdt(&listed), 16);
    area[..RSDP_LEN].copy_from_slice(&sdt::rsdp(rsdt, xsdt));
    let room = (ACPI_END - ACPI_START) as usize;
    if area.len() > room {
        return Err(ConfigError::invalid(
            "base.cpu_num",
            format!(
                "the ACPI tables for {cpu_num} vCPUs take {:#x} bytes, more than the {room:#x} at {ACPI_START:#x}..{ACPI_END:#x}",
                area.len()
            ),
        ));
    }
    Ok(area)
}

/// Appends `table` to `area` (which starts at `base`) at the next `align`-aligned offset;
/// returns its address.
fn place(area: &mut Vec<u8>, base: u64, table: &[u8], align: usize) -> u64 {
    let offset = area.len().next_multiple_of(align);
    area.resize(offset, 0);
    area.extend_from_slice(table);
    base + offset as u64
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use dsdt::PCI_MEMORY_WINDOW_END;

    /// The 8-bit sum of `bytes`: zero for a table with a valid checksum.
    pub(crate) fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0, |s, b| s.wrapping_add(*b))
    }

    /// The little-endian `N`-byte field at `at`, widened.
    pub(crate) fn le<const N: usize>(bytes: &[u8], at: usize) -> u64 {
        bytes[at..at + N]
            .iter()
            .rev()
            .fold(0, |value, byte| value << 8 | u64::from(*byte))
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        le::<4>(bytes, at) as u32
    }

    /// The table at guest address `gpa` in an image starting at ACPI_START.
    fn table_at(image: &[u8], gpa: u64) -> &[u8] {
        let at = (gpa - ACPI_START) as usize;
        &image[at..at + u32_at(image, at + 4) as usize]
    }

    fn inputs(cpu_num: usize) -> AcpiInputs {
        AcpiInputs {
            cpu_num,
            pci_memory_window: Some((0x800_0000, PCI_MEMORY_WINDOW_END)),
            virtio_devices: Vec::new(),
            hpet: false,
        }
    }

    #[test]
    fn checksum_makes_the_sum_zero() {
        assert_eq!(checksum(&[]), 0);
        assert_eq!(checksum(&[1, 2, 3]), 0xfa);
        let mut bytes = vec![0xff, 0x80, 0x7f, 0x01, 0];
        bytes[4] = checksum(&bytes);
        assert_eq!(sum(&bytes), 0);
    }

    #[test]
    fn rsdp_and_every_table_checksum_to_zero() {
        let image = acpi_tables(&inputs(4)).unwrap();
        assert_eq!(&image[..8], b"RSD PTR ");
        assert_eq!(sum(&image[..20]), 0);
        assert_eq!(sum(&image[..36]), 0);
        let rsdt = table_at(&image, u32_at(&image, 16).into());
        assert_eq!(u32_at(&image, 28), 0, "the XSDT is below 4 GiB");
        let xsdt = table_at(&image, u32_at(&image, 24).into());
        assert_eq!((&rsdt[..4], &xsdt[..4]), (&b"RSDT"[..], &b"XSDT"[..]));
        for entry in 0..2 {
            let pointer = u32_at(rsdt, HEADER_LEN + 4 * entry);
            assert_eq!(u32_at(xsdt, HEADER_LEN + 8 * entry), pointer);
            assert_eq!(sum(table_at(&image, pointer.into())), 0);
        }
        assert_eq!((sum(rsdt), sum(xsdt)), (0, 0));
        let fadt = table_at(&image, u32_at(rsdt, HEADER_LEN).into());
        assert_eq!((&fadt[..4], fadt.len()), (&b"FACP"[..], 276));
        let facs = table_at(&image, u32_at(fadt, 36).into());
        assert_eq!((&facs[..4], facs.len()), (&b"FACS"[..], 64));
        let dsdt = table_at(&image, u32_at(fadt, 40).into());
        assert_eq!((&dsdt[..4], sum(dsdt)), (&b"DSDT"[..], 0));
        assert!(dsdt.len() > HEADER_LEN, "the DSDT holds AML");
    }

    #[test]
    fn the_inputs_of_a_config_name_its_vcpus_and_memory_window() {
        let mut config = AxVMConfig::new("acpi", 3);
        config.memory_regions.push(axvm::VmMemConfig {
            gpa: GuestPhysAddr::new(0),
            size: 0x1000_0000,
            flags: axvm::MappingFlags::from_bits(0x7).expect("valid flags"),
            map_type: axvm::VmMemMappingType::MapAlloc,
        });
        assert_eq!(
            AcpiInputs::for_config(&config),
            AcpiInputs {
                cpu_num: 3,
                pci_memory_window: Some((0x1000_0000, PCI_MEMORY_WINDOW_END)),
                virtio_devices: Vec::new(),
                hpet: false,
            }
        );
    }

    #[test]
    fn the_hpet_table_is_listed_only_for_a_vm_with_the_hpet() {
        let root_entries = |image: &[u8]| {
            let rsdt = table_at(image, u32_at(image, 16).into());
            (HEADER_LEN..rsdt.len())
                .step_by(4)
                .map(|at| table_at(image, u32_at(rsdt, at).into())[..4].to_vec())
                .collect::<Vec<_>>()
        };
        let without = acpi_tables(&inputs(2)).unwrap();
        assert_eq!(root_entries(&without), [b"FACP".to_vec(), b"APIC".to_vec()]);
        let with = acpi_tables(&AcpiInputs {
            hpet: true,
            ..inputs(2)
        })
        .unwrap();
        let entries = root_entries(&with);
        assert_eq!(entries.last().map(Vec::as_slice), Some(&b"HPET"[..]));
        assert_eq!(entries.len(), 3);
    }

    #[test]
    fn vcpu_counts_the_tables_cannot_describe_are_refused() {
        for cpus in [0, MAX_CPU_NUM + 1, 300] {
            let err = acpi_tables(&inputs(cpus)).unwrap_err();
            assert_eq!(err.field(), Some("base.cpu_num"), "{err}");
        }
        let largest = acpi_tables(&inputs(MAX_CPU_NUM)).unwrap();
        assert!(largest.len() < (ACPI_END - ACPI_START) as usize);
    }
}
