//! The DSDT: the AML a kernel's ACPI interpreter loads at start. It declares
//!
//! - `\_S5`, the SLP_TYP values of the soft-off state: how a kernel powers the machine off
//!   (it writes SLP_TYP | SLP_EN to PM1_CNT, which the KVM host's `devices::AcpiPm` turns into a VM exit),
//!   and `\_S0`, those of the working state, which ACPICA writes back when it leaves a sleep
//!   state (without them its wake path fails with AE_NOT_FOUND);
//! - `\_SB.PCI0`, the PCI root bridge (`PNP0A03`, bus 0) and, in its `_CRS`, what the bridge
//!   decodes: bus numbers 0-0xff, the configuration ports 0xcf8-0xcff, every other I/O port,
//!   and a 32-bit memory window from the end of low RAM up to the IOAPIC. Linux takes its PCI
//!   windows from here ("PCI: Using host bridge windows from ACPI") and places BARs in them;
//! - `\_SB.HPET` (`PNP0103`) when the VM has the emulated HPET: its register block, as
//!   QEMU declares it, for drivers that bind by ACPI ID (Linux's `/dev/hpet`); kernels find
//!   the timer itself through the `HPET` table;
//! - one `\_SB.VRnn` per virtio-mmio device (`_HID "LNRO0005"`, the ID Linux's virtio_mmio
//!   driver matches over ACPI), whose `_CRS` gives its registers and its interrupt (an IOAPIC
//!   GSI, edge-triggered, active high: each interrupt is a pulse on an irqfd). Kernels built
//!   without `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` (Debian's) find the devices only this way.
//!
//! The AML is built with the `acpi_tables` crate's `aml` module rather than by hand.

use acpi_tables::aml::{
    AddressSpace, AddressSpaceCacheable, Device, EISAName, Interrupt, Memory32Fixed, Name, Package,
    Path, ResourceTemplate, Scope, IO, ZERO,
};
use acpi_tables::Aml;
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use axvm::AxVMConfig;

use super::sdt::{finish_sdt, sdt_header};
use super::S5_SLEEP_TYPE;
use crate::layout::{HPET_ADDRESS, HPET_LEN};

/// The last address of the PCI memory window (the PC layout's): right below the IOAPIC, as
/// on PCs, since the IOAPIC, HPET, local APIC and BIOS ranges above it are not PCI's.
pub use crate::layout::PCI_MEMORY_WINDOW_END;
/// The SLP_TYP of the working state S0 (never entered by a write with SLP_EN).
const S0_SLEEP_TYPE: u8 = 0;
/// The PCI configuration mechanism's ports (address at 0xcf8, data at 0xcfc-0xcff), which
/// the bridge consumes rather than forwards.
const PCI_CONFIG_PORTS: (u16, u8) = (0xcf8, 8);

/// The PCI root bridge's 32-bit memory window for guest memory `regions` (start, size):
/// from the end of the highest region that starts at or below [`PCI_MEMORY_WINDOW_END`] to
/// [`PCI_MEMORY_WINDOW_END`], so that it overlaps no RAM, ROM or pass-through range. `None`
/// when those regions reach past the window's end.
pub fn pci_memory_window(regions: impl IntoIterator<Item = (u64, u64)>) -> Option<(u32, u32)> {
    let end = u64::from(PCI_MEMORY_WINDOW_END);
    let start = regions
        .into_iter()
        .filter(|&(gpa, _)| gpa <= end)
        .map(|(gpa, size)| gpa.saturating_add(size))
        .max()
        .unwrap_or(0);
    let start = u32::try_from(start)
        .ok()
        .filter(|&start| start <= PCI_MEMORY_WINDOW_END)?;
    Some((start, PCI_MEMORY_WINDOW_END))
}

/// One virtio-mmio device as the DSDT declares it: its register window (below 4 GiB, which
/// config validation ensures) and its GSI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmioSlot {
    /// First register address.
    pub base: u32,
    /// Window length in bytes.
    pub length: u32,
    /// The IOAPIC input its interrupt arrives on.
    pub gsi: u32,
}

impl VirtioMmioSlot {
    /// The virtio devices of `config`'s `emu_devices`, in row order; rows whose window or
    /// line does not fit the descriptors are left out (validation refuses them).
    pub fn of_config(config: &AxVMConfig) -> Vec<Self> {
        crate::config_devices::virtio_rows(config)
            .filter_map(|(_, row)| {
                Some(Self {
                    base: u32::try_from(row.base_gpa.as_u64()).ok()?,
                    length: u32::try_from(row.length).ok()?,
                    gsi: u32::try_from(row.irq_id).ok()?,
                })
            })
            .collect()
    }

    /// `Device (VRnn) { _HID "LNRO0005", _UID n, _CRS { Memory32Fixed, Interrupt } }`.
    fn device(&self, index: usize) -> Vec<u8> {
        let name = format!("VR{index:02X}");
        let window = Memory32Fixed::new(true, self.base, self.length);
        let line = Interrupt::new(true, true, false, false, self.gsi);
        let resources = ResourceTemplate::new(vec![&window, &line]);
        let mut aml = Vec::new();
        Device::new(
            Path::new(&name),
            vec![
                &Name::new(Path::new("_HID"), &"LNRO0005"),
                &Name::new(Path::new("_UID"), &(index as u32)),
                &Name::new(Path::new("_CRS"), &resources),
            ],
        )
        .to_aml_bytes(&mut aml);
        aml
    }
}

/// Pre-built AML, for listing children of different types in one scope.
struct RawAml(Vec<u8>);

impl Aml for RawAml {
    fn to_aml_bytes(&self, sink: &mut dyn acpi_tables::AmlSink) {
        for &byte in &self.0 {
            sink.byte(byte);
        }
    }
}

/// The DSDT (revision 2: 64-bit AML integers) for a root bridge with `memory_window`, the
/// virtio devices `virtio`, and the HPET when `hpet`.
pub(super) fn dsdt(
    memory_window: Option<(u32, u32)>,
    virtio: &[VirtioMmioSlot],
    hpet: bool,
) -> Vec<u8> {
    let mut table = sdt_header(b"DSDT", 2);
    sleep_state("\\_S0_", S0_SLEEP_TYPE).to_aml_bytes(&mut table);
    sleep_state("\\_S5_", S5_SLEEP_TYPE).to_aml_bytes(&mut table);
    let root_bridge = root_bridge(memory_window);
    let virtio: Vec<RawAml> = virtio
        .iter()
        .enumerate()
        .map(|(index, slot)| RawAml(slot.device(index)))
        .collect();
    let hpet = hpet.then(hpet_device);
    let mut children: Vec<&dyn Aml> = vec![&root_bridge];
    children.extend(hpet.iter().map(|device| device as &dyn Aml));
    children.extend(virtio.iter().map(|device| device as &dyn Aml));
    Scope::new(Path::new("\\_SB_"), children).to_aml_bytes(&mut table);
    finish_sdt(table)
}

/// `Device (HPET) { _HID PNP0103, _UID 0, _CRS { Memory32Fixed (ReadOnly, 0xfed00000,
/// 0x400) } }`.
fn hpet_device() -> RawAml {
    let registers = Memory32Fixed::new(false, HPET_ADDRESS as u32, HPET_LEN as u32);
    let resources = ResourceTemplate::new(vec![&registers]);
    let mut aml = Vec::new();
    Device::new(
        Path::new("HPET"),
        vec![
            &Name::new(Path::new("_HID"), &EISAName::new("PNP0103")),
            &Name::new(Path::new("_UID"), &ZERO),
            &Name::new(Path::new("_CRS"), &resources),
        ],
    )
    .to_aml_bytes(&mut aml);
    RawAml(aml)
}

/// `Device (PCI0)`: the PCI root bridge with `memory_window`.
fn root_bridge(memory_window: Option<(u32, u32)>) -> RawAml {
    let resources = RootBridgeResources::new(memory_window);
    let current_resources = Name::new(Path::new("_CRS"), &resources.template());
    let mut aml = Vec::new();
    Device::new(
        Path::new("PCI0"),
        vec![
            &Name::new(Path::new("_HID"), &EISAName::new("PNP0A03")),
            &Name::new(Path::new("_UID"), &ZERO),
            &Name::new(Path::new("_BBN"), &ZERO),
            &current_resources,
        ],
    )
    .to_aml_bytes(&mut aml);
    RawAml(aml)
}

/// `Name (path, Package { SLP_TYPa, SLP_TYPb, 0, 0 })`: the sleep state `path` names is
/// entered by writing `sleep_type` to SLP_TYP. There is one PM1 control block, so both
/// values are the same; the last two are reserved.
fn sleep_state(path: &str, sleep_type: u8) -> Name {
    Name::new(
        Path::new(path),
        &Package::new(vec![&sleep_type, &sleep_type, &ZERO, &ZERO]),
    )
}

/// What the root bridge decodes, for its `_CRS`. The I/O and memory windows are "producer"
/// ranges, which the bridge forwards to the bus.
struct RootBridgeResources {
    buses: AddressSpace<u16>,
    config_ports: IO,
    ports_below: AddressSpace<u16>,
    ports_above: AddressSpace<u16>,
    memory: Option<AddressSpace<u32>>,
}

impl RootBridgeResources {
    fn new(memory_window: Option<(u32, u32)>) -> Self {
        let (config_port, config_len) = PCI_CONFIG_PORTS;
        Self {
            buses: AddressSpace::new_bus_number(0, 0xff),
            config_ports: IO::new(config_port, config_port, 1, config_len),
            ports_below: AddressSpace::new_io(0, config_port - 1, None),
            ports_above: AddressSpace::new_io(config_port + u16::from(config_len), 0xffff, None),
            // A window the descriptor cannot hold (empty, or all 4 GiB) is left out.
            memory: memory_window
                .filter(|&(start, end)| start <= end && end - start < u32::MAX)
                .map(|(start, end)| {
                    AddressSpace::new_memory(
                        AddressSpaceCacheable::NotCacheable,
                        true,
                        start,
                        end,
                        None,
                    )
                }),
        }
    }

    /// The resource template (a buffer of descriptors) listing them.
    fn template(&self) -> ResourceTemplate<'_> {
        let mut children: Vec<&dyn Aml> = vec![
            &self.buses,
            &self.config_ports,
            &self.ports_below,
            &self.ports_above,
        ];
        if let Some(memory) = &self.memory {
            children.push(memory);
        }
        ResourceTemplate::new(children)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::sum;
    use super::*;

    fn contains(haystack: &[u8], needle: &[u8]) -> bool {
        haystack.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn the_window_starts_where_low_memory_ends() {
        let mib = 1 << 20;
        assert_eq!(
            pci_memory_window([(0, 128 * mib)]),
            Some((0x800_0000, PCI_MEMORY_WINDOW_END))
        );
        // Memory above 4 GiB does not move it; a ROM region below does.
        let regions = [(0, 64 * mib), (1 << 32, 1 << 30), (0x800_0000, mib)];
        assert_eq!(
            pci_memory_window(regions),
            Some((0x810_0000, PCI_MEMORY_WINDOW_END))
        );
        assert_eq!(pci_memory_window([]), Some((0, PCI_MEMORY_WINDOW_END)));
    }

    #[test]
    fn memory_reaching_past_the_window_leaves_none() {
        assert_eq!(pci_memory_window([(0, 0xfec0_0000)]), None);
        assert_eq!(pci_memory_window([(0xfeb0_0000, 1 << 33)]), None);
        assert_eq!(pci_memory_window([(0, u64::MAX)]), None);
        assert_eq!(
            pci_memory_window([(0, 0xfebf_ffff)]),
            Some((PCI_MEMORY_WINDOW_END, PCI_MEMORY_WINDOW_END))
        );
    }

    #[test]
    fn the_dsdt_declares_s5_and_the_root_bridge() {
        let dsdt = dsdt(Some((0x800_0000, PCI_MEMORY_WINDOW_END)), &[], false);
        assert_eq!((&dsdt[..4], dsdt[8], sum(&dsdt)), (&b"DSDT"[..], 2, 0));
        // Name (\_S5_, Package (4) { 0, 0, 0, 0 }): QEMU's soft-off type.
        let s5 = [
            0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x06, 4, 0, 0, 0, 0,
        ];
        assert!(contains(&dsdt, &s5), "{dsdt:02x?}");
        // _HID: EisaId ("PNP0A03") is the dword 0x030ad041.
        assert!(contains(&dsdt, b"_HID\x0c\x41\xd0\x0a\x03"));
        // The memory window: DWordMemory min 0x8000000, max 0xfebfffff.
        let window = [0x00, 0x00, 0x00, 0x08, 0xff, 0xff, 0xbf, 0xfe];
        assert!(contains(&dsdt, &window), "{dsdt:02x?}");
    }

    #[test]
    fn the_hpet_is_declared_only_when_the_vm_has_it() {
        let without = dsdt(None, &[], false);
        let with = dsdt(None, &[], true);
        assert_eq!(sum(&with), 0);
        // _HID: EisaId ("PNP0103") is the dword 0x0301d041.
        let hid = b"_HID\x0c\x41\xd0\x01\x03";
        assert!(contains(&with, hid) && !contains(&without, hid));
        // Memory32Fixed: read-only, base 0xfed00000, length 0x400.
        let block = [0x86, 9, 0, 0, 0x00, 0x00, 0xd0, 0xfe, 0x00, 0x04, 0, 0];
        assert!(contains(&with, &block), "{with:02x?}");
    }

    #[test]
    fn without_a_window_the_bridge_declares_no_memory() {
        let with = dsdt(Some((0x800_0000, PCI_MEMORY_WINDOW_END)), &[], false);
        let without = dsdt(None, &[], false);
        assert_eq!(
            dsdt(Some((0x2000, 0x1000)), &[], false),
            without,
            "an empty window"
        );
        assert_eq!(
            dsdt(Some((0, u32::MAX)), &[], false),
            without,
            "a 4 GiB window"
        );
        // A DWord address space descriptor (tag 0x87, 23 more bytes) appears only in `with`
        // (which grows by its 26 bytes, and perhaps a package length byte).
        assert!(with.len() >= without.len() + 26);
        assert!(contains(&with, &[0x87, 23, 0]) && !contains(&without, &[0x87, 23, 0]));
    }

    #[test]
    fn each_virtio_device_is_an_lnro0005_node_with_its_window_and_line() {
        let slot = |base, gsi| VirtioMmioSlot {
            base,
            length: 0x1000,
            gsi,
        };
        let dsdt = dsdt(None, &[slot(0xd000_0000, 5), slot(0xd000_1000, 6)], false);
        assert_eq!(sum(&dsdt), 0);
        assert!(contains(&dsdt, b"VR00") && contains(&dsdt, b"VR01"));
        assert!(contains(&dsdt, b"_HID\x0dLNRO0005\0"), "{dsdt:02x?}");
        // Memory32Fixed (tag 0x86, 9 bytes): read-write, base 0xd0001000, length 0x1000.
        let window = [0x86, 9, 0, 1, 0x00, 0x10, 0x00, 0xd0, 0x00, 0x10, 0, 0];
        assert!(contains(&dsdt, &window), "{dsdt:02x?}");
        // Extended interrupt (tag 0x89, 6 bytes): consumer, edge, active high, exclusive, 1
        // interrupt, GSI 6.
        let line = [0x89, 6, 0, 0x03, 1, 6, 0, 0, 0];
        assert!(contains(&dsdt, &line), "{dsdt:02x?}");
    }
}
