//! The table plumbing every ACPI table shares: the common header and its checksum, the
//! RSDP and the two root tables that list the others, and the FACS.

use alloc::vec::Vec;

use super::{checksum, PutLe, CREATOR_ID, HEADER_LEN, OEM_ID, OEM_TABLE_ID, RSDP_LEN};

/// The common 36-byte header of a system description table, length and checksum left for
/// [`finish_sdt`].
pub(super) fn sdt_header(signature: &[u8; 4], revision: u8) -> Vec<u8> {
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
pub(super) fn finish_sdt(mut table: Vec<u8>) -> Vec<u8> {
    let len = table.len() as u32;
    table[4..8].copy_from_slice(&len.to_le_bytes());
    table[9] = 0;
    table[9] = checksum(&table);
    table
}

/// The RSDP (ACPI 2.0+, 36 bytes): its first 20 bytes (the ACPI 1.0 part, with the RSDT)
/// and the whole structure each sum to zero.
pub(super) fn rsdp(rsdt: u64, xsdt: u64) -> Vec<u8> {
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
pub(super) fn rsdt(tables: &[u64]) -> Vec<u8> {
    let mut table = sdt_header(b"RSDT", 1);
    for &address in tables {
        table.put_u32(address as u32); // below 1 MiB
    }
    finish_sdt(table)
}

/// The XSDT: the same tables with 64-bit pointers, which ACPI 2.0+ kernels prefer.
pub(super) fn xsdt(tables: &[u64]) -> Vec<u8> {
    let mut table = sdt_header(b"XSDT", 1);
    for &address in tables {
        table.put_u64(address);
    }
    finish_sdt(table)
}

/// The FACS (64 bytes, 64-byte aligned, no checksum): required by non-hardware-reduced
/// ACPI for its global lock and waking vector, which stay unused here.
pub(super) fn facs() -> Vec<u8> {
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
