//! The Multiboot v1 information block (EBX on entry).
//!
//! Offsets: 0 flags; 4 mem_lower, 8 mem_upper (KiB; flags bit 0);
//! 16 cmdline (bit 2); 20 mods_count, 24 mods_addr (bit 3); 44 mmap_length,
//! 48 mmap_addr (bit 6); 64 boot_loader_name (bit 9). A module is
//! `{ u32 mod_start, u32 mod_end, u32 string, u32 reserved }`; a memory-map
//! entry `{ u32 size, u64 base_addr, u64 length, u32 type }`, the next one
//! `size + 4` bytes further.

use rt::fw_cfg::E820Entry;
use rt::phys::{u32_at, u64_at, CStrAt};

const FLAG_MEM: u32 = 1 << 0;
const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MODS: u32 = 1 << 3;
const FLAG_MMAP: u32 = 1 << 6;
const FLAG_LOADER_NAME: u32 = 1 << 9;

/// Sanity limit on the memory map's length.
const MAX_MMAP_LEN: u32 = 64 * 1024;

/// The information block at a physical address.
pub struct Info {
    addr: usize,
}

impl Info {
    /// The block at `addr` (EBX on entry).
    pub fn at(addr: usize) -> Info {
        Info { addr }
    }

    fn field(&self, offset: usize) -> u32 {
        // SAFETY: the loader put the block at `addr` in low guest memory.
        unsafe { u32_at(self.addr + offset) }
    }

    /// The flags word: which fields are valid.
    pub fn flags(&self) -> u32 {
        self.field(0)
    }

    fn has(&self, flag: u32) -> bool {
        self.flags() & flag != 0
    }

    /// (mem_lower, mem_upper) in KiB.
    pub fn mem(&self) -> Option<(u32, u32)> {
        self.has(FLAG_MEM).then(|| (self.field(4), self.field(8)))
    }

    /// The command line.
    pub fn cmdline(&self) -> Option<CStrAt> {
        self.has(FLAG_CMDLINE).then(|| CStrAt {
            addr: self.field(16) as usize,
        })
    }

    /// The boot loader's name.
    pub fn boot_loader_name(&self) -> Option<CStrAt> {
        self.has(FLAG_LOADER_NAME).then(|| CStrAt {
            addr: self.field(64) as usize,
        })
    }

    /// (mod_start, mod_end) of the first module, if there is one.
    pub fn first_module(&self) -> Option<(u32, u32)> {
        if !self.has(FLAG_MODS) || self.field(20) == 0 {
            return None;
        }
        let module = self.field(24) as usize;
        // SAFETY: mods_addr points at mods_count module entries.
        unsafe { Some((u32_at(module), u32_at(module + 4))) }
    }

    /// Calls `f` on each memory-map entry; `None` without a memory map.
    pub fn for_each_mmap(&self, mut f: impl FnMut(E820Entry)) -> Option<usize> {
        if !self.has(FLAG_MMAP) {
            return None;
        }
        let len = self.field(44).min(MAX_MMAP_LEN) as usize;
        let start = self.field(48) as usize;
        let mut at = start;
        let mut count = 0;
        while at + 24 <= start + len {
            // SAFETY: inside the loader's memory map.
            let (size, addr, length, kind) = unsafe {
                (
                    u32_at(at) as usize,
                    u64_at(at + 4),
                    u64_at(at + 12),
                    u32_at(at + 20),
                )
            };
            f(E820Entry {
                addr,
                len: length,
                kind,
            });
            count += 1;
            if size < 20 {
                break;
            }
            at += size + 4;
        }
        Some(count)
    }
}
