//! axvm's real-mode guest: a raw 16-bit image that prints
//! `axvm real-mode guest: hello` on COM1 and exits with status 0.
//!
//! Contract: the VMM loads this flat image at 0x8000 and starts the vCPU in
//! real mode with CS base 0, IP 0x8000 and DS = ES = SS = 0, like the ArceOS
//! hypervisor's BIOS-style x86 entry. There is no BIOS, so the code uses
//! nothing but port I/O; it sets up its own stack (SP = 0x7000) and calls a
//! subroutine, so the VMM's real-mode stack handling is exercised too.
#![no_std]
#![no_main]

use core::arch::global_asm;

// AT&T syntax, because LLVM's Intel-syntax parser assembles a plain `call`
// in `.code16` as the 32-bit `calll`/`retl` pair; `callw`/`retw` say what is
// meant (push and pop a 16-bit IP).
global_asm!(
    ".code16",
    ".section .text.boot, \"ax\"",
    ".global _start",
    "_start:",
    "    cli",
    "    cld",
    "    xorw %ax, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    "    movw $0x7000, %sp",
    "    movw $axvm_rm_msg, %si",
    // Print the NUL-terminated message a byte at a time.
    "2:",
    "    lodsb",
    "    testb %al, %al",
    "    jz 3f",
    "    callw axvm_rm_putc",
    "    jmp 2b",
    // Exit status 0 on the exit port (0xf4).
    "3:",
    "    xorb %al, %al",
    "    outb %al, $0xf4",
    "4:",
    "    cli",
    "    hlt",
    "    jmp 4b",
    // putc: writes AL to COM1 once the line status register (0x3fd) reports
    // the transmit holding register empty (bit 5). Clobbers DX and AH.
    "axvm_rm_putc:",
    "    movb %al, %ah",
    "    movw $0x3fd, %dx",
    "5:",
    "    inb %dx, %al",
    "    testb $0x20, %al",
    "    jz 5b",
    "    movw $0x3f8, %dx",
    "    movb %ah, %al",
    "    outb %al, %dx",
    "    retw",
    "axvm_rm_msg:",
    "    .asciz \"axvm real-mode guest: hello\\n\"",
    // Back to 64-bit for whatever the compiler emits after this block.
    ".code64",
    options(att_syntax),
);

/// Required by `no_std`; unreachable, since no Rust code runs in this guest.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
