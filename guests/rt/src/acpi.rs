//! Just enough ACPI to count processors: find the RSDP, follow the XSDT (or
//! the RSDT) to a table by signature, walk the MADT's local APIC entries.
//! Every structure's checksum is checked; all addresses are physical
//! (identity-mapped).
//!
//! Layouts (ACPI 6.x): RSDP: `"RSD PTR "`, checksum over bytes 0..20 at 8,
//! revision at 15, RSDT address (u32) at 16; from revision 2 also length
//! (u32) at 20, XSDT address (u64) at 24, extended checksum over `length`
//! bytes at 32. A system description table has a 36-byte header (signature,
//! u32 length at 4, checksum at 9 over `length` bytes); the RSDT's entries
//! are u32 addresses, the XSDT's u64. The MADT (`"APIC"`) has the local APIC
//! address (u32) at 36, flags at 40 and variable entries from 44, each
//! `{ u8 type, u8 length, ... }`: type 0 (processor local APIC: ACPI id at 2,
//! APIC id at 3, u32 flags at 4) and type 9 (x2APIC: u32 x2APIC id at 4, u32
//! flags at 8); flags bit 0 = enabled.

/// Where firmware puts the RSDP when there is no EFI: the BIOS area
/// 0xe0000-0xfffff, on a 16-byte boundary.
pub const RSDP_SCAN_START: usize = 0xe_0000;
/// One past the end of the scanned area.
pub const RSDP_SCAN_END: usize = 0x10_0000;
/// Length of the SDT header.
const SDT_HEADER_LEN: usize = 36;
/// Sanity limit on a table's length, so a corrupt length does not make the
/// guest sum up gigabytes.
const MAX_TABLE_LEN: u32 = 1 << 20;

fn u8_at(addr: usize) -> u8 {
    // SAFETY: callers pass addresses inside ACPI structures they found in
    // identity-mapped guest RAM.
    unsafe { core::ptr::read_volatile(addr as *const u8) }
}

fn u32_at(addr: usize) -> u32 {
    // SAFETY: as for `u8_at`; unaligned reads are single `mov`s on x86.
    unsafe { core::ptr::read_unaligned(addr as *const u32) }
}

fn u64_at(addr: usize) -> u64 {
    // SAFETY: as for `u32_at`.
    unsafe { core::ptr::read_unaligned(addr as *const u64) }
}

/// Whether the `len` bytes at `addr` sum to 0 (mod 256).
pub fn checksum_ok(addr: usize, len: usize) -> bool {
    (0..len).fold(0u8, |sum, i| sum.wrapping_add(u8_at(addr + i))) == 0
}

/// A validated RSDP.
#[derive(Clone, Copy, Debug)]
pub struct Rsdp {
    /// Its physical address.
    pub addr: usize,
    /// 0 for ACPI 1.0 (RSDT only), 2 and up with an XSDT.
    pub revision: u8,
    /// RSDT address.
    pub rsdt: u32,
    /// XSDT address (0 before revision 2).
    pub xsdt: u64,
}

/// What went wrong looking for a table.
pub type Error = &'static str;

/// Reads and validates the RSDP at `addr`.
pub fn rsdp_at(addr: usize) -> Result<Rsdp, Error> {
    if u64_at(addr) != u64::from_le_bytes(*b"RSD PTR ") {
        return Err("no \"RSD PTR \" signature");
    }
    if !checksum_ok(addr, 20) {
        return Err("RSDP checksum");
    }
    let revision = u8_at(addr + 15);
    let rsdt = u32_at(addr + 16);
    let mut xsdt = 0;
    if revision >= 2 {
        let len = u32_at(addr + 20);
        if !(36..=4096).contains(&len) || !checksum_ok(addr, len as usize) {
            return Err("RSDP extended checksum");
        }
        xsdt = u64_at(addr + 24);
    }
    Ok(Rsdp {
        addr,
        revision,
        rsdt,
        xsdt,
    })
}

/// Scans the BIOS area for a valid RSDP.
pub fn find_rsdp() -> Option<Rsdp> {
    (RSDP_SCAN_START..RSDP_SCAN_END)
        .step_by(16)
        .find_map(|addr| rsdp_at(addr).ok())
}

/// Validates the system description table at `addr`: its signature (if
/// given), a sane length and its checksum. Returns its length.
pub fn table_at(addr: usize, signature: Option<&[u8; 4]>) -> Result<usize, Error> {
    if addr == 0 || addr >= 1 << 32 {
        return Err("table address out of range");
    }
    if let Some(signature) = signature {
        if u32_at(addr) != u32::from_le_bytes(*signature) {
            return Err("wrong table signature");
        }
    }
    let len = u32_at(addr + 4);
    if !(SDT_HEADER_LEN as u32..=MAX_TABLE_LEN).contains(&len) {
        return Err("bad table length");
    }
    if !checksum_ok(addr, len as usize) {
        return Err("table checksum");
    }
    Ok(len as usize)
}

/// Finds the table with `signature` through the XSDT (revision 2 and a
/// non-zero XSDT address) or else the RSDT, checking both the root table and
/// the one found.
pub fn find_table(rsdp: &Rsdp, signature: &[u8; 4]) -> Result<usize, Error> {
    let (root, entry_size) = if rsdp.revision >= 2 && rsdp.xsdt != 0 {
        table_at(rsdp.xsdt as usize, Some(b"XSDT"))?;
        (rsdp.xsdt as usize, 8)
    } else {
        table_at(rsdp.rsdt as usize, Some(b"RSDT"))?;
        (rsdp.rsdt as usize, 4)
    };
    let len = u32_at(root + 4) as usize;
    let entries = (len - SDT_HEADER_LEN) / entry_size;
    for i in 0..entries {
        let at = root + SDT_HEADER_LEN + i * entry_size;
        let table = if entry_size == 8 {
            u64_at(at) as usize
        } else {
            u32_at(at) as usize
        };
        if table != 0 && table < 1 << 32 && u32_at(table) == u32::from_le_bytes(*signature) {
            table_at(table, Some(signature))?;
            return Ok(table);
        }
    }
    Err("table not found")
}

/// A processor the MADT lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Processor {
    /// Its local APIC ID.
    pub apic_id: u32,
    /// Flags bit 0: usable now.
    pub enabled: bool,
}

/// Calls `f` for every processor entry (local APIC or x2APIC) of the MADT at
/// `madt` (validated by [`find_table`]).
pub fn for_each_processor(madt: usize, mut f: impl FnMut(Processor)) {
    let end = madt + u32_at(madt + 4) as usize;
    let mut at = madt + 44;
    while at + 2 <= end {
        let (kind, len) = (u8_at(at), usize::from(u8_at(at + 1)));
        if len < 2 || at + len > end {
            break;
        }
        match (kind, len) {
            (0, 8..) => f(Processor {
                apic_id: u32::from(u8_at(at + 3)),
                enabled: u32_at(at + 4) & 1 != 0,
            }),
            (9, 16..) => f(Processor {
                apic_id: u32_at(at + 4),
                enabled: u32_at(at + 8) & 1 != 0,
            }),
            _ => {}
        }
        at += len;
    }
}
