//! Reading the Multiboot v1 information block the loader (QEMU's `-kernel`) leaves: the memory
//! map, the modules (`-initrd "a,b"`) and the command line (`-append`).
//!
//! It is parsed before there is a heap, into fixed-size arrays; [`MultibootInfo::reserved`]
//! names every range the loader's data occupies so the frame allocator leaves it alone.

use core::fmt;

use crate::mm::phys;

/// EAX at entry from a Multiboot v1 loader.
pub const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
/// Info flags: `cmdline` valid, `mods_*` valid, `mmap_*` valid.
const FLAG_CMDLINE: u32 = 1 << 2;
const FLAG_MODS: u32 = 1 << 3;
const FLAG_MMAP: u32 = 1 << 6;
/// Offsets of the info block's fields.
const OFF_FLAGS: u64 = 0;
const OFF_CMDLINE: u64 = 16;
const OFF_MODS_COUNT: u64 = 20;
const OFF_MODS_ADDR: u64 = 24;
const OFF_MMAP_LENGTH: u64 = 44;
const OFF_MMAP_ADDR: u64 = 48;
/// The info block's size up to and including the fields read here.
const INFO_SIZE: u64 = 52;
/// One module entry: start, end, string, reserved.
const MODULE_ENTRY_SIZE: u64 = 16;
/// The longest C string (command line, module name) read from the info block.
pub const MAX_STRING: usize = 4096;
/// Memory-map entries and modules the kernel keeps; more are refused.
pub const MAX_REGIONS: usize = 64;
/// See [`MAX_REGIONS`].
pub const MAX_MODULES: usize = 16;
/// Memory-map type of usable RAM.
pub const RAM: u32 = 1;

/// One entry of the loader's memory map.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoryRegion {
    /// Physical start.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// 1 = RAM, 3 = ACPI reclaimable, 4 = ACPI NVS, anything else reserved.
    pub kind: u32,
}

impl MemoryRegion {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.len)
    }
}

/// A module as the loader describes it: physical `[start, end)` and its string's address.
#[derive(Clone, Copy, Debug, Default)]
pub struct RawModule {
    /// Physical address of the first byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Physical address of its NUL-terminated string (the path QEMU was given).
    pub string: u64,
}

/// Why the info block cannot be used.
#[derive(Debug)]
pub enum BootError {
    /// EAX was not [`BOOTLOADER_MAGIC`]: not started by a Multiboot v1 loader.
    BadMagic(u32),
    /// The loader gave no memory map (flag bit 6).
    NoMemoryMap,
    /// More memory-map entries than [`MAX_REGIONS`].
    TooManyRegions,
    /// More modules than [`MAX_MODULES`] (the count given).
    TooManyModules(u32),
    /// A module whose end lies before its start.
    BadModule(usize),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadMagic(eax) => write!(
                f,
                "EAX = {eax:#x}, not the Multiboot v1 magic {BOOTLOADER_MAGIC:#x}: boot the kernel with `qemu -kernel`"
            ),
            Self::NoMemoryMap => write!(f, "the Multiboot info has no memory map (flag bit 6)"),
            Self::TooManyRegions => write!(f, "more than {MAX_REGIONS} memory-map entries"),
            Self::TooManyModules(n) => write!(f, "{n} modules, at most {MAX_MODULES} are supported"),
            Self::BadModule(i) => write!(f, "module {i} ends before it starts"),
        }
    }
}

/// What the kernel keeps of the info block.
#[derive(Clone, Copy, Debug)]
pub struct MultibootInfo {
    /// The info block's physical address.
    pub info: u64,
    regions: [MemoryRegion; MAX_REGIONS],
    region_count: usize,
    mmap: (u64, u64),
    modules: [RawModule; MAX_MODULES],
    module_count: usize,
    mods_table: u64,
    /// The command line's physical address, if given.
    pub cmdline: Option<u64>,
}

impl MultibootInfo {
    /// Parses the info block at `info`, handed over with `magic` in EAX.
    pub fn parse(magic: u32, info: u32) -> Result<Self, BootError> {
        if magic != BOOTLOADER_MAGIC {
            return Err(BootError::BadMagic(magic));
        }
        let info = u64::from(info);
        let flags = phys::read_u32(info + OFF_FLAGS);
        let mut parsed = Self {
            info,
            regions: [MemoryRegion::default(); MAX_REGIONS],
            region_count: 0,
            mmap: (0, 0),
            modules: [RawModule::default(); MAX_MODULES],
            module_count: 0,
            mods_table: 0,
            cmdline: (flags & FLAG_CMDLINE != 0)
                .then(|| u64::from(phys::read_u32(info + OFF_CMDLINE))),
        };
        if flags & FLAG_MMAP == 0 {
            return Err(BootError::NoMemoryMap);
        }
        parsed.read_memory_map(
            u64::from(phys::read_u32(info + OFF_MMAP_ADDR)),
            u64::from(phys::read_u32(info + OFF_MMAP_LENGTH)),
        )?;
        if flags & FLAG_MODS != 0 {
            parsed.read_modules(
                u64::from(phys::read_u32(info + OFF_MODS_ADDR)),
                phys::read_u32(info + OFF_MODS_COUNT),
            )?;
        }
        Ok(parsed)
    }

    /// Entries are `size` (not counting itself), base, length, type; the next starts
    /// `size + 4` bytes on.
    fn read_memory_map(&mut self, addr: u64, len: u64) -> Result<(), BootError> {
        self.mmap = (addr, len);
        let mut entry = addr;
        while entry + 24 <= addr + len {
            if self.region_count == MAX_REGIONS {
                return Err(BootError::TooManyRegions);
            }
            let size = u64::from(phys::read_u32(entry));
            self.regions[self.region_count] = MemoryRegion {
                start: phys::read_u64(entry + 4),
                len: phys::read_u64(entry + 12),
                kind: phys::read_u32(entry + 20),
            };
            self.region_count += 1;
            entry += size.max(20) + 4;
        }
        Ok(())
    }

    fn read_modules(&mut self, table: u64, count: u32) -> Result<(), BootError> {
        let count_usize = count as usize;
        if count_usize > MAX_MODULES {
            return Err(BootError::TooManyModules(count));
        }
        self.mods_table = table;
        for index in 0..count_usize {
            let entry = table + index as u64 * MODULE_ENTRY_SIZE;
            let module = RawModule {
                start: u64::from(phys::read_u32(entry)),
                end: u64::from(phys::read_u32(entry + 4)),
                string: u64::from(phys::read_u32(entry + 8)),
            };
            if module.end < module.start {
                return Err(BootError::BadModule(index));
            }
            self.modules[index] = module;
        }
        self.module_count = count_usize;
        Ok(())
    }

    /// The memory map, in the loader's order.
    pub fn regions(&self) -> &[MemoryRegion] {
        &self.regions[..self.region_count]
    }

    /// The modules, in the order given to `-initrd`.
    pub fn modules(&self) -> &[RawModule] {
        &self.modules[..self.module_count]
    }

    /// Calls `reserve(start, end)` for every physical range the loader's data occupies: the
    /// info block, the memory map, the module table, the modules and their strings, the
    /// command line. (Strings are reserved up to [`MAX_STRING`] bytes, or their NUL.)
    pub fn reserved(&self, mut reserve: impl FnMut(u64, u64)) {
        reserve(self.info, self.info + INFO_SIZE);
        reserve(self.mmap.0, self.mmap.0 + self.mmap.1);
        if self.module_count > 0 {
            reserve(
                self.mods_table,
                self.mods_table + self.module_count as u64 * MODULE_ENTRY_SIZE,
            );
        }
        for module in self.modules() {
            reserve(module.start, module.end);
            reserve(
                module.string,
                module.string + string_len(module.string) as u64 + 1,
            );
        }
        if let Some(cmdline) = self.cmdline {
            reserve(cmdline, cmdline + string_len(cmdline) as u64 + 1);
        }
    }
}

/// The length of the NUL-terminated string at `pa`, at most [`MAX_STRING`].
pub fn string_len(pa: u64) -> usize {
    (0..MAX_STRING)
        .find(|&i| phys::read_u8(pa + i as u64) == 0)
        .unwrap_or(MAX_STRING)
}
