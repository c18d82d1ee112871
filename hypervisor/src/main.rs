//! axvm's type-1 hypervisor kernel (issue 12): booted by QEMU's `-kernel` as Multiboot v1, it
//! owns the machine (long mode, its page tables, frame allocator and heap, COM1, every CPU)
//! and runs the VMs described by the config and image modules it is given, on AMD SVM.
//!
//! This file is the bring-up order; [`vmm::main`] is the VM side, called last.
#![no_std]
#![no_main]
#![deny(missing_docs)]

extern crate alloc;

pub mod acpi;
pub mod apic;
pub mod boot;
pub mod console;
pub mod cpu;
pub mod interrupts;
pub mod mm;
pub mod qemu;
pub mod smp;
pub mod svm;
pub mod time;
pub mod vmm;
pub mod wall_clock;

use boot::multiboot::{MultibootInfo, RAM};

/// The BSP's first Rust code, called by the 32-bit entry in long mode on the boot stack with
/// the Multiboot magic and info address.
pub extern "C" fn bsp_main(magic: u32, info: u32) -> ! {
    console::init();
    hv_println!("booting (Multiboot v1)");
    let info = match MultibootInfo::parse(magic, info) {
        Ok(info) => info,
        Err(error) => panic!("boot information unusable: {error}"),
    };
    mm::init(&info);
    boot::publish(&info);
    console::init_logger(log::LevelFilter::Info);
    print_memory_summary(&info);
    match mm::check::run(&info) {
        Ok(()) => hv_println!("frame allocator checks passed"),
        Err(check) => panic!("frame allocator check failed: {check}"),
    }
    interrupts::load();
    apic::disable_legacy_pic();
    apic::init();
    smp::init_bsp();
    let tsc_hz = time::calibrate();
    hv_println!("TSC {} MHz (against PIT channel 2)", tsc_hz / 1_000_000);
    hv_println!("wall clock: Unix time {} (the RTC)", wall_clock::init());
    let apic_timer_khz = apic::calibrate_timer();
    hv_println!("APIC timer {} MHz (against the TSC)", apic_timer_khz / 1000);
    svm::enable(0);
    let cpus = smp::start_aps();
    hv_println!("{cpus} CPU(s) up; interrupts are off on all of them (parked APs halt with IF=1)");
    vmm::main()
}

/// An AP's first Rust code, on the stack the BSP allocated for it ([`smp::start_aps`]), with
/// its CPU number.
pub extern "C" fn ap_main(cpu: u64) -> ! {
    smp::ap_online(cpu as usize)
}

fn print_memory_summary(info: &MultibootInfo) {
    hv_println!("memory map:");
    let mut ram = 0;
    for region in info.regions() {
        let kind = match region.kind {
            RAM => "RAM",
            3 => "ACPI data",
            4 => "ACPI NVS",
            _ => "reserved",
        };
        if region.kind == RAM {
            ram += region.len;
        }
        hv_println!("  {:#012x}-{:#012x} {kind}", region.start, region.end());
    }
    let (start, end) = mm::kernel_range();
    hv_println!(
        "RAM {} MiB, kernel {start:#x}-{end:#x}, {} MiB free after the heap ({} MiB)",
        ram >> 20,
        (mm::frames::free_pages() as u64 * mm::PAGE_SIZE) >> 20,
        mm::heap::HEAP_SIZE >> 20
    );
    if frames_beyond_limit(info) {
        hv_println!("RAM above {} GiB is not used", mm::frames::MAX_PHYS >> 30);
    }
}

fn frames_beyond_limit(info: &MultibootInfo) -> bool {
    info.regions()
        .iter()
        .any(|r| r.kind == RAM && r.end() > mm::frames::MAX_PHYS)
}

#[panic_handler]
fn panic(panic_info: &core::panic::PanicInfo) -> ! {
    use core::fmt::Write;
    cpu::disable_interrupts();
    let mut out = console::emergency_writer();
    let _ = writeln!(out, "\n{}PANIC: {panic_info}", console::PREFIX);
    qemu::exit(0xfe)
}
