//! axvm's Multiboot v1 guest: a flat a.out-kludge image that checks what a
//! Multiboot loader and the PC platform hand it, the same way under axvm and
//! QEMU (`scripts/qemu-compat.sh` compares the two).
//!
//! Output, one line per check (the first always starts `multiboot: `):
//!
//! ```text
//! multiboot: magic 0x2badb002
//! multiboot: entry stack usable
//! cmdline: multiboot console=ttyS0 axvm-compat
//! fw_cfg: 4 CPUs, 128 MiB
//! bda: ...                           (rt::firmware::report's lines)
//! memory: mem_upper and mmap agree with fw_cfg
//! module: 1038 bytes                 (only with a module)
//! ACPI: 4 CPUs
//! APs started: 3
//! multiboot: all checks passed
//! ```
//!
//! then exit status 0 on port 0xf4. A failed check prints `FAIL: ...` and
//! exits with its own status ([`status`]). See `guests/README.md`.
//!
//! The same program is built twice: `multiboot`, loaded at 0x100000, and
//! `multiboot-low`, loaded at 0x9000 (where boot loaders built as Multiboot
//! kernels are linked). When the info block EBX points to lies inside the
//! image (QEMU writes it at 0x9500, then loads the low image over it), the
//! guest says so instead of the cmdline, memory and module lines, and checks
//! the rest.
#![no_std]
#![no_main]

mod head;
mod info;

use core::sync::atomic::{AtomicU32, Ordering};

use rt::fw_cfg::{self, E820Entry};
use rt::time::Tsc;
use rt::{acpi, fail, println, smp};

use info::Info;

/// Exit statuses, one per failed check.
pub mod status {
    /// EAX was not the Multiboot magic.
    pub const MAGIC: u8 = 2;
    /// No command line in the info block.
    pub const CMDLINE: u8 = 3;
    /// fw_cfg's signature is not "QEMU".
    pub const FW_CFG: u8 = 4;
    /// fw_cfg has no `etc/e820`, or no RAM above 1 MiB in it.
    pub const FW_CFG_E820: u8 = 5;
    /// mem_lower/mem_upper missing or implausible.
    pub const MEM_UPPER: u8 = 6;
    /// The Multiboot memory map is missing or disagrees with `etc/e820`.
    pub const MMAP: u8 = 7;
    /// A module that is not a valid test ramdisk.
    pub const MODULE: u8 = 8;
    /// No boot loader name.
    pub const LOADER_NAME: u8 = 9;
    /// No valid RSDP in 0xe0000-0xfffff.
    pub const RSDP: u8 = 10;
    /// No valid MADT.
    pub const MADT: u8 = 11;
    /// The MADT and fw_cfg disagree on the number of CPUs.
    pub const CPU_COUNT: u8 = 12;
    /// PIT channel 2 never counted down (TSC calibration).
    pub const PIT: u8 = 13;
    /// An INIT or SIPI stayed pending.
    pub const IPI: u8 = 14;
    /// Not every AP checked in.
    pub const APS: u8 = 15;
    /// More CPUs than rt has stacks for.
    pub const TOO_MANY_CPUS: u8 = 16;
    /// The BDA's base memory size is below 512 KiB or above `mem_lower`.
    pub const BDA: u8 = 17;
    /// ESP at entry was not usable RAM outside the image and the info block.
    pub const ENTRY_STACK: u8 = 18;
    /// Run in real mode from the first byte: the VMM ignored the header.
    pub const NOT_MULTIBOOT: u8 = 0x7e;
}

/// EAX on entry from a Multiboot loader.
const BOOTLOADER_MAGIC: u32 = 0x2bad_b002;
/// Where the AP trampoline goes: SIPI vector 0x08. Free under axvm (whose
/// boot data starts at 0x9000) and QEMU, once the info block has been read.
const TRAMPOLINE_PAGE: usize = 0x8000;
/// Usable RAM above 1 MiB may differ this much between the Multiboot mmap
/// and fw_cfg's `etc/e820`: firmware (SeaBIOS under QEMU) reserves some RAM
/// at the top for itself and its ACPI tables.
const MMAP_MARGIN: u64 = 2 << 20;
/// mem_upper may fall this far (KiB) short of the RAM above 1 MiB.
const MEM_UPPER_MARGIN_KIB: u64 = 4096;
/// How long the BSP waits for the APs to check in (generous: under TCG on a
/// loaded host a vCPU thread may wait long for a core).
const AP_TIMEOUT_US: u64 = 3_000_000;
const MIB: u64 = 1 << 20;
/// The bytes below ESP a kernel may push before it sets its own stack.
const ENTRY_STACK_USE: u32 = 256;
/// The BIOS Data Area's end and the EBDA's start: conventional memory a stack may use.
const BDA_END: u32 = 0x500;
const EBDA_START: u32 = 0x9_fc00;

/// Incremented by each AP once it runs Rust code in long mode.
static APS_STARTED: AtomicU32 = AtomicU32::new(0);

rt::entry32!(bsp, ap);

fn ap(_apic_id: u32) -> ! {
    APS_STARTED.fetch_add(1, Ordering::SeqCst);
    rt::cpu::halt_forever()
}

fn bsp(magic: u32, info: u32) -> ! {
    println!("multiboot: magic {magic:#x}");
    if magic != BOOTLOADER_MAGIC {
        fail!(
            status::MAGIC,
            "Multiboot magic expected {BOOTLOADER_MAGIC:#x} got {magic:#x}"
        );
    }
    check_entry_stack(info);
    if inside_image(info) {
        // QEMU's loader writes its info block at 0x9500, then loads a kernel linked
        // at 0x9000 over it: what EBX points to is this image's own bytes.
        println!(
            "multiboot: info block at {info:#x} lies inside this image (the loader loaded the image over it): its checks are skipped"
        );
        let (cpus, _) = check_fw_cfg();
        rt::firmware::report();
        let aps = count_acpi_cpus(cpus);
        start_aps(&aps);
        println!("multiboot: all checks passed");
        rt::exit(0)
    }
    let info = Info::at(info as usize);

    print_cmdline(&info);
    if info.boot_loader_name().is_none_or(|name| name.is_empty()) {
        fail!(
            status::LOADER_NAME,
            "no boot_loader_name (flags {:#x})",
            info.flags()
        );
    }

    let (cpus, ram) = check_fw_cfg();
    let bda_base_kib = rt::firmware::report();
    check_memory(&info, ram, bda_base_kib);
    check_modules(&info);
    let aps = count_acpi_cpus(cpus);
    start_aps(&aps);

    println!("multiboot: all checks passed");
    rt::exit(0)
}

/// ESP at entry: a pushed word popped back, in conventional memory above the BIOS Data
/// Area or above 1 MiB, clear of this image and of the info block (QEMU enters with its
/// firmware's stack, ESP 0x6f08; axvm with ESP 0x7000).
fn check_entry_stack(info: u32) {
    let (esp, popped) = head::entry_stack();
    if popped != head::PUSHED {
        fail!(
            status::ENTRY_STACK,
            "pushed {:#x} at entry and popped {popped:#x}: ESP {esp:#x} is not RAM",
            head::PUSHED
        );
    }
    let bottom = esp.wrapping_sub(ENTRY_STACK_USE);
    let conventional = (BDA_END..=EBDA_START).contains(&bottom) && esp <= EBDA_START;
    let high = bottom >= MIB as u32;
    let over = |addr: u32| bottom <= addr && addr < esp;
    if esp % 4 != 0
        || !(conventional || high)
        || inside_image(bottom)
        || inside_image(esp - 1)
        || over(info)
    {
        fail!(
            status::ENTRY_STACK,
            "ESP {esp:#x} at entry: its {ENTRY_STACK_USE} bytes below are not free RAM (info block at {info:#x})"
        );
    }
    println!("multiboot: entry stack usable");
}

/// Whether `addr` lies in the image's load range, `__image_start` (the load
/// address: 0x100000, or 0x9000 for `multiboot-low`) to `__image_end` (the
/// end of the bss).
fn inside_image(addr: u32) -> bool {
    extern "C" {
        static __image_start: u8;
        static __image_end: u8;
    }
    // SAFETY: only the symbols' addresses are taken, never their bytes.
    let (start, end) = unsafe {
        (
            core::ptr::addr_of!(__image_start) as usize,
            core::ptr::addr_of!(__image_end) as usize,
        )
    };
    (start..end).contains(&(addr as usize))
}

/// Prints the command line as the loader passed it: the kernel's path first
/// (QEMU passes `<-kernel path> <-append text>`, GRUB the kernel's path and
/// its arguments; kernels skip that first word), so the console shows
/// whether a VMM passes the name.
fn print_cmdline(info: &Info) {
    let Some(cmdline) = info.cmdline() else {
        fail!(
            status::CMDLINE,
            "no command line (flags {:#x})",
            info.flags()
        );
    };
    println!("cmdline: {cmdline}");
}

/// fw_cfg: signature, CPU count, RAM size. Returns (CPUs, RAM bytes).
fn check_fw_cfg() -> (u64, u64) {
    if !fw_cfg::present() {
        fail!(
            status::FW_CFG,
            "fw_cfg signature (selector 0x0000) is not \"QEMU\""
        );
    }
    let cpus = fw_cfg::read_item_le(fw_cfg::NB_CPUS, 2);
    let ram = fw_cfg::read_item_le(fw_cfg::RAM_SIZE, 8);
    println!("fw_cfg: {cpus} CPUs, {} MiB", ram / MIB);
    (cpus, ram)
}

/// mem_upper against the fw_cfg RAM size; mem_lower against the BDA's base
/// memory (kernels take the smaller of the two as their low memory, and QEMU
/// says 640 where SeaBIOS's BDA says 639); the Multiboot memory map against
/// fw_cfg's `etc/e820`, by usable RAM above 1 MiB.
fn check_memory(info: &Info, ram: u64, bda_base_kib: u16) {
    let Some((mem_lower, mem_upper)) = info.mem() else {
        fail!(
            status::MEM_UPPER,
            "no mem_lower/mem_upper (flags {:#x})",
            info.flags()
        );
    };
    let ram_kib = ram / 1024;
    // RAM above 1 MiB, up to the PCI hole (which starts at 3 GiB or later).
    let upper_max = ram_kib.saturating_sub(1024);
    let upper_min = (ram.min(3 << 30) / 1024).saturating_sub(1024 + MEM_UPPER_MARGIN_KIB);
    if !(upper_min..=upper_max).contains(&u64::from(mem_upper)) {
        fail!(
            status::MEM_UPPER,
            "mem_upper {mem_upper} KiB implausible for {ram_kib} KiB of RAM (expected {upper_min}..={upper_max})"
        );
    }
    if !(512..=640).contains(&mem_lower) {
        fail!(
            status::MEM_UPPER,
            "mem_lower {mem_lower} KiB not in 512..=640"
        );
    }
    if bda_base_kib < 512 || u32::from(bda_base_kib) > mem_lower {
        fail!(
            status::BDA,
            "BDA base memory {bda_base_kib} KiB: not in 512..=mem_lower ({mem_lower} KiB)"
        );
    }

    let mut e820_ram = 0;
    let entries = fw_cfg::for_each_e820(|e| e820_ram += e.ram_above(MIB));
    if entries.is_none() || e820_ram == 0 {
        fail!(
            status::FW_CFG_E820,
            "fw_cfg has no etc/e820 with RAM above 1 MiB"
        );
    }
    let mut mmap_ram = 0;
    if info
        .for_each_mmap(|e: E820Entry| mmap_ram += e.ram_above(MIB))
        .is_none()
    {
        fail!(status::MMAP, "no memory map (flags {:#x})", info.flags());
    }
    if mmap_ram > e820_ram || e820_ram - mmap_ram > MMAP_MARGIN {
        fail!(
            status::MMAP,
            "Multiboot mmap has {mmap_ram:#x} bytes of RAM above 1 MiB, etc/e820 {e820_ram:#x}"
        );
    }
    println!("memory: mem_upper and mmap agree with fw_cfg");
}

/// Checks the first module, if any, as a test ramdisk.
fn check_modules(info: &Info) {
    let Some((start, end)) = info.first_module() else {
        return;
    };
    if end < start {
        fail!(
            status::MODULE,
            "module ends ({end:#x}) before it starts ({start:#x})"
        );
    }
    let size = (end - start) as usize;
    println!("module: {size} bytes");
    if let Err(e) = rt::ramdisk::check(start as usize, size) {
        fail!(status::MODULE, "{e}");
    }
}

/// The APIC IDs of the MADT's enabled processors, the BSP's included.
struct ApicIds {
    ids: [u32; rt::MAX_VCPUS],
    len: usize,
}

/// Counts the MADT's enabled processors, prints `ACPI: <n> CPUs` and checks
/// the count against fw_cfg's.
fn count_acpi_cpus(fw_cfg_cpus: u64) -> ApicIds {
    let Some(rsdp) = acpi::find_rsdp() else {
        fail!(status::RSDP, "no valid RSDP in 0xe0000-0xfffff");
    };
    let madt = match acpi::find_table(&rsdp, b"APIC") {
        Ok(madt) => madt,
        Err(e) => fail!(status::MADT, "MADT: {e}"),
    };
    let mut found = ApicIds {
        ids: [0; rt::MAX_VCPUS],
        len: 0,
    };
    let mut enabled = 0u64;
    acpi::for_each_processor(madt, |p| {
        if p.enabled {
            if let Some(slot) = found.ids.get_mut(enabled as usize) {
                *slot = p.apic_id;
                found.len += 1;
            }
            enabled += 1;
        }
    });
    println!("ACPI: {enabled} CPUs");
    if enabled != fw_cfg_cpus {
        fail!(
            status::CPU_COUNT,
            "MADT lists {enabled} enabled CPUs, fw_cfg {fw_cfg_cpus}"
        );
    }
    if enabled as usize > found.len
        || found.ids[..found.len]
            .iter()
            .any(|&id| id as usize >= rt::MAX_VCPUS)
    {
        fail!(
            status::TOO_MANY_CPUS,
            "this guest starts at most {} CPUs (APIC IDs below {0})",
            rt::MAX_VCPUS
        );
    }
    found
}

/// Wakes every AP of the MADT with INIT-SIPI-SIPI into the trampoline at
/// 0x8000 and waits (bounded) until each has incremented [`APS_STARTED`].
fn start_aps(cpus: &ApicIds) {
    let Some(tsc) = Tsc::calibrate() else {
        fail!(
            status::PIT,
            "PIT channel 2 output (port 0x61 bit 5) never went high"
        );
    };
    let bsp = smp::lapic_id();
    smp::enable_lapic();
    // SAFETY: 0x8000 is RAM below 1 MiB that nothing uses any more: the
    // Multiboot info has been read, and neither axvm nor QEMU put anything
    // there. The BSP entered through rt's axvm_start32.
    let vector = unsafe { rt::boot32::install_ap_trampoline(TRAMPOLINE_PAGE) };
    let mut expected = 0;
    for &apic_id in cpus.ids[..cpus.len].iter().filter(|&&id| id != bsp) {
        if !smp::start_ap(apic_id, vector, &tsc) {
            fail!(
                status::IPI,
                "INIT/SIPI to APIC {apic_id} was never accepted"
            );
        }
        expected += 1;
    }
    let deadline = tsc.deadline_us(AP_TIMEOUT_US);
    while APS_STARTED.load(Ordering::SeqCst) < expected && !tsc.passed(deadline) {
        rt::cpu::pause();
    }
    let started = APS_STARTED.load(Ordering::SeqCst);
    println!("APs started: {started}");
    if started != expected {
        fail!(
            status::APS,
            "{expected} APs woken, {started} reached long mode"
        );
    }
}
