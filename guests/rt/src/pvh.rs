//! PVH boot: the entry note that makes a VMM boot an ELF through PVH, and
//! `hvm_start_info`, the structure a PVH loader passes in EBX.
//!
//! A guest declares the note with [`pvh_note!`](crate::pvh_note) (its linker
//! script must keep section `.note.Xen` in a PT_NOTE segment) and reads the
//! structure with [`StartInfo::at`] in the `bsp` of
//! [`entry32!`](crate::entry32).
//!
//! `hvm_start_info` offsets: 0 magic (0x336ec578), 4 version, 8 flags,
//! 12 nr_modules, 16 modlist_paddr (u64), 24 cmdline_paddr (u64), 32
//! rsdp_paddr (u64); from version 1: 40 memmap_paddr (u64), 48
//! memmap_entries (u32). A module entry is `{ u64 paddr, u64 size, u64
//! cmdline_paddr, u64 reserved }` (32 bytes); a memory-map entry `{ u64 addr,
//! u64 size, u32 type, u32 reserved }` (24 bytes), types as in e820.

use crate::fw_cfg::E820Entry;
use crate::phys::{u32_at, u64_at, CStrAt};

/// `hvm_start_info.magic`.
pub const START_INFO_MAGIC: u32 = 0x336e_c578;

/// `XEN_ELFNOTE_PHYS32_ENTRY`, the note type naming the 32-bit PVH entry.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

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

/// Emits the PVH entry note into section `.note.Xen`, which the guest's
/// linker script must put in the image's only PT_NOTE segment.
///
/// An ELF note is `{ u32 namesz, u32 descsz, u32 type, name (padded to 4),
/// desc (padded to 4) }`. This one: name "Xen" (namesz 4, with its NUL),
/// type 18 ([`XEN_ELFNOTE_PHYS32_ENTRY`]), and as descriptor the 32-bit
/// entry point, rt's `axvm_start32` ([`crate::boot32`]), stored as 8 bytes
/// with a zero high half: linux-loader reads the first 4 bytes of a
/// descriptor of at least 4, and QEMU reads a pointer-sized value from an
/// ELF64's note.
///
/// A macro rather than code in rt, so that only the guests that invoke it
/// carry the note (an image with it is booted through PVH by QEMU).
///
/// ```ignore
/// rt::entry32!(bsp, ap);
/// rt::pvh_note!();
/// ```
#[macro_export]
macro_rules! pvh_note {
    () => {
        ::core::arch::global_asm!(
            ".pushsection .note.Xen, \"a\", @note",
            ".balign 4",
            "    .long 4", // namesz: "Xen\0"
            "    .long 8", // descsz
            "    .long {ty}",
            "    .asciz \"Xen\"",
            "    .balign 4",
            "    .quad axvm_start32",
            "    .balign 4",
            ".popsection",
            ty = const $crate::pvh::XEN_ELFNOTE_PHYS32_ENTRY,
            options(att_syntax),
        );
    };
}
