//! `hvm_start_info`, the structure a PVH loader passes in EBX.
//!
//! Offsets: 0 magic (0x336ec578), 4 version, 8 flags, 12 nr_modules,
//! 16 modlist_paddr (u64), 24 cmdline_paddr (u64), 32 rsdp_paddr (u64); from
//! version 1: 40 memmap_paddr (u64), 48 memmap_entries (u32). A module entry
//! is `{ u64 paddr, u64 size, u64 cmdline_paddr, u64 reserved }` (32 bytes);
//! a memory-map entry `{ u64 addr, u64 size, u32 type, u32 reserved }` (24
//! bytes), types as in e820.

use rt::fw_cfg::E820Entry;
use rt::phys::{u32_at, u64_at, CStrAt};

/// Sanity limit on the number of memory-map entries.
const MAX_MEMMAP_ENTRIES: u32 = 128;

/// The start_info at a physical address.
pub struct StartInfo {
    addr: usize,
}

impl StartInfo {
    /// The structure at `addr` (EBX on entry).
    pub fn at(addr: usize) -> StartInfo {
        StartInfo { addr }
    }

    fn u32(&self, offset: usize) -> u32 {
        // SAFETY: the loader put start_info at `addr`, below 4 GiB.
        unsafe { u32_at(self.addr + offset) }
    }

    fn u64(&self, offset: usize) -> u64 {
        // SAFETY: as above.
        unsafe { u64_at(self.addr + offset) }
    }

    /// `magic`.
    pub fn magic(&self) -> u32 {
        self.u32(0)
    }

    /// `version`.
    pub fn version(&self) -> u32 {
        self.u32(4)
    }

    /// The command line (`cmdline_paddr`), unless 0.
    pub fn cmdline(&self) -> Option<CStrAt> {
        match self.u64(24) {
            0 => None,
            addr => Some(CStrAt {
                addr: addr as usize,
            }),
        }
    }

    /// `rsdp_paddr` (0 when the loader leaves finding it to the guest).
    pub fn rsdp_paddr(&self) -> u64 {
        self.u64(32)
    }

    /// (paddr, size) of the first module, if there is one.
    pub fn first_module(&self) -> Option<(u64, u64)> {
        let (count, list) = (self.u32(12), self.u64(16));
        if count == 0 || list == 0 || list >= 1 << 32 {
            return None;
        }
        // SAFETY: modlist_paddr points at nr_modules entries.
        unsafe { Some((u64_at(list as usize), u64_at(list as usize + 8))) }
    }

    /// Calls `f` on each memory-map entry (version 1 and up); returns how
    /// many there were.
    pub fn for_each_memmap(&self, mut f: impl FnMut(E820Entry)) -> usize {
        let (map, count) = (self.u64(40), self.u32(48).min(MAX_MEMMAP_ENTRIES));
        if map == 0 || map >= 1 << 32 {
            return 0;
        }
        for i in 0..count as usize {
            let at = map as usize + i * 24;
            // SAFETY: inside the loader's memory map.
            let entry = unsafe {
                E820Entry {
                    addr: u64_at(at),
                    len: u64_at(at + 8),
                    kind: u32_at(at + 16),
                }
            };
            f(entry);
        }
        count as usize
    }
}
