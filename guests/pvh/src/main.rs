//! axvm's PVH guest: an ELF64 whose Xen `XEN_ELFNOTE_PHYS32_ENTRY` note
//! names rt's 32-bit entry. It checks the `hvm_start_info` the VMM hands it
//! in EBX, the same way under axvm and QEMU (`scripts/qemu-compat.sh`
//! compares the two).
//!
//! Output (the first line always starts `pvh: `):
//!
//! ```text
//! pvh: start_info magic 0x336ec578 version 1
//! cmdline: console=ttyS0 axvm-compat
//! memmap: RAM up to 128 MiB
//! bda: ...                           (rt::firmware::report's lines)
//! module: 1022 bytes                 (only with a module)
//! ACPI: 2 CPUs
//! pvh: all checks passed
//! ```
//!
//! then exit status 0 on port 0xf4. A failed check prints `FAIL: ...` and
//! exits with its own status ([`status`]). See `guests/README.md`.
#![no_std]
#![no_main]

use rt::fw_cfg::{self, E820Entry};
use rt::{acpi, fail, println};

use rt::pvh::{StartInfo, START_INFO_MAGIC};

/// Exit statuses, one per failed check.
pub mod status {
    /// start_info's magic is wrong.
    pub const MAGIC: u8 = 2;
    /// start_info version 0: no memory map.
    pub const VERSION: u8 = 3;
    /// No command line.
    pub const CMDLINE: u8 = 4;
    /// The memory map is missing, or disagrees with fw_cfg.
    pub const MEMMAP: u8 = 5;
    /// A module that is not a valid test ramdisk.
    pub const MODULE: u8 = 8;
    /// fw_cfg's signature is not "QEMU".
    pub const FW_CFG: u8 = 9;
    /// rsdp_paddr set but not pointing at a valid RSDP, or no RSDP at all.
    pub const RSDP: u8 = 10;
    /// No valid MADT.
    pub const MADT: u8 = 11;
    /// The MADT and fw_cfg disagree on the number of CPUs.
    pub const CPU_COUNT: u8 = 12;
    /// Started at the ELF entry in long mode: the VMM ignored the note.
    pub const NOT_PVH: u8 = 0x7e;
}

/// The memory map's RAM may differ this much from fw_cfg's RAM size
/// (firmware under QEMU keeps some for itself).
const MEMMAP_MARGIN: u64 = 2 << 20;
const MIB: u64 = 1 << 20;

rt::entry32!(bsp, ap);
rt::pvh_note!();
rt::entry!(not_pvh);

/// The ELF entry: only reached when the VMM boots the file as a plain ELF64
/// (every vCPU at once, in long mode) instead of through the PVH note.
fn not_pvh(vcpu_id: u32) -> ! {
    if vcpu_id == 0 {
        println!("pvh: FAIL: started in 64-bit mode at the ELF entry: the VMM did not boot it through the PVH note");
        rt::exit(status::NOT_PVH);
    }
    rt::cpu::halt_forever()
}

/// APs are never started by this guest.
fn ap(_apic_id: u32) -> ! {
    rt::cpu::halt_forever()
}

fn bsp(_eax: u32, ebx: u32) -> ! {
    let info = StartInfo::at(ebx as usize);
    let (magic, version) = (info.magic(), info.version());
    println!("pvh: start_info magic {magic:#x} version {version}");
    if magic != START_INFO_MAGIC {
        fail!(
            status::MAGIC,
            "start_info magic expected {START_INFO_MAGIC:#x} got {magic:#x}"
        );
    }
    if version < 1 {
        fail!(status::VERSION, "start_info version 0 has no memory map");
    }

    let Some(cmdline) = info.cmdline() else {
        fail!(status::CMDLINE, "cmdline_paddr is 0");
    };
    println!("cmdline: {cmdline}");

    if !fw_cfg::present() {
        fail!(
            status::FW_CFG,
            "fw_cfg signature (selector 0x0000) is not \"QEMU\""
        );
    }
    check_memmap(&info);
    rt::firmware::report();
    check_modules(&info);
    count_acpi_cpus(&info);

    println!("pvh: all checks passed");
    rt::exit(0)
}

/// The memory map against fw_cfg's RAM size: its total RAM must be within
/// [`MEMMAP_MARGIN`] below it. Prints where RAM ends, rounded up to a whole
/// MiB (the same under axvm and QEMU, whose firmware keeps the top 128 KiB
/// or so of RAM for itself).
fn check_memmap(info: &StartInfo) {
    let ram = fw_cfg::read_item_le(fw_cfg::RAM_SIZE, 8);
    let (mut total, mut top) = (0, 0);
    let entries = info.for_each_memmap(|e: E820Entry| {
        if e.kind == fw_cfg::E820_RAM {
            total += e.len;
            top = top.max(e.addr.saturating_add(e.len));
        }
    });
    if entries == 0 || total == 0 {
        fail!(
            status::MEMMAP,
            "memory map empty ({entries} entries, no RAM)"
        );
    }
    println!("memmap: RAM up to {} MiB", top.div_ceil(MIB));
    if total > ram || ram - total > MEMMAP_MARGIN {
        fail!(
            status::MEMMAP,
            "memory map has {total:#x} bytes of RAM, fw_cfg {ram:#x}"
        );
    }
}

/// Checks the first module, if any, as a test ramdisk.
fn check_modules(info: &StartInfo) {
    let Some((addr, size)) = info.first_module() else {
        return;
    };
    println!("module: {size} bytes");
    if addr >= 1 << 32 || size >= 1 << 32 {
        fail!(
            status::MODULE,
            "module at {addr:#x} size {size:#x} is not below 4 GiB"
        );
    }
    if let Err(e) = rt::ramdisk::check(addr as usize, size as usize) {
        fail!(status::MODULE, "{e}");
    }
}

/// Finds the RSDP (start_info's `rsdp_paddr`, which must then be valid, or
/// by scanning), counts the MADT's enabled processors and prints them.
fn count_acpi_cpus(info: &StartInfo) {
    let rsdp = match info.rsdp_paddr() {
        0 => acpi::find_rsdp(),
        addr if addr < 1 << 32 => match acpi::rsdp_at(addr as usize) {
            Ok(rsdp) => Some(rsdp),
            Err(e) => fail!(status::RSDP, "rsdp_paddr {addr:#x}: {e}"),
        },
        addr => fail!(status::RSDP, "rsdp_paddr {addr:#x} is above 4 GiB"),
    };
    let Some(rsdp) = rsdp else {
        fail!(status::RSDP, "no valid RSDP in 0xe0000-0xfffff");
    };
    let madt = match acpi::find_table(&rsdp, b"APIC") {
        Ok(madt) => madt,
        Err(e) => fail!(status::MADT, "MADT: {e}"),
    };
    let mut enabled = 0u64;
    acpi::for_each_processor(madt, |p| enabled += u64::from(p.enabled));
    println!("ACPI: {enabled} CPUs");
    let cpus = fw_cfg::read_item_le(fw_cfg::NB_CPUS, 2);
    if enabled != cpus {
        fail!(
            status::CPU_COUNT,
            "MADT lists {enabled} enabled CPUs, fw_cfg {cpus}"
        );
    }
}
