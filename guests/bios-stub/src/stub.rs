//! axvm's BIOS stub for the ArceOS hypervisor's x86 start: the 16-bit code a config loads
//! at 0x8000 (`bios_path`, `bios_load_addr = 0x8000`) and starts at `entry_point = 0x8000`.
//!
//! It does what arceos-hypervisor/axvm-bios-x86 does for NimbOS and ArceOS, written here:
//! from real mode (CS base 0, IP 0x8000, as the hypervisor's vCPU reset leaves it) it loads
//! its own GDT (flat 4 GiB code 0x08 and data 0x10), sets CR0.PE, far-jumps to 32-bit code,
//! loads the data segments, and enters the kernel at 0x200000 with ESP = 0x7000, EAX =
//! 0x2BADB002 (the Multiboot magic, which those kernels check) and EBX = 0 (no Multiboot
//! information: the stub has none). Interrupts stay off, paging off.
#![no_std]
#![no_main]

use core::arch::global_asm;

/// Where the kernel is loaded (`kernel_load_addr`) and entered.
const KERNEL_ENTRY: u32 = 0x20_0000;
/// The stack the kernel is entered with, below the stub.
const KERNEL_STACK: u32 = 0x7000;
/// EAX at the kernel's entry: the Multiboot loader magic.
const MULTIBOOT_MAGIC: u32 = 0x2bad_b002;

// AT&T syntax: LLVM's Intel-syntax parser is unreliable for 16-bit far jumps and operand
// sizes (see guests/realmode).
global_asm!(
    ".code16",
    ".section .text.stub, \"ax\"",
    ".global _start",
    "_start:",
    "    cli",
    "    cld",
    "    xorw %ax, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    // The GDT descriptor's address fits 16 bits: DS = 0 reaches it.
    "    lgdtl stub_gdtr",
    "    movl %cr0, %eax",
    "    orl $1, %eax",
    "    movl %eax, %cr0",
    // A 32-bit far jump reloads CS from the GDT: from here on, 32-bit protected mode.
    "    ljmpl $0x08, $stub_protected",
    ".code32",
    "stub_protected:",
    "    movl $0x10, %eax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %fs",
    "    movw %ax, %gs",
    "    movw %ax, %ss",
    "    movl ${stack}, %esp",
    "    movl ${magic}, %eax",
    "    xorl %ebx, %ebx",
    "    movl ${entry}, %ecx",
    "    jmpl *%ecx",
    // Accessed bits preset, so the CPU never writes to the descriptors.
    ".balign 8",
    "stub_gdt:",
    "    .quad 0",
    "    .quad 0x00cf9b000000ffff", // 0x08: flat 32-bit code, 4 GiB
    "    .quad 0x00cf93000000ffff", // 0x10: flat data, 4 GiB
    "stub_gdtr:",
    "    .word stub_gdtr - stub_gdt - 1",
    "    .long stub_gdt",
    ".code64",
    stack = const KERNEL_STACK,
    magic = const MULTIBOOT_MAGIC,
    entry = const KERNEL_ENTRY,
    options(att_syntax),
);

/// Required by `no_std`; unreachable, since no Rust code runs in this image.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
