//! Where a boot protocol's own data goes ([`BootLayout`]): the GDT (and the page tables of a
//! 64-bit start), the boot data area, the ACPI tables, the MP table and Multiboot's entry
//! stack. Each has its place in the PC layout ([`layout`](crate::layout)) and keeps it
//! while no image byte is there;
//! when the kernel, the ramdisk or another image covers it, only the bytes it needs move to
//! the first free RAM of the windows it may live in, as QEMU moves its Multiboot data after
//! a kernel. Only a window the images leave no room in is refused, naming the image, its
//! range, and the bytes of the window it covers.
//!
//! Chosen when the VM is planned, before anything is written, so `axvm check` shows and
//! refuses what `axvm run` does. Nothing is ever placed in the first page (the real-mode
//! IVT and the BIOS data area) nor from the EBDA (0x9fc00) to 0xe0000.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use axvm::{AxVMConfig, ConfigError, MappingFlags};

use crate::acpi::{self, AcpiInputs};
use crate::e820::e820_map;
use crate::elf::Segment;
use crate::layout::{
    ACPI_END, ACPI_START, BOOT_INFO_END, BOOT_INFO_START, BOOT_TABLES_END, BOOT_TABLES_START,
    GDT_END, GDT_START, HIGH_MEMORY_START, LEGACY_HOLE_START, MPTABLE_END, MPTABLE_START,
    MULTIBOOT_STACK_END, MULTIBOOT_STACK_START,
};
use crate::mptable::{self, MAX_MP_CPUS};
use crate::placement::{RamdiskPlacement, FOUR_GIB};

const PAGE: u64 = 0x1000;
/// Conventional memory a moved item may use: after the first page, below the EBDA.
const LOW_WINDOW: (u64, u64) = (PAGE, LEGACY_HOLE_START);
/// RAM above 1 MiB the 32-bit boot protocols can point to.
const HIGH_WINDOW: (u64, u64) = (HIGH_MEMORY_START, FOUR_GIB);
/// Where kernels scan for the RSDP: the BIOS area.
const RSDP_WINDOW: (u64, u64) = (ACPI_START, HIGH_MEMORY_START);
/// Where kernels scan for the MP floating pointer: the BIOS ROM area.
const MP_WINDOW: (u64, u64) = (MPTABLE_START, HIGH_MEMORY_START);

/// Where each piece of a boot protocol's data goes, as `[start, end)` ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootLayout {
    /// The GDT, followed for a 64-bit start by the PML4, the PDPT and the page directories.
    pub tables: (u64, u64),
    /// The boot data area the protocol fills from its start (`BootInfoWriter`).
    pub boot_info: (u64, u64),
    /// The ACPI tables, the RSDP first.
    pub acpi: (u64, u64),
    /// The MP floating pointer and table (None when the vCPUs do not fit in one).
    pub mptable: Option<(u64, u64)>,
    /// The entry stack, ESP at its end (Multiboot only: None for the other protocols).
    pub stack: Option<(u64, u64)>,
}

/// What a boot protocol puts in low memory besides the images, and the images it keeps
/// clear of: everything [`plan_layout`] needs, whichever host asks.
#[derive(Clone, Copy, Debug)]
pub struct LayoutInputs<'a> {
    /// The protocol's name as errors give it ("Multiboot", "Pvh", "BzImage"): the kernel's
    /// segments are "kernel (NAME) segment N".
    pub protocol: &'a str,
    /// Whether the start needs the boot page tables after the GDT (Linux's 64-bit start),
    /// not the GDT alone (the 32-bit protocols).
    pub page_tables: bool,
    /// Whether the protocol enters with a stack of axvm's (Multiboot).
    pub entry_stack: bool,
    /// The command line the protocol passes (without its NUL), if any.
    pub cmdline: Option<&'a str>,
    /// The kernel's segments.
    pub kernel: &'a [Segment],
    /// Where the ramdisk goes, if there is one.
    pub ramdisk: Option<RamdiskPlacement>,
    /// The other images, copied as they are (BIOS, device tree): their config field, first
    /// address and length.
    pub images: &'a [(&'static str, u64, u64)],
}

/// Bytes an image takes, to keep clear of and to name when nothing fits.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Taken {
    start: u64,
    end: u64,
    /// The config field that places it.
    field: &'static str,
    /// What it is, for errors.
    what: String,
}

/// One piece to place.
struct Request {
    /// What it is, for errors.
    what: &'static str,
    /// Its place in the PC layout, kept while no image overlaps it.
    default: (u64, u64),
    /// The bytes it needs when it moves.
    len: u64,
    align: u64,
    /// Where it may move, in order of preference (the first is where kernels look for it,
    /// when they look in one place only).
    windows: Vec<(u64, u64)>,
    /// Whether its default place is kept only when it is writable RAM (else it moves like
    /// when an image is there); the others are refused later, when written, if it is not.
    default_needs_ram: bool,
}

/// The layout of a boot protocol's data for the images `inputs` lists. Refused with the
/// colliding image's field when a piece finds no room.
pub fn plan_layout(
    config: &AxVMConfig,
    inputs: &LayoutInputs<'_>,
) -> Result<BootLayout, ConfigError> {
    let mut taken = taken_by_images(config, inputs);
    let tables = if inputs.page_tables {
        request(
            "the GDT and boot page tables",
            (BOOT_TABLES_START, BOOT_TABLES_END),
            PAGE,
        )
    } else {
        request("the GDT", (GDT_START, GDT_END), 16)
    };
    let tables = place(config, tables, &mut taken)?;
    let boot_info = Request {
        what: "the boot data",
        default: (BOOT_INFO_START, BOOT_INFO_END),
        len: boot_info_len(config, inputs.cmdline)?,
        align: PAGE,
        windows: vec![(BOOT_INFO_START, BOOT_INFO_END), LOW_WINDOW, HIGH_WINDOW],
        default_needs_ram: false,
    };
    let boot_info = place(config, boot_info, &mut taken)?;
    let acpi_len = acpi::acpi_tables(&AcpiInputs::for_config(config))?.len() as u64;
    let acpi = Request {
        what: "the ACPI tables, RSDP first, which kernels look for only there",
        default: (ACPI_START, ACPI_END),
        len: acpi_len,
        align: 16,
        windows: vec![RSDP_WINDOW],
        default_needs_ram: false,
    };
    let acpi = place(config, acpi, &mut taken)?;
    let mptable = if config.cpu_num <= MAX_MP_CPUS {
        let len = mptable::mp_table(config.cpu_num)?.len() as u64;
        let request = Request {
            what: "the MP table, whose floating pointer kernels look for only there",
            default: (MPTABLE_START, MPTABLE_END),
            len,
            align: 16,
            windows: vec![MP_WINDOW],
            default_needs_ram: false,
        };
        Some(place(config, request, &mut taken)?)
    } else {
        None
    };
    let stack = match inputs.entry_stack {
        true => Some(place(config, stack_request(), &mut taken)?),
        false => None,
    };
    Ok(BootLayout {
        tables,
        boot_info,
        acpi,
        mptable,
        stack,
    })
}

/// Multiboot's entry stack: at its PC-layout place while that is free RAM, else wherever
/// RAM below 4 GiB is free (ESP is 32-bit), conventional memory first.
fn stack_request() -> Request {
    Request {
        what: "the Multiboot entry stack",
        default: (MULTIBOOT_STACK_START, MULTIBOOT_STACK_END),
        len: MULTIBOOT_STACK_END - MULTIBOOT_STACK_START,
        align: 16,
        windows: vec![LOW_WINDOW, HIGH_WINDOW],
        default_needs_ram: true,
    }
}

/// A piece that moves whole, to the windows below 4 GiB.
fn request(what: &'static str, default: (u64, u64), align: u64) -> Request {
    Request {
        what,
        default,
        len: default.1 - default.0,
        align,
        windows: vec![LOW_WINDOW, HIGH_WINDOW],
        default_needs_ram: false,
    }
}

/// The kernel's segments, its ramdisk and the other images.
fn taken_by_images(config: &AxVMConfig, inputs: &LayoutInputs<'_>) -> Vec<Taken> {
    let segment = |(index, s): (usize, &Segment)| Taken {
        start: s.paddr,
        end: s.paddr.saturating_add(s.memsz),
        field: "kernel.kernel_path",
        what: format!("kernel ({}) segment {index}", inputs.protocol),
    };
    let mut taken: Vec<Taken> = inputs.kernel.iter().enumerate().map(segment).collect();
    if let Some(ramdisk) = inputs.ramdisk {
        let field = match config.image_config.ramdisk_load_gpa {
            Some(_) => "kernel.ramdisk_load_addr",
            None => "kernel.ramdisk_path",
        };
        let start = ramdisk.gpa.as_u64();
        taken.push(Taken {
            start,
            end: start.saturating_add(ramdisk.size),
            field,
            what: "ramdisk".into(),
        });
    }
    for &(field, start, len) in inputs.images {
        taken.push(Taken {
            start,
            end: start.saturating_add(len),
            field,
            what: field
                .trim_start_matches("kernel.")
                .replace("_load_addr", " image"),
        });
    }
    taken
}

/// What the boot data takes at most: the command line (with its NUL, to a page), one page
/// for the information block (Linux's zero page is one page, page-aligned), and the memory
/// map with the small items (names, module list) rounded to a page. Refused when more than
/// the PC layout's boot data area.
fn boot_info_len(config: &AxVMConfig, cmdline: Option<&str>) -> Result<u64, ConfigError> {
    let cmdline = cmdline.map_or(0, |line| line.len() as u64 + 1);
    let map = e820_map(config).len() as u64 * 24 + 0x200;
    let len = cmdline.next_multiple_of(PAGE) + PAGE + map.next_multiple_of(PAGE);
    let room = BOOT_INFO_END - BOOT_INFO_START;
    if len > room {
        return Err(ConfigError::invalid(
            "kernel",
            format!("the boot data (command line, memory map, information block) takes up to {len:#x} bytes, more than the {room:#x} of the boot data area; shorten the command line"),
        ));
    }
    Ok(len)
}

/// Places `request`: at its default while no image overlaps it, else at the first free
/// RAM of its windows; records it in `taken` so later pieces keep clear of it.
fn place(
    config: &AxVMConfig,
    request: Request,
    taken: &mut Vec<Taken>,
) -> Result<(u64, u64), ConfigError> {
    let (start, end) = request.default;
    let free = |s: u64, e: u64, taken: &[Taken]| !taken.iter().any(|t| t.start < e && s < t.end);
    let ram =
        |s: u64, e: u64| ram_region_at(config, s).is_some_and(|(_, region_end)| e <= region_end);
    let placed = if free(start, end, taken) && (!request.default_needs_ram || ram(start, end)) {
        Some((start, end))
    } else {
        request.windows.iter().find_map(|&window| {
            first_fit(config, window, request.len, request.align, taken)
                .map(|at| (at, at + request.len))
        })
    };
    let Some((start, end)) = placed else {
        return Err(no_room(&request, taken));
    };
    taken.push(Taken {
        start,
        end,
        field: "kernel",
        what: request.what.to_string(),
    });
    Ok((start, end))
}

/// The lowest `align`-aligned address in `window` where `len` bytes are writable RAM of
/// one region and overlap nothing in `taken`.
fn first_fit(
    config: &AxVMConfig,
    (low, high): (u64, u64),
    len: u64,
    align: u64,
    taken: &[Taken],
) -> Option<u64> {
    let mut at = low.checked_next_multiple_of(align)?;
    while at.checked_add(len)? <= high {
        let end = at + len;
        // Each step moves strictly up: past a blocker, a region's end, or to the next region.
        let next = if let Some(blocker) = taken.iter().find(|t| t.start < end && at < t.end) {
            blocker.end
        } else {
            match ram_region_at(config, at) {
                Some((_, region_end)) if end <= region_end => return Some(at),
                Some((_, region_end)) => region_end,
                None => next_ram_start(config, at)?,
            }
        };
        at = next.checked_next_multiple_of(align)?;
    }
    None
}

/// The writable region holding `gpa`, as `[start, end)`.
fn ram_region_at(config: &AxVMConfig, gpa: u64) -> Option<(u64, u64)> {
    writable(config).find(|&(start, end)| start <= gpa && gpa < end)
}

/// The start of the first writable region above `gpa`.
fn next_ram_start(config: &AxVMConfig, gpa: u64) -> Option<u64> {
    writable(config)
        .map(|(start, _)| start)
        .filter(|&start| start > gpa)
        .min()
}

fn writable(config: &AxVMConfig) -> impl Iterator<Item = (u64, u64)> + '_ {
    config
        .memory_regions
        .iter()
        .filter(|region| region.flags.contains(MappingFlags::WRITE))
        .map(|region| (region.gpa.as_u64(), region.end().as_u64()))
}

/// The refusal of a piece nothing leaves room for: the images covering its first window,
/// with the bytes of the window each covers, or missing RAM when none does.
fn no_room(request: &Request, taken: &[Taken]) -> ConfigError {
    let (low, high) = request.windows[0];
    let len = request.len;
    let covering: Vec<&Taken> = taken
        .iter()
        .filter(|t| t.field != "kernel" && t.start < high && low < t.end)
        .collect();
    match covering.first() {
        Some(first) => {
            let collisions: Vec<String> = covering
                .iter()
                .map(|t| {
                    format!(
                        "the {} at {:#x}..{:#x} covers {:#x}..{:#x}",
                        t.what,
                        t.start,
                        t.end,
                        t.start.max(low),
                        t.end.min(high)
                    )
                })
                .collect();
            ConfigError::invalid(
                first.field,
                format!(
                    "{}, leaving no room in {low:#x}..{high:#x} for the {len:#x} bytes of {}; load the image elsewhere",
                    collisions.join(", "),
                    request.what,
                ),
            )
        }
        None => ConfigError::invalid(
            "kernel.memory_regions",
            format!(
                "the {len:#x} bytes of {} must go in RAM in {low:#x}..{high:#x}, and none is free there; add RAM from 0 to at least 1 MiB, e.g. [0x0, 0x10_0000, 0x7, 0]",
                request.what
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
