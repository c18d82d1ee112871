//! The ACPI tables a PC firmware leaves in the BIOS area, written by axvm because its guests
//! boot without a BIOS. An SMP kernel learns its CPUs and interrupt controllers from them:
//!
//! - the RSDP ("RSD PTR "), which kernels find by scanning 0xe0000-0xfffff on 16-byte
//!   boundaries, or receive from their boot protocol (PVH `rsdp_paddr`, Linux
//!   `acpi_rsdp_addr`), points to both root tables:
//! - the RSDT (32-bit pointers, what 32-bit kernels read) and the XSDT (64-bit pointers), each
//!   listing the FADT and the MADT;
//! - the FADT ("FACP"): the fixed hardware. Not hardware-reduced, so kernels keep using the
//!   legacy PIC and PIT; SCI on IRQ 9; reboot through the reset register (port 0xcf9); it
//!   points to the DSDT (a header without AML: there are no ACPI devices) and the FACS;
//! - the MADT ("APIC"): one enabled local APIC per vCPU (processor id = APIC id = vCPU id),
//!   the IOAPIC, and the ISA IRQs that do not reach the IOAPIC pin of their own number.
//!
//! Every table lies in [`ACPI_START`]..[`ACPI_END`], the RSDP first; the e820 map reports the
//! area reserved, so the kernel does not reuse it.

use axvm::config::MAX_CPU_NUM;
use axvm::{AxVM, AxVMHal, ConfigError, GuestPhysAddr};

use super::layout::{ACPI_END, ACPI_START};

/// Where every local APIC's registers are (KVM's in-kernel local APIC).
pub const LOCAL_APIC_ADDRESS: u32 = 0xfee0_0000;
/// Where the IOAPIC's registers are (KVM's in-kernel IOAPIC).
pub const IOAPIC_ADDRESS: u32 = 0xfec0_0000;
/// The IOAPIC pin of ISA IRQ 0: KVM's default routing sends the in-kernel PIT's GSI 0 to
/// IOAPIC pin 2, as PC chipsets do, so a kernel must be told to look there.
pub const PIT_IOAPIC_PIN: u8 = 2;
/// The ISA IRQ of the ACPI system control interrupt (as on QEMU's PC).
pub const SCI_IRQ: u8 = 9;
/// The reset register the FADT names: the chipset's reset control port.
pub const RESET_PORT: u16 = 0xcf9;
/// What a kernel writes to [`RESET_PORT`] to reboot: "reset CPU" with "system reset".
pub const RESET_VALUE: u8 = 0x06;

/// Identifies axvm as the tables' maker (the OEM ID kernels print at boot).
const OEM_ID: [u8; 6] = *b"AXVM  ";
const OEM_TABLE_ID: [u8; 8] = *b"AXVM    ";
const CREATOR_ID: [u8; 4] = *b"AXVM";
const HEADER_LEN: usize = 36;
const RSDP_LEN: usize = 36;

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

/// Builds the ACPI tables for `vm`'s vCPUs and writes them at [`ACPI_START`]; returns the
/// RSDP's address, for boot protocols that pass it to the kernel.
pub fn write_acpi_tables<H: AxVMHal>(vm: &AxVM<H>) -> Result<GuestPhysAddr, ConfigError> {
    let image = acpi_tables(vm.config().cpu_num)?;
    write_area(vm, "ACPI tables", (ACPI_START, ACPI_END), &image)?;
    Ok(GuestPhysAddr::new(ACPI_START))
}

/// The bytes of the ACPI area from [`ACPI_START`] on, for `cpu_num` vCPUs: the RSDP, then
/// the FACS, DSDT, FADT, MADT, RSDT and XSDT.
pub fn acpi_tables(cpu_num: usize) -> Result<Vec<u8>, ConfigError> {
    let cpu_count = checked_cpu_count(cpu_num)?;
    let mut area = vec![0; RSDP_LEN];
    let facs = place(&mut area, &facs(), 64);
    let dsdt = place(&mut area, &dsdt(), 16);
    let fadt = place(&mut area, &fadt(facs, dsdt), 16);
    let madt = place(&mut area, &madt(cpu_count), 16);
    let rsdt = place(&mut area, &rsdt(&[fadt, madt]), 16);
    let xsdt = place(&mut area, &xsdt(&[fadt, madt]), 16);
    area[..RSDP_LEN].copy_from_slice(&rsdp(rsdt, xsdt));
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

/// Appends `table` to `area` at the next `align`-aligned offset; returns its address.
fn place(area: &mut Vec<u8>, table: &[u8], align: usize) -> u64 {
    let offset = area.len().next_multiple_of(align);
    area.resize(offset, 0);
    area.extend_from_slice(table);
    ACPI_START + offset as u64
}

/// The common 36-byte header of a system description table, length and checksum left for
/// [`finish_sdt`].
fn sdt_header(signature: &[u8; 4], revision: u8) -> Vec<u8> {
    let mut table = Vec::with_capacity(256);
    table
        .put_bytes(signature)
        .put_u32(0) // length
        .put_u8(revision)
        .put_u8(0) // checksum
        .put_bytes(&OEM_ID)
        .put_bytes(&OEM_TABLE_ID)
        .put_u32(1) // OEM revision
        .put_bytes(&CREATOR_ID)
        .put_u32(1); // creator revision
    debug_assert_eq!(table.len(), HEADER_LEN);
    table
}

/// Fills in a table's length and checksum, which kernels check before using it.
fn finish_sdt(mut table: Vec<u8>) -> Vec<u8> {
    let len = table.len() as u32;
    table[4..8].copy_from_slice(&len.to_le_bytes());
    table[9] = 0;
    table[9] = checksum(&table);
    table
}

/// The RSDP (ACPI 2.0+, 36 bytes): its first 20 bytes (the ACPI 1.0 part, with the RSDT)
/// and the whole structure each sum to zero.
fn rsdp(rsdt: u64, xsdt: u64) -> Vec<u8> {
    let mut rsdp = Vec::with_capacity(RSDP_LEN);
    rsdp.put_bytes(b"RSD PTR ")
        .put_u8(0) // checksum of the first 20 bytes
        .put_bytes(&OEM_ID)
        .put_u8(2) // revision: ACPI 2.0 or later, the XSDT is valid
        .put_u32(rsdt as u32) // below 1 MiB
        .put_u32(RSDP_LEN as u32)
        .put_u64(xsdt)
        .put_u8(0) // extended checksum
        .put_bytes(&[0; 3]);
    rsdp[8] = checksum(&rsdp[..20]);
    rsdp[32] = checksum(&rsdp);
    rsdp
}

/// The RSDT: 32-bit table pointers, all a 32-bit kernel (or ACPI 1.0 reader) follows.
fn rsdt(tables: &[u64]) -> Vec<u8> {
    let mut table = sdt_header(b"RSDT", 1);
    for &address in tables {
        table.put_u32(address as u32); // below 1 MiB
    }
    finish_sdt(table)
}

/// The XSDT: the same tables with 64-bit pointers, which ACPI 2.0+ kernels prefer.
fn xsdt(tables: &[u64]) -> Vec<u8> {
    let mut table = sdt_header(b"XSDT", 1);
    for &address in tables {
        table.put_u64(address);
    }
    finish_sdt(table)
}

/// The DSDT: a valid, empty definition block (revision 2: 64-bit AML integers). There are
/// no ACPI devices to describe; kernels load it without complaint.
fn dsdt() -> Vec<u8> {
    finish_sdt(sdt_header(b"DSDT", 2))
}

/// The FACS (64 bytes, 64-byte aligned, no checksum): required by non-hardware-reduced
/// ACPI for its global lock and waking vector, which stay unused here.
fn facs() -> Vec<u8> {
    let mut facs = Vec::with_capacity(64);
    facs.put_bytes(b"FACS")
        .put_u32(64) // length
        .put_u32(0) // hardware signature
        .put_u32(0) // firmware waking vector
        .put_u32(0) // global lock
        .put_u32(0) // flags
        .put_u64(0) // 64-bit waking vector
        .put_u8(2) // version
        .put_bytes(&[0; 3])
        .put_u32(0) // OSPM flags
        .put_bytes(&[0; 24]);
    facs
}

/// FADT flags: WBINVD works (bit 0), C1 (HLT) works on every CPU (bit 2), the power and sleep
/// buttons are not fixed hardware (bits 4, 5), and RESET_REG is supported (bit 10).
const FADT_FLAGS: u32 = 1 | 1 << 2 | 1 << 4 | 1 << 5 | 1 << 10;
/// IA-PC boot architecture flags: legacy ISA devices (bit 0) and an i8042 (bit 1), so that
/// kernels probe the keyboard controller instead of assuming it absent.
const IAPC_BOOT_ARCH: u16 = 1 | 1 << 1;

/// The FADT, ACPI 6.0 layout (revision 6, 276 bytes). Offsets in the comments.
fn fadt(facs: u64, dsdt: u64) -> Vec<u8> {
    let mut table = sdt_header(b"FACP", 6);
    table
        .put_u32(facs as u32) // 36 FIRMWARE_CTRL (X_FIRMWARE_CTRL stays 0, as the spec asks)
        .put_u32(dsdt as u32) // 40 DSDT
        .put_u8(0) // 44 reserved
        .put_u8(0) // 45 preferred PM profile: unspecified
        .put_u16(SCI_IRQ.into()) // 46 SCI_INT
        .put_u32(0) // 48 SMI_CMD: none, the machine is always in ACPI mode
        .put_bytes(&[0; 4]) // 52 ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
        .put_bytes(&[0; 32]) // 56 PM1a/b event and control, PM2, PM timer, GPE0/1: none
        .put_bytes(&[0; 8]) // 88 their lengths, GPE1_BASE, CST_CNT
        .put_u16(101) // 96 P_LVL2_LAT > 100: no C2
        .put_u16(1001) // 98 P_LVL3_LAT > 1000: no C3
        .put_u32(0) // 100 FLUSH_SIZE, FLUSH_STRIDE
        .put_bytes(&[0; 5]) // 104 DUTY_OFFSET, DUTY_WIDTH, DAY_ALRM, MON_ALRM, CENTURY
        .put_u16(IAPC_BOOT_ARCH) // 109
        .put_u8(0) // 111 reserved
        .put_u32(FADT_FLAGS) // 112
        .put_bytes(&io_port_register(RESET_PORT)) // 116 RESET_REG
        .put_u8(RESET_VALUE) // 128
        .put_u16(0) // 129 ARM_BOOT_ARCH
        .put_u8(0) // 131 minor version: 6.0
        .put_u64(0) // 132 X_FIRMWARE_CTRL
        .put_u64(dsdt) // 140 X_DSDT
        .put_bytes(&[0; 12 * 10]) // 148 X_PM1a_EVT_BLK .. SLEEP_STATUS_REG: none
        .put_bytes(b"AXVM\0\0\0\0"); // 268 hypervisor vendor identity
    finish_sdt(table)
}

/// A generic address structure naming one byte-wide I/O port.
fn io_port_register(port: u16) -> [u8; 12] {
    let mut gas = Vec::with_capacity(12);
    gas.put_u8(1) // address space: system I/O
        .put_u8(8) // register width in bits
        .put_u8(0) // bit offset
        .put_u8(1) // access size: byte
        .put_u64(port.into());
    gas.try_into()
        .expect("a generic address structure is 12 bytes")
}

/// MADT flags: PCAT_COMPAT, the machine also has dual 8259 PICs, which kernels then mask.
const MADT_PCAT_COMPAT: u32 = 1;
/// MPS INTI flags of the SCI: active high (bits 0-1 = 01), level-triggered (bits 2-3 = 11).
const LEVEL_ACTIVE_HIGH: u16 = 0b1101;

/// The MADT: the table kernels enumerate CPUs and find the IOAPIC from.
fn madt(cpu_count: u8) -> Vec<u8> {
    let mut table = sdt_header(b"APIC", 4);
    table.put_u32(LOCAL_APIC_ADDRESS).put_u32(MADT_PCAT_COMPAT);
    for id in 0..cpu_count {
        // Processor Local APIC: type 0, length 8, ACPI processor UID, APIC ID, enabled.
        table.put_u8(0).put_u8(8).put_u8(id).put_u8(id).put_u32(1);
    }
    // I/O APIC: type 1, length 12, id, reserved, address, first GSI.
    table
        .put_u8(1)
        .put_u8(12)
        .put_u8(ioapic_id(cpu_count.into()))
        .put_u8(0)
        .put_u32(IOAPIC_ADDRESS)
        .put_u32(0);
    // Interrupt source overrides: type 2, length 10, bus 0 (ISA), IRQ, GSI, INTI flags. The
    // PIT's IRQ 0 is on GSI 2 (flags 0: ISA's edge, active high); the SCI is level, high.
    for (irq, gsi, flags) in [
        (0, PIT_IOAPIC_PIN, 0),
        (SCI_IRQ, SCI_IRQ, LEVEL_ACTIVE_HIGH),
    ] {
        table.put_u8(2).put_u8(10).put_u8(0).put_u8(irq);
        table.put_u32(gsi.into()).put_u16(flags);
    }
    // Local APIC NMI: type 4, length 6, every processor (0xff), flags 0, LINT1.
    table.put_u8(4).put_u8(6).put_u8(0xff).put_u16(0).put_u8(1);
    finish_sdt(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0, |s, b| s.wrapping_add(*b))
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    /// The table at guest address `gpa` in an image starting at ACPI_START.
    fn table_at(image: &[u8], gpa: u64) -> &[u8] {
        let at = (gpa - ACPI_START) as usize;
        &image[at..at + u32_at(image, at + 4) as usize]
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
        let image = acpi_tables(4).unwrap();
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
        assert_eq!(sum(table_at(&image, u32_at(fadt, 40).into())), 0);
    }

    #[test]
    fn madt_lists_one_local_apic_per_vcpu() {
        for cpus in [1, 2, 4, MAX_CPU_NUM] {
            let madt = madt(cpus as u8);
            assert_eq!(sum(&madt), 0);
            let apics: Vec<_> = madt[44..].chunks(8).take_while(|e| e[0] == 0).collect();
            assert_eq!(apics.len(), cpus);
            assert!(apics
                .iter()
                .enumerate()
                .all(|(i, e)| e[2..4] == [i as u8; 2]));
            assert_eq!(madt[44 + 8 * cpus + 2], cpus as u8, "IOAPIC id");
        }
    }

    #[test]
    fn vcpu_counts_the_tables_cannot_describe_are_refused() {
        for cpus in [0, MAX_CPU_NUM + 1, 300] {
            let err = acpi_tables(cpus).unwrap_err();
            assert_eq!(err.field(), Some("base.cpu_num"), "{err}");
        }
        assert!(acpi_tables(MAX_CPU_NUM).unwrap().len() < (ACPI_END - ACPI_START) as usize);
    }
}
