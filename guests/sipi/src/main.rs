//! axvm's start-up IPI guest: vCPU 0 starts vCPU 1 through its local APIC's interrupt
//! command register, as a PC's firmware or kernel starts its application processors.
//!
//! Contract: a BIOS start (`sipi.toml`: `bios_path` = this image at 0x8000, `entry_point`
//! 0x8000), so vCPU 0 begins in real mode at 0x8000 and vCPU 1 waits for INIT-SIPI-SIPI.
//! vCPU 0 switches to 32-bit protected mode (flat segments, its own GDT), prints
//! `sipi: vCPU 0 sends INIT-SIPI-SIPI (vector 0x09) to APIC ID 1`, software-enables its
//! local APIC (SVR at 0xfee000f0) and sends INIT, SIPI and SIPI to APIC ID 1 (ICR at
//! 0xfee00310/0xfee00300), waiting for the delivery-status bit to clear after each. vCPU 1
//! starts in real mode at 0x9000 (CS 0x0900, IP 0), adds one to the start counter at 0x6000
//! and halts with interrupts off. vCPU 0 waits for the counter (2^33 TSC ticks, about 3 s),
//! prints `sipi: vCPU 1 started at 0x9000`, waits 2^32 more ticks and, when the counter is
//! still 1 (the second SIPI, sent to a running processor, was ignored), prints
//! `sipi: the second SIPI was ignored` and exits 0. Statuses: 3 vCPU 1 never started
//! (`FAIL: vCPU 1 did not start`), 4 it started more than once (`FAIL: vCPU 1 started
//! again`). Only port I/O, the local APIC page and RAM below 64 KiB are used.
#![no_std]
#![no_main]

use core::arch::global_asm;

// AT&T syntax, as in the real-mode guest: LLVM's Intel-syntax parser mis-sizes 16-bit calls.
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
    "    lgdtl sipi_gdt_ptr",
    "    movl %cr0, %eax",
    "    orl $1, %eax",
    "    movl %eax, %cr0",
    "    ljmpl $0x08, $sipi_pm32",
    ".code32",
    "sipi_pm32:",
    "    movw $0x10, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    "    movl $0x7000, %esp",
    "    movl $sipi_msg_send, %esi",
    "    call sipi_puts",
    // Software-enable the local APIC (spurious vector 0xff), then INIT, SIPI, SIPI to
    // APIC ID 1: physical destination, level assert.
    "    movl $0x1ff, 0xfee000f0",
    "    movl $0x01000000, 0xfee00310",
    "    movl $0x00004500, 0xfee00300",
    "    call sipi_wait_icr",
    "    movl $0x00004609, 0xfee00300",
    "    call sipi_wait_icr",
    "    movl $0x00004609, 0xfee00300",
    "    call sipi_wait_icr",
    // Wait for the start counter: until the TSC's high half has grown by 2 (2^33 ticks).
    "    rdtsc",
    "    leal 2(%edx), %edi",
    "1:",
    "    cmpl $0, 0x6000",
    "    jne 2f",
    "    pause",
    "    rdtsc",
    "    cmpl %edi, %edx",
    "    jb 1b",
    "    movl $sipi_msg_no_ap, %esi",
    "    movb $3, %bl",
    "    jmp sipi_fail",
    "2:",
    "    movl $sipi_msg_started, %esi",
    "    call sipi_puts",
    // 2^32 more ticks for a second start, which must not come.
    "    rdtsc",
    "    leal 1(%edx), %edi",
    "3:",
    "    pause",
    "    rdtsc",
    "    cmpl %edi, %edx",
    "    jb 3b",
    "    cmpl $1, 0x6000",
    "    je 4f",
    "    movl $sipi_msg_twice, %esi",
    "    movb $4, %bl",
    "    jmp sipi_fail",
    "4:",
    "    movl $sipi_msg_ignored, %esi",
    "    call sipi_puts",
    "    xorb %al, %al",
    "    outb %al, $0xf4",
    "5:",
    "    cli",
    "    hlt",
    "    jmp 5b",
    // Prints the message at ESI, exits with BL.
    "sipi_fail:",
    "    call sipi_puts",
    "    movb %bl, %al",
    "    outb %al, $0xf4",
    "    jmp 5b",
    // Waits until the ICR's delivery-status bit (12) is clear.
    "sipi_wait_icr:",
    "    testl $0x1000, 0xfee00300",
    "    jz 6f",
    "    pause",
    "    jmp sipi_wait_icr",
    "6:",
    "    ret",
    // Prints the NUL-terminated string at ESI on COM1, polling the line status register.
    "sipi_puts:",
    "    lodsb",
    "    testb %al, %al",
    "    jz 8f",
    "    movb %al, %ah",
    "    movw $0x3fd, %dx",
    "7:",
    "    inb %dx, %al",
    "    testb $0x20, %al",
    "    jz 7b",
    "    movw $0x3f8, %dx",
    "    movb %ah, %al",
    "    outb %al, %dx",
    "    jmp sipi_puts",
    "8:",
    "    ret",
    ".balign 8",
    "sipi_gdt:",
    "    .quad 0",
    "    .quad 0x00cf9a000000ffff", // 0x08: flat 32-bit code
    "    .quad 0x00cf92000000ffff", // 0x10: flat data
    "sipi_gdt_ptr:",
    "    .word 23",
    "    .long sipi_gdt",
    "sipi_msg_send:",
    "    .asciz \"sipi: vCPU 0 sends INIT-SIPI-SIPI (vector 0x09) to APIC ID 1\\n\"",
    "sipi_msg_started:",
    "    .asciz \"sipi: vCPU 1 started at 0x9000\\n\"",
    "sipi_msg_ignored:",
    "    .asciz \"sipi: the second SIPI was ignored\\n\"",
    "sipi_msg_no_ap:",
    "    .asciz \"FAIL: vCPU 1 did not start\\n\"",
    "sipi_msg_twice:",
    "    .asciz \"FAIL: vCPU 1 started again\\n\"",
    // vCPU 1's start: page 0x09 (0x9000), the image's second 4 KiB page.
    ".org 0x1000",
    ".code16",
    "sipi_ap:",
    "    cli",
    "    xorw %ax, %ax",
    "    movw %ax, %ds",
    "    lock incl 0x6000",
    "9:",
    "    cli",
    "    hlt",
    "    jmp 9b",
    // Back to 64-bit for whatever the compiler emits after this block.
    ".code64",
    options(att_syntax),
);

/// Required by `no_std`; unreachable, since no Rust code runs in this guest.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
