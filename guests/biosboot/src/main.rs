//! axvm's kernel for the ArceOS hypervisor's x86 start: loaded at 0x200000 and entered by
//! a BIOS stub (`guests/bios-stub`, what axvm-bios-x86 does), as axvisor starts NimbOS and
//! ArceOS. It checks what the stub handed it, the same way under axvm and QEMU
//! (`scripts/qemu-compat.sh`):
//!
//! ```text
//! biosboot: entered at 0x200000, the BIOS stub's jump
//! biosboot: eax 0x2badb002 ebx 0x0 esp 0x7000
//! biosboot: protected mode, paging off
//! biosboot: stack usable at entry
//! biosboot: all checks passed
//! ```
//!
//! then exit status 0 on port 0xf4. A failed check prints `biosboot: FAIL: ...` and exits
//! with its own status ([`status`]). Entered at its Multiboot header's entry instead (a VMM
//! that booted it as Multiboot by content), it says so and exits [`status::MULTIBOOT`].
#![no_std]
#![no_main]

mod head;

use rt::println;

/// Exit statuses, one per failed check.
pub mod status {
    /// EAX was not the Multiboot magic the stub passes.
    pub const MAGIC: u8 = 2;
    /// EBX was not 0.
    pub const EBX: u8 = 3;
    /// ESP was not 0x7000.
    pub const ESP: u8 = 4;
    /// Not 32-bit protected mode with paging off.
    pub const CR0: u8 = 5;
    /// A word pushed at entry did not pop back: no RAM at ESP.
    pub const STACK: u8 = 6;
    /// Entered at the Multiboot header's entry: the VMM ignored the BIOS start.
    pub const MULTIBOOT: u8 = 0x7d;
}

/// What the stub passes.
const MULTIBOOT_MAGIC: u32 = 0x2bad_b002;
const STUB_STACK: u32 = 0x7000;
const CR0_PE: u32 = 1 << 0;
const CR0_PG: u32 = 1 << 31;

/// What the 32-bit entry recorded (`head.rs`).
struct Entry {
    eax: u32,
    ebx: u32,
    esp: u32,
    cr0: u32,
    popped: u32,
    by_multiboot: bool,
}

rt::entry32!(bsp, ap);

/// Prints `biosboot: FAIL: ...` and exits with `status`.
macro_rules! fail {
    ($status:expr, $($arg:tt)*) => {{
        println!("biosboot: FAIL: {}", format_args!($($arg)*));
        rt::exit($status)
    }};
}

fn ap(_apic_id: u32) -> ! {
    rt::cpu::halt_forever()
}

fn bsp(_magic: u32, _info: u32) -> ! {
    let [eax, ebx, esp, cr0, popped, via] = head::state();
    let entry = Entry {
        eax,
        ebx,
        esp,
        cr0,
        popped,
        by_multiboot: via != 0,
    };
    if entry.by_multiboot {
        fail!(
            status::MULTIBOOT,
            "entered at the Multiboot header's entry (eax {:#x} ebx {:#x} esp {:#x}): the VMM booted the kernel as Multiboot instead of starting the BIOS stub",
            entry.eax,
            entry.ebx,
            entry.esp
        );
    }
    println!("biosboot: entered at 0x200000, the BIOS stub's jump");
    println!(
        "biosboot: eax {:#x} ebx {:#x} esp {:#x}",
        entry.eax, entry.ebx, entry.esp
    );
    check_registers(&entry);
    if entry.cr0 & CR0_PE == 0 || entry.cr0 & CR0_PG != 0 {
        fail!(
            status::CR0,
            "cr0 {:#x}: expected protected mode (PE) with paging off (no PG)",
            entry.cr0
        );
    }
    println!("biosboot: protected mode, paging off");
    if entry.popped != head::PUSHED {
        fail!(
            status::STACK,
            "pushed {:#x} at entry and popped {:#x}: ESP {:#x} is not usable RAM",
            head::PUSHED,
            entry.popped,
            entry.esp
        );
    }
    println!("biosboot: stack usable at entry");
    println!("biosboot: all checks passed");
    rt::exit(0)
}

/// EAX, EBX and ESP as the stub sets them.
fn check_registers(entry: &Entry) {
    if entry.eax != MULTIBOOT_MAGIC {
        fail!(
            status::MAGIC,
            "eax expected {MULTIBOOT_MAGIC:#x} got {:#x}",
            entry.eax
        );
    }
    if entry.ebx != 0 {
        fail!(status::EBX, "ebx expected 0 got {:#x}", entry.ebx);
    }
    if entry.esp != STUB_STACK {
        fail!(
            status::ESP,
            "esp expected {STUB_STACK:#x} got {:#x}",
            entry.esp
        );
    }
}
