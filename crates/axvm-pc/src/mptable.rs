//! The Intel MultiProcessor Specification 1.4 tables a PC firmware provides: how kernels
//! that predate ACPI, or boot without it (Linux `acpi=off`, small Multiboot kernels), find
//! their CPUs, the IOAPIC and the ISA interrupt wiring.
//!
//! A kernel scans 0xf0000-0xfffff on 16-byte boundaries for the floating pointer "_MP_",
//! checks its checksum, and follows it to the configuration table "PCMP" right after it:
//! a header, then one entry per processor, the ISA bus, the IOAPIC, the IOAPIC pin of each
//! ISA IRQ, and the local APIC pins (LINT0 ExtINT, LINT1 NMI). It all lies in
//! [`MPTABLE_START`]..[`MPTABLE_END`] (or, when an image covers that, in the free bytes of
//! 0xf0000-0xfffff the boot layout found), which the e820 map reports reserved.

use alloc::format;
use alloc::vec::Vec;

use axvm::{AxVM, AxVMHal, ConfigError};

use crate::acpi::{checked_cpu_count, checksum, ioapic_id, write_area, PutLe};
use crate::layout::{
    CASCADE_IRQ, IOAPIC_ADDRESS, ISA_IRQS, LOCAL_APIC_ADDRESS, MPTABLE_END, MPTABLE_START,
    TIMER_IOAPIC_PIN, TIMER_IRQ,
};

const FLOATING_POINTER_LEN: usize = 16;
const HEADER_LEN: usize = 44;
const PROCESSOR_LEN: usize = 20;
/// Every entry but a processor's is 8 bytes.
const ENTRY_LEN: usize = 8;
/// Entries besides the processors': the bus, the IOAPIC, ISA IRQs 0-15 but the cascade, and
/// the two local interrupts.
const FIXED_ENTRIES: usize = 2 + (ISA_IRQS as usize - 1) + 2;
const AREA_LEN: usize = (MPTABLE_END - MPTABLE_START) as usize;

/// The most vCPUs the MP table area can describe (194). A VM with more still boots kernels
/// that read ACPI; the caller may skip the MP table for it.
pub const MAX_MP_CPUS: usize =
    (AREA_LEN - FLOATING_POINTER_LEN - HEADER_LEN - FIXED_ENTRIES * ENTRY_LEN) / PROCESSOR_LEN;

/// Specification revision 1.4.
const SPEC_REVISION: u8 = 4;
/// Local APIC version of KVM's in-kernel local APIC (an integrated xAPIC).
const LOCAL_APIC_VERSION: u8 = 0x14;
/// Version of KVM's in-kernel IOAPIC.
const IOAPIC_VERSION: u8 = 0x11;
/// CPU signature: family 6, model 0, stepping 0.
const CPU_SIGNATURE: u32 = 6 << 8;
/// CPUID feature flags: FPU (bit 0) and an on-chip APIC (bit 9).
const CPU_FEATURES: u32 = 1 | 1 << 9;

/// Entry types.
const PROCESSOR: u8 = 0;
const BUS: u8 = 1;
const IOAPIC: u8 = 2;
const IO_INTERRUPT: u8 = 3;
const LOCAL_INTERRUPT: u8 = 4;

/// Interrupt types of interrupt assignment entries.
const INT: u8 = 0;
const NMI: u8 = 1;
const EXT_INT: u8 = 3;

/// Builds the MP tables for `vm`'s vCPUs and writes them at `MPTABLE_START`.
pub fn write_mp_table<H: AxVMHal>(vm: &AxVM<H>) -> Result<(), ConfigError> {
    write_mp_table_at(vm, (MPTABLE_START, MPTABLE_END))
}

/// [`write_mp_table`] in `area` (`[start, end)`, inside 0xf0000-0xfffff so kernels find the
/// floating pointer), where the boot layout put it clear of the images.
pub fn write_mp_table_at<H: AxVMHal>(vm: &AxVM<H>, area: (u64, u64)) -> Result<(), ConfigError> {
    let image = mp_table_at(vm.config().cpu_num, area.0)?;
    write_area(vm, "MP tables", area, &image)
}

/// The bytes of the MP table area from [`MPTABLE_START`] on, for `cpu_num` vCPUs: the
/// floating pointer, then the configuration table.
pub fn mp_table(cpu_num: usize) -> Result<Vec<u8>, ConfigError> {
    mp_table_at(cpu_num, MPTABLE_START)
}

/// [`mp_table`] for an area starting at `base`: the floating pointer holds the table's
/// address.
pub(crate) fn mp_table_at(cpu_num: usize, base: u64) -> Result<Vec<u8>, ConfigError> {
    let cpu_count = checked_cpu_count(cpu_num)?;
    if cpu_num > MAX_MP_CPUS {
        return Err(ConfigError::invalid(
            "base.cpu_num",
            format!(
                "the MP table at {MPTABLE_START:#x}..{MPTABLE_END:#x} describes at most \
                 {MAX_MP_CPUS} vCPUs, not {cpu_num}; kernels that read ACPI's MADT see them all"
            ),
        ));
    }
    let config_table_at = base + FLOATING_POINTER_LEN as u64;
    let mut image = floating_pointer(config_table_at as u32).to_vec();
    image.extend_from_slice(&configuration_table(cpu_count));
    debug_assert!(image.len() <= AREA_LEN);
    Ok(image)
}

/// The floating pointer structure: where the configuration table is. Feature bytes 0: the
/// table exists (no default configuration), and no IMCR, so the machine is in virtual-wire
/// mode and a kernel leaves the PIC wired to LINT0.
fn floating_pointer(config_table: u32) -> [u8; FLOATING_POINTER_LEN] {
    let mut pointer = Vec::with_capacity(FLOATING_POINTER_LEN);
    pointer
        .put_bytes(b"_MP_")
        .put_u32(config_table)
        .put_u8(1) // length in 16-byte units
        .put_u8(SPEC_REVISION)
        .put_u8(0) // checksum
        .put_bytes(&[0; 5]); // feature bytes 1-5
    pointer[10] = checksum(&pointer);
    pointer
        .try_into()
        .expect("the floating pointer is 16 bytes")
}

/// The configuration table: header, then the entries in the order the spec requires
/// (processors, buses, IOAPICs, I/O interrupts, local interrupts).
fn configuration_table(cpu_count: u8) -> Vec<u8> {
    let ioapic = ioapic_id(cpu_count.into());
    let mut entries = Vec::new();
    for apic_id in 0..cpu_count {
        entries.put_bytes(&processor(apic_id));
    }
    entries.put_u8(BUS).put_u8(0).put_bytes(b"ISA   ");
    // IOAPIC: id, version, enabled, address.
    entries
        .put_u8(IOAPIC)
        .put_u8(ioapic)
        .put_u8(IOAPIC_VERSION)
        .put_u8(1)
        .put_u32(IOAPIC_ADDRESS);
    for irq in (0..ISA_IRQS).filter(|&irq| irq != CASCADE_IRQ) {
        let pin = if irq == TIMER_IRQ {
            TIMER_IOAPIC_PIN
        } else {
            irq
        };
        entries.put_bytes(&interrupt(IO_INTERRUPT, INT, irq, ioapic, pin));
    }
    // The PIC's output on the BSP's LINT0 (virtual wire); NMI on every CPU's LINT1.
    entries.put_bytes(&interrupt(LOCAL_INTERRUPT, EXT_INT, 0, 0, 0));
    entries.put_bytes(&interrupt(LOCAL_INTERRUPT, NMI, 0, 0xff, 1));
    let count = usize::from(cpu_count) + FIXED_ENTRIES;
    header_with(entries, count)
}

/// The 44-byte header before `entries`, with the length, entry count and checksum that make
/// a kernel accept the table.
fn header_with(entries: Vec<u8>, count: usize) -> Vec<u8> {
    let mut table = Vec::with_capacity(HEADER_LEN + entries.len());
    table
        .put_bytes(b"PCMP")
        .put_u16((HEADER_LEN + entries.len()) as u16)
        .put_u8(SPEC_REVISION)
        .put_u8(0) // checksum
        .put_bytes(b"AXVM    ") // OEM ID
        .put_bytes(b"AXVM        ") // product ID
        .put_u32(0) // OEM table pointer
        .put_u16(0) // OEM table size
        .put_u16(count as u16)
        .put_u32(LOCAL_APIC_ADDRESS)
        .put_u16(0) // extended table length
        .put_u8(0) // extended table checksum
        .put_u8(0); // reserved
    debug_assert_eq!(table.len(), HEADER_LEN);
    table.extend_from_slice(&entries);
    table[7] = checksum(&table);
    table
}

/// A processor entry: enabled, and the bootstrap processor for vCPU 0, which the kernel
/// then knows is the one running it and starts the others with INIT-SIPI.
fn processor(apic_id: u8) -> [u8; PROCESSOR_LEN] {
    let flags = if apic_id == 0 { 0b11 } else { 0b01 }; // BP, EN
    let mut entry = Vec::with_capacity(PROCESSOR_LEN);
    entry
        .put_u8(PROCESSOR)
        .put_u8(apic_id)
        .put_u8(LOCAL_APIC_VERSION)
        .put_u8(flags)
        .put_u32(CPU_SIGNATURE)
        .put_u32(CPU_FEATURES)
        .put_bytes(&[0; 8]);
    entry.try_into().expect("a processor entry is 20 bytes")
}

/// An I/O or local interrupt assignment from ISA IRQ `irq`, with flags 0 (polarity and
/// trigger as the ISA bus defines them: active high, edge).
fn interrupt(entry: u8, kind: u8, irq: u8, destination: u8, pin: u8) -> [u8; ENTRY_LEN] {
    [entry, kind, 0, 0, 0, irq, destination, pin]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0, |s, b| s.wrapping_add(*b))
    }

    #[test]
    fn floating_pointer_and_table_checksum_to_zero() {
        let image = mp_table(2).unwrap();
        assert_eq!(&image[..4], b"_MP_");
        assert_eq!(sum(&image[..16]), 0);
        let table = &image[16..];
        assert_eq!(&table[..4], b"PCMP");
        assert_eq!(
            usize::from(u16::from_le_bytes([table[4], table[5]])),
            table.len()
        );
        assert_eq!(sum(table), 0);
        assert_eq!(u16::from_le_bytes([table[34], table[35]]), 2 + 19);
    }

    #[test]
    fn one_processor_entry_per_vcpu_with_the_bsp_first() {
        for cpus in [1u8, 2, 4] {
            let table = configuration_table(cpus);
            let processors: Vec<_> = table[HEADER_LEN..]
                .chunks(PROCESSOR_LEN)
                .take(cpus.into())
                .collect();
            assert!(processors.iter().all(|entry| entry[0] == PROCESSOR));
            assert_eq!(processors[0][3], 0b11);
            assert!(processors[1..].iter().all(|entry| entry[3] == 0b01));
            let bus = HEADER_LEN + PROCESSOR_LEN * usize::from(cpus);
            assert_eq!(table[bus], BUS);
            assert_eq!(
                table[bus + 2 * ENTRY_LEN..][..8],
                [3, 0, 0, 0, 0, 0, cpus, 2]
            );
        }
    }

    #[test]
    fn the_area_holds_max_mp_cpus_and_no_more() {
        assert_eq!(MAX_MP_CPUS, 194);
        assert!(mp_table(MAX_MP_CPUS).unwrap().len() <= AREA_LEN);
        let err = mp_table(MAX_MP_CPUS + 1).unwrap_err();
        assert_eq!(err.field(), Some("base.cpu_num"), "{err}");
        assert!(mp_table(0).is_err());
    }
}
