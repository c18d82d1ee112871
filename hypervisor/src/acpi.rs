//! Just enough ACPI to find the CPUs: the RSDP that the firmware (SeaBIOS under QEMU) leaves in
//! the EBDA or the BIOS area, the RSDT/XSDT, and the local APIC entries of the MADT.

use crate::mm::phys;

/// Where the RSDP may lie: the first KiB of the EBDA, and the BIOS area 0xe0000-0xfffff.
const EBDA_SEGMENT_POINTER: u64 = 0x40e;
const BIOS_AREA: (u64, u64) = (0xe_0000, 0x10_0000);
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// The ACPI 1.0 RSDP's length, over which its checksum runs.
const RSDP_V1_LEN: u64 = 20;
/// Table header length; the length field's offset.
const HEADER_LEN: u64 = 36;
const LENGTH_OFFSET: u64 = 4;
/// Tables longer than this are not believed (a corrupt header would make the walk run wild).
const MAX_TABLE_LEN: u32 = 1 << 20;
/// MADT: entries start after the header, the local APIC address and the flags.
const MADT_ENTRIES: u64 = HEADER_LEN + 8;
/// MADT entry type 0, "processor local APIC": ACPI ID, APIC ID, flags (enabled, online capable).
const MADT_LOCAL_APIC: u8 = 0;
const LAPIC_ENABLED: u32 = 1 << 0;
const LAPIC_ONLINE_CAPABLE: u32 = 1 << 1;

fn signature_at(pa: u64, signature: &[u8]) -> bool {
    signature
        .iter()
        .enumerate()
        .all(|(i, &byte)| phys::read_u8(pa + i as u64) == byte)
}

fn checksum_ok(pa: u64, len: u64) -> bool {
    (0..len).fold(0u8, |sum, i| sum.wrapping_add(phys::read_u8(pa + i))) == 0
}

fn find_rsdp() -> Option<u64> {
    let ebda = u64::from(phys::read_u16(EBDA_SEGMENT_POINTER)) << 4;
    let areas = [(ebda, ebda + 1024), BIOS_AREA];
    areas
        .into_iter()
        .filter(|&(start, _)| start != 0)
        .flat_map(|(start, end)| (start..end).step_by(16))
        .find(|&pa| signature_at(pa, RSDP_SIGNATURE) && checksum_ok(pa, RSDP_V1_LEN))
}

/// The physical address and length of the first table with `signature`, through the XSDT
/// (ACPI 2.0+) or the RSDT.
fn find_table(signature: &[u8; 4]) -> Option<(u64, u32)> {
    let rsdp = find_rsdp()?;
    let revision = phys::read_u8(rsdp + 15);
    let (root, entry_size) = if revision >= 2 && phys::read_u64(rsdp + 24) != 0 {
        (phys::read_u64(rsdp + 24), 8)
    } else {
        (u64::from(phys::read_u32(rsdp + 16)), 4)
    };
    let root_len = table_len(root)?;
    let entries = (u64::from(root_len) - HEADER_LEN) / entry_size;
    (0..entries)
        .map(|i| root + HEADER_LEN + i * entry_size)
        .map(|at| {
            if entry_size == 8 {
                phys::read_u64(at)
            } else {
                u64::from(phys::read_u32(at))
            }
        })
        .filter(|&table| signature_at(table, signature))
        .find_map(|table| Some((table, table_len(table)?)))
}

fn table_len(table: u64) -> Option<u32> {
    let len = phys::read_u32(table + LENGTH_OFFSET);
    (u64::from(len) >= HEADER_LEN && len <= MAX_TABLE_LEN).then_some(len)
}

/// Calls `each(apic_id)` for every usable processor of the MADT (enabled or online capable),
/// in table order. `false` when there is no RSDP or MADT.
pub fn for_each_cpu(mut each: impl FnMut(u8)) -> bool {
    let Some((madt, len)) = find_table(b"APIC") else {
        return false;
    };
    let end = madt + u64::from(len);
    let mut entry = madt + MADT_ENTRIES;
    while entry + 2 <= end {
        let kind = phys::read_u8(entry);
        let entry_len = u64::from(phys::read_u8(entry + 1));
        if entry_len < 2 || entry + entry_len > end {
            break;
        }
        if kind == MADT_LOCAL_APIC && entry_len >= 8 {
            let flags = phys::read_u32(entry + 4);
            if flags & (LAPIC_ENABLED | LAPIC_ONLINE_CAPABLE) != 0 {
                each(phys::read_u8(entry + 3));
            }
        }
        entry += entry_len;
    }
    true
}
