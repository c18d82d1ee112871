//! What the kernel was booted with: the entry code ([`entry`]), the Multiboot information
//! ([`multiboot`]) and, once there is a heap, the modules and command line as Rust values.

pub mod entry;
pub mod multiboot;

use alloc::string::String;
use alloc::vec::Vec;

use spin::Once;

use crate::mm;
use multiboot::MultibootInfo;

/// A Multiboot module: one file of `-initrd "a,b"`, left in place where the loader put it.
#[derive(Clone, Copy, Debug)]
pub struct Module {
    /// The module's string: the path QEMU was given (`vm.toml`, `guest.bin`), with anything
    /// after a space (QEMU passes it as the module's arguments) kept.
    pub name: &'static str,
    /// Its bytes, in reserved physical memory that nothing else reuses.
    pub bytes: &'static [u8],
    /// The physical address of the first byte.
    pub phys: u64,
}

static MODULES: Once<&'static [Module]> = Once::new();
static CMDLINE: Once<&'static str> = Once::new();

/// The modules, in the order given to `-initrd` (empty before [`publish`]).
pub fn modules() -> &'static [Module] {
    MODULES.get().copied().unwrap_or(&[])
}

/// The kernel's command line (`-append`), empty if none was given.
pub fn cmdline() -> &'static str {
    CMDLINE.get().copied().unwrap_or("")
}

/// Turns the info block's modules and command line into [`modules`] and [`cmdline`]; needs the
/// heap. Names that are not UTF-8 get U+FFFD for the bad bytes.
pub fn publish(info: &MultibootInfo) {
    let list: Vec<Module> = info
        .modules()
        .iter()
        .map(|raw| Module {
            name: leak_string(raw.string),
            bytes: physical_slice(raw.start, raw.end),
            phys: raw.start,
        })
        .collect();
    MODULES.call_once(|| list.leak());
    CMDLINE.call_once(|| info.cmdline.map_or("", leak_string));
}

fn leak_string(pa: u64) -> &'static str {
    let bytes = physical_slice(pa, pa + multiboot::string_len(pa) as u64);
    String::from_utf8_lossy(bytes).into_owned().leak()
}

fn physical_slice(start: u64, end: u64) -> &'static [u8] {
    let len = usize::try_from(end - start).unwrap_or(0);
    // SAFETY: the range is reserved from the frame allocator for good (see
    // `MultibootInfo::reserved`), identity-mapped, and never written by the kernel.
    unsafe { core::slice::from_raw_parts(mm::phys_to_virt(start), len) }
}
