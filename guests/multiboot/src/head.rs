//! The first bytes of the image: a real-mode stub, then the Multiboot v1
//! header.
//!
//! A Multiboot loader finds the header (magic 0x1badb002, 4-byte aligned, in
//! the first 8 KiB), loads the file at `load_addr` and enters `entry_addr`
//! (`multiboot_entry32`) in 32-bit protected mode. That entry records ESP,
//! pushes a word and pops it back before any stack of its own, as kernels
//! such as NimbOS do (the spec leaves ESP undefined; QEMU and the ArceOS
//! hypervisor's BIOS stub give a usable one), then joins rt's `axvm_start32`
//! with EAX and EBX unchanged. A VMM that does not
//! recognise the header treats the file as a raw image and, with this
//! guest's config, starts it in real mode at its first byte (CS base
//! 0x100000, IP 0): the stub then prints why and exits with status
//! [`crate::status::NOT_MULTIBOOT`], instead of running the header as code.

use core::arch::global_asm;

use crate::status;

/// Header flags: bit 0, modules page-aligned; bit 1, memory information
/// wanted; bit 16, the address fields below are valid (the a.out kludge:
/// the image is not ELF).
const FLAGS: u32 = (1 << 0) | (1 << 1) | (1 << 16);
const MAGIC: u32 = 0x1bad_b002;
/// The word pushed and popped back at entry.
pub const PUSHED: u32 = 0x5a17_c0de;

extern "C" {
    /// ESP at entry, then the word popped back.
    static multiboot_entry_stack: [u32; 2];
}

/// ESP at entry and the word that popped back after pushing [`PUSHED`] there.
pub fn entry_stack() -> (u32, u32) {
    // SAFETY: written once by the 32-bit entry before any Rust code runs, never after.
    let [esp, popped] =
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!(multiboot_entry_stack)) };
    (esp, popped)
}

global_asm!(
    ".pushsection .data.multiboot_entry, \"aw\"",
    ".balign 4",
    ".global multiboot_entry_stack",
    "multiboot_entry_stack: .long 0, 0",
    ".popsection",
    ".pushsection .text.multiboot_head, \"ax\"",
    ".code16",
    "multiboot_realmode_stub:",
    "    cli",
    "    cld",
    // CS-relative: the stub does not know DS, and CS base is the image start.
    "    movw $(multiboot_realmode_msg - multiboot_realmode_stub), %si",
    "1:",
    "    movb %cs:(%si), %bl",
    "    testb %bl, %bl",
    "    jz 3f",
    "    movw $0x3fd, %dx",
    "2:",
    "    inb %dx, %al",
    "    testb $0x20, %al",
    "    jz 2b",
    "    movw $0x3f8, %dx",
    "    movb %bl, %al",
    "    outb %al, %dx",
    "    incw %si",
    "    jmp 1b",
    "3:",
    "    movb ${not_multiboot}, %al",
    "    outb %al, $0xf4",
    "4:",
    "    hlt",
    "    jmp 4b",
    "multiboot_realmode_msg:",
    "    .asciz \"multiboot: FAIL: started in real mode at the image's first byte: the VMM did not boot it as Multiboot\\n\"",
    ".code32",
    ".balign 4",
    "multiboot_header:",
    "    .long {magic}",
    "    .long {flags}",
    "    .long -({magic} + {flags})",
    "    .long multiboot_header", // header_addr
    "    .long __image_start",    // load_addr
    "    .long __load_end",       // load_end_addr
    "    .long __image_end",      // bss_end_addr
    "    .long multiboot_entry32", // entry_addr
    // Not Multiboot: the 64-bit code's range, for the image test that
    // disassembles it looking for SSE (crates/axvm-guests/tests/images.rs).
    "    .long __text64_start",
    "    .long __text64_end",
    "multiboot_entry32:",
    "    movl %esp, multiboot_entry_stack",
    "    pushl ${pushed}",
    "    popl %ecx",
    "    movl %ecx, multiboot_entry_stack + 4",
    "    jmp axvm_start32",
    ".code64",
    ".popsection",
    magic = const MAGIC,
    flags = const FLAGS,
    not_multiboot = const status::NOT_MULTIBOOT,
    pushed = const PUSHED,
    options(att_syntax),
);
