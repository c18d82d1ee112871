//! QEMU's firmware configuration interface (fw_cfg), port form: a 16-bit write to the
//! selector port 0x510 chooses an item and rewinds it, byte reads of the data port 0x511
//! stream the item. Firmware and kernels built for QEMU (SeaBIOS, OVMF, Linux's
//! `qemu_fw_cfg`, many hobby kernels) learn the CPU count, the RAM size and the e820 memory
//! map here, with the values QEMU gives for the same machine (`-smp N -m SIZE`). Only the traditional interface is offered: the ID item does not claim DMA.
//!
//! Items are a map from selector to bytes, fixed when the VM is created; named files get
//! selectors from 0x20 on and are listed in the file directory (item 0x19).

use alloc::collections::BTreeMap;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use spin::{Mutex, MutexGuard};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, AxVMConfig, EmulatedDeviceType, MappingFlags};

use crate::e820::{ram_map, E820Entry};

/// The selector port (16-bit writes).
pub const FW_CFG_SELECTOR_PORT: u16 = 0x510;
/// The data port (byte reads).
pub const FW_CFG_DATA_PORT: u16 = 0x511;

/// Item: the signature "QEMU".
pub const FW_CFG_SIGNATURE: u16 = 0x00;
/// Item: the interface features (u32 LE).
pub const FW_CFG_ID: u16 = 0x01;
/// Item: RAM size in bytes (u64 LE).
pub const FW_CFG_RAM_SIZE: u16 = 0x03;
/// Item: number of CPUs (u16 LE).
pub const FW_CFG_NB_CPUS: u16 = 0x05;
/// Item: the most CPUs the machine may have (u16 LE). QEMU gives its `-smp maxcpus`,
/// strictly the bound on the APIC IDs firmware may see, which for `-smp N` is N; axvm has
/// no CPU hot-plug, so it is the CPU count too.
pub const FW_CFG_MAX_CPUS: u16 = 0x0f;
/// Item: the file directory.
pub const FW_CFG_FILE_DIR: u16 = 0x19;
/// The first file's selector.
pub const FW_CFG_FILE_FIRST: u16 = 0x20;

/// ID bit 0: the traditional (port) interface. Bit 1 (DMA) stays clear: no DMA interface.
const ID_TRADITIONAL: u32 = 1 << 0;
/// The selector bit that asks for writing to an item. Items are read-only here, so it only
/// selects the item, as a read-side selector.
const WRITE_CHANNEL: u16 = 0x4000;
/// A file name's size in the directory, with its terminating NUL.
const FILE_NAME_SIZE: usize = 56;

/// Which item is selected and how far the guest has read it.
#[derive(Default)]
struct Cursor {
    selector: u16,
    offset: usize,
}

/// The fw_cfg device.
pub struct FwCfg {
    items: BTreeMap<u16, Vec<u8>>,
    /// File names in selector order, for the directory.
    files: Vec<(String, u16)>,
    cursor: Mutex<Cursor>,
}

impl Default for FwCfg {
    /// The signature and ID items, an empty file directory, nothing else.
    fn default() -> Self {
        let fw_cfg = Self {
            items: BTreeMap::new(),
            files: Vec::new(),
            cursor: Mutex::new(Cursor::default()),
        };
        fw_cfg
            .with_item(FW_CFG_SIGNATURE, b"QEMU".to_vec())
            .with_item(FW_CFG_ID, ID_TRADITIONAL.to_le_bytes().to_vec())
            .with_item(FW_CFG_FILE_DIR, 0u32.to_be_bytes().to_vec())
    }
}

impl FwCfg {
    /// The items of the VM `config` describes: its CPU count (as the boot and the most
    /// CPUs), RAM size and RAM map (`etc/e820`, RAM only, as QEMU's).
    pub fn for_vm(config: &AxVMConfig) -> Self {
        let cpus = u16::try_from(config.cpu_num)
            .unwrap_or(u16::MAX)
            .to_le_bytes()
            .to_vec();
        Self::default()
            .with_item(FW_CFG_NB_CPUS, cpus.clone())
            .with_item(FW_CFG_MAX_CPUS, cpus)
            .with_item(FW_CFG_RAM_SIZE, ram_size(config).to_le_bytes().to_vec())
            .with_file("etc/e820", e820_file(&ram_map(config)))
    }

    /// Adds (or replaces) the item at `selector`.
    pub fn with_item(mut self, selector: u16, bytes: Vec<u8>) -> Self {
        self.items.insert(selector, bytes);
        self
    }

    /// Adds the file `name` at the next free file selector and lists it in the directory.
    ///
    /// # Panics
    /// If `name` does not fit the directory's 56-byte field with its NUL: names are
    /// fixed by axvm, so that is a bug.
    pub fn with_file(mut self, name: &str, bytes: Vec<u8>) -> Self {
        assert!(
            name.len() < FILE_NAME_SIZE,
            "fw_cfg file name too long: {name}"
        );
        let selector = FW_CFG_FILE_FIRST + self.files.len() as u16;
        self.files.push((name.to_string(), selector));
        self.items.insert(selector, bytes);
        let directory = self.directory();
        self.with_item(FW_CFG_FILE_DIR, directory)
    }

    /// The file directory, big-endian: the count, then per file its size, selector, two
    /// reserved bytes and NUL-padded name.
    fn directory(&self) -> Vec<u8> {
        let mut dir = (self.files.len() as u32).to_be_bytes().to_vec();
        for (name, selector) in &self.files {
            let size = self.items.get(selector).map_or(0, Vec::len) as u32;
            dir.extend_from_slice(&size.to_be_bytes());
            dir.extend_from_slice(&selector.to_be_bytes());
            dir.extend_from_slice(&[0, 0]);
            let mut field = [0u8; FILE_NAME_SIZE];
            field[..name.len()].copy_from_slice(name.as_bytes());
            dir.extend_from_slice(&field);
        }
        dir
    }

    fn cursor(&self) -> MutexGuard<'_, Cursor> {
        self.cursor.lock()
    }
}

/// Bytes of RAM: the sum of the config's writable regions.
fn ram_size(config: &AxVMConfig) -> u64 {
    config
        .memory_regions
        .iter()
        .filter(|region| region.flags.contains(MappingFlags::WRITE))
        .map(|region| region.size)
        .sum()
}

/// `etc/e820` as QEMU lays it out: per entry u64 address, u64 length, u32 type, LE.
fn e820_file(map: &[E820Entry]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(map.len() * 20);
    for entry in map {
        bytes.extend_from_slice(&entry.addr.to_le_bytes());
        bytes.extend_from_slice(&entry.size.to_le_bytes());
        bytes.extend_from_slice(&(entry.kind as u32).to_le_bytes());
    }
    bytes
}

/// The selector and data ports' offsets in the device's one range.
const SELECTOR_OFFSET: u64 = 0;
const DATA_OFFSET: u64 = (FW_CFG_DATA_PORT - FW_CFG_SELECTOR_PORT) as u64;

impl BaseDeviceOps for FwCfg {
    fn name(&self) -> &str {
        "fw_cfg"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(FW_CFG_SELECTOR_PORT, 2)]
    }

    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        if at.offset != DATA_OFFSET {
            // The selector is write-only.
            return Ok(0);
        }
        // A wider read takes the next bytes in order, the first in the low byte, so that
        // storing the register keeps the item's byte order (`rep insb` style). Past the end
        // of the item, or for an absent item, bytes read 0.
        let mut cursor = self.cursor();
        let item = self
            .items
            .get(&cursor.selector)
            .map_or(&[][..], Vec::as_slice);
        let mut value = 0u64;
        for i in 0..width.size() {
            let byte = item
                .get(cursor.offset.saturating_add(i))
                .copied()
                .unwrap_or(0);
            value |= u64::from(byte) << (8 * i);
        }
        cursor.offset = cursor.offset.saturating_add(width.size());
        Ok(value)
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        // Data-port writes are ignored: no item is writable.
        if at.offset == SELECTOR_OFFSET {
            let selector = value as u16 & !WRITE_CHANNEL;
            if !self.items.contains_key(&selector) {
                log::debug!("fw_cfg: guest selected absent item {selector:#x}");
            }
            *self.cursor() = Cursor {
                selector,
                offset: 0,
            };
        }
        Ok(WriteOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_config::config;
    use crate::PortAccess;

    const SELECTOR: u64 = FW_CFG_SELECTOR_PORT as u64;
    const DATA: u64 = FW_CFG_DATA_PORT as u64;

    fn read_item(fw_cfg: &FwCfg, selector: u16, len: usize) -> Vec<u8> {
        fw_cfg
            .write_port(SELECTOR, AccessWidth::Word, selector.into())
            .unwrap();
        (0..len)
            .map(|_| fw_cfg.read_port(DATA, AccessWidth::Byte).unwrap() as u8)
            .collect()
    }

    #[test]
    fn signature_id_cpus_and_ram_size() {
        // Two writable regions (8 MiB + 1 MiB) and a ROM page that is not RAM.
        let fw_cfg = FwCfg::for_vm(&config(
            3,
            &[
                (0, 0x80_0000, 0x7),
                (0x80_0000, 0x1000, 0x5),
                (0x100_0000, 0x10_0000, 0x3),
            ],
        ));
        assert_eq!(read_item(&fw_cfg, FW_CFG_SIGNATURE, 4), b"QEMU");
        assert_eq!(read_item(&fw_cfg, FW_CFG_ID, 4), [1, 0, 0, 0]);
        assert_eq!(read_item(&fw_cfg, FW_CFG_NB_CPUS, 2), [3, 0]);
        assert_eq!(read_item(&fw_cfg, FW_CFG_MAX_CPUS, 2), [3, 0]);
        assert_eq!(
            read_item(&fw_cfg, FW_CFG_RAM_SIZE, 8),
            0x90_0000u64.to_le_bytes()
        );
    }

    #[test]
    fn reads_past_the_end_and_of_absent_items_are_zero() {
        let fw_cfg = FwCfg::default();
        assert_eq!(read_item(&fw_cfg, FW_CFG_SIGNATURE, 6), b"QEMU\0\0");
        assert_eq!(read_item(&fw_cfg, 0x7fff, 2), [0, 0]);
    }

    #[test]
    fn selecting_rewinds_and_data_writes_are_ignored() {
        let fw_cfg = FwCfg::default();
        assert_eq!(read_item(&fw_cfg, FW_CFG_SIGNATURE, 2), b"QE");
        fw_cfg.write_port(DATA, AccessWidth::Byte, 0x55).unwrap();
        assert_eq!(
            fw_cfg.read_port(DATA, AccessWidth::Byte).unwrap(),
            u64::from(b'M')
        );
        assert_eq!(read_item(&fw_cfg, FW_CFG_SIGNATURE, 1), b"Q");
        // The write-channel bit selects the same item; the selector port reads 0.
        assert_eq!(read_item(&fw_cfg, WRITE_CHANNEL, 1), b"Q");
        assert_eq!(fw_cfg.read_port(SELECTOR, AccessWidth::Word).unwrap(), 0);
    }

    #[test]
    fn wide_data_reads_keep_the_byte_order() {
        let fw_cfg = FwCfg::default();
        fw_cfg.write_port(SELECTOR, AccessWidth::Word, 0).unwrap();
        let dword = fw_cfg.read_port(DATA, AccessWidth::Dword).unwrap() as u32;
        assert_eq!(&dword.to_le_bytes(), b"QEMU");
    }

    #[test]
    fn directory_lists_etc_e820_with_the_ram_only() {
        // RAM from 0 and from 4 GiB, and a read-only region, which is not RAM.
        let fw_cfg = FwCfg::for_vm(&config(
            1,
            &[
                (0, 0x200_0000, 0x7),
                (0xfff0_0000, 0x10_0000, 0x5),
                (0x1_0000_0000, 0x100_0000, 0x7),
            ],
        ));
        let dir = read_item(&fw_cfg, FW_CFG_FILE_DIR, 4 + 64);
        assert_eq!(dir[..4], 1u32.to_be_bytes());
        let size = u32::from_be_bytes(dir[4..8].try_into().unwrap());
        assert_eq!(dir[8..10], FW_CFG_FILE_FIRST.to_be_bytes());
        assert_eq!(&dir[12..20], b"etc/e820");
        assert!(dir[20..68].iter().all(|&b| b == 0), "name not NUL-padded");
        // As QEMU's: RAM only, the legacy area included; firmware reserves what it uses.
        assert_eq!(size, 2 * 20);
        let e820 = read_item(&fw_cfg, FW_CFG_FILE_FIRST, 40);
        let entry = |i: usize| {
            let e = &e820[20 * i..20 * (i + 1)];
            (
                u64::from_le_bytes(e[..8].try_into().unwrap()),
                u64::from_le_bytes(e[8..16].try_into().unwrap()),
                u32::from_le_bytes(e[16..].try_into().unwrap()),
            )
        };
        assert_eq!(entry(0), (0, 0x200_0000, 1));
        assert_eq!(entry(1), (0x1_0000_0000, 0x100_0000, 1));
    }

    #[test]
    fn files_get_consecutive_selectors() {
        let fw_cfg = FwCfg::default()
            .with_file("opt/a", vec![1])
            .with_file("opt/b", vec![2, 3]);
        let dir = read_item(&fw_cfg, FW_CFG_FILE_DIR, 4 + 2 * 64);
        assert_eq!(dir[..4], 2u32.to_be_bytes());
        assert_eq!(dir[68..72], 2u32.to_be_bytes());
        assert_eq!(dir[72..74], (FW_CFG_FILE_FIRST + 1).to_be_bytes());
        assert_eq!(read_item(&fw_cfg, FW_CFG_FILE_FIRST + 1, 2), [2, 3]);
    }
}
