//! The Multiboot information structure (EBX at entry) and what it points to, written in
//! the boot data area: the memory sizes, the command line, the ramdisk as the one module
//! (named "ramdisk": axvm gets the ramdisk's bytes, not its file name), the memory map and
//! the boot loader name "axvm".

use alloc::vec::Vec;

use axvm::{AxVM, AxVMHal, ConfigError, GuestPhysAddr};

use crate::boot_info::BootInfoWriter;
use crate::e820::{e820_map, lower_and_upper_memory_kib, E820Entry};
use crate::placement::RamdiskPlacement;

/// Information structure flags for the fields axvm fills.
const INFO_MEM: u32 = 1 << 0;
const INFO_CMDLINE: u32 = 1 << 2;
const INFO_MODS: u32 = 1 << 3;
const INFO_MMAP: u32 = 1 << 6;
const INFO_LOADER_NAME: u32 = 1 << 9;
/// Size of the information structure (up to and including the framebuffer fields).
const INFO_SIZE: usize = 116;
/// Writes the command line, loader name, module list, memory map and, last, the
/// information structure pointing at them, from the start of `area`; returns the
/// structure's address.
pub(super) fn write_info<H: AxVMHal>(
    vm: &AxVM<H>,
    line: &str,
    ramdisk: Option<RamdiskPlacement>,
    area: (u64, u64),
) -> Result<GuestPhysAddr, ConfigError> {
    let config = vm.config();
    let mut writer = BootInfoWriter::new(vm, area);
    let cmdline = writer.push_str("Multiboot command line", line)?;
    let loader_name = writer.push_str("Multiboot boot loader name", "axvm")?;
    let (mods_count, mods_addr) = match ramdisk {
        Some(ramdisk) => {
            let name = writer.push_str("Multiboot module name", "ramdisk")?;
            let entry = module_entry(ramdisk, name);
            (1, writer.push("Multiboot module list", &entry, 4)?)
        }
        None => (0, GuestPhysAddr::new(0)),
    };
    let map = e820_map(config);
    let mmap: Vec<u8> = map.iter().flat_map(mmap_entry).collect();
    let mmap_addr = writer.push("Multiboot memory map", &mmap, 8)?;
    let (lower, upper) = lower_and_upper_memory_kib(&map);
    let mut info = [0u8; INFO_SIZE];
    let mut put = |at: usize, value: u32| info[at..at + 4].copy_from_slice(&value.to_le_bytes());
    put(
        0,
        INFO_MEM | INFO_CMDLINE | INFO_MODS | INFO_MMAP | INFO_LOADER_NAME,
    );
    put(4, saturate(lower));
    put(8, saturate(upper));
    put(16, low32(cmdline));
    put(20, mods_count);
    put(24, low32(mods_addr));
    put(44, mmap.len() as u32);
    put(48, low32(mmap_addr));
    put(64, low32(loader_name));
    writer.push("Multiboot information", &info, 8)
}

/// One module entry: mod_start, mod_end (exclusive), string, reserved.
fn module_entry(ramdisk: RamdiskPlacement, name: GuestPhysAddr) -> Vec<u8> {
    let start = ramdisk.gpa.as_u64();
    [start, start + ramdisk.size, name.as_u64(), 0]
        .iter()
        .flat_map(|&value| (value as u32).to_le_bytes())
        .collect()
}

/// One memory map entry: size (20, the bytes after this field), base, length, type.
fn mmap_entry(entry: &E820Entry) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(24);
    bytes.extend_from_slice(&20u32.to_le_bytes());
    bytes.extend_from_slice(&entry.addr.to_le_bytes());
    bytes.extend_from_slice(&entry.size.to_le_bytes());
    bytes.extend_from_slice(&(entry.kind as u32).to_le_bytes());
    bytes
}

/// Boot data lies below 4 GiB ([`low_memory`](crate::low_memory)), so its addresses fit the 32-bit fields.
fn low32(gpa: GuestPhysAddr) -> u32 {
    gpa.as_u64() as u32
}

fn saturate(kib: u64) -> u32 {
    u32::try_from(kib).unwrap_or(u32::MAX)
}
