//! The first bytes of the image: the BIOS stub's jump target, then a Multiboot header.
//!
//! Both entries record what they were handed (EAX, EBX, ESP, CR0), push a word and pop it
//! back (a kernel's first push needs a stack that is RAM), note which entry ran, and join
//! rt's `axvm_start32` with EAX and EBX unchanged. The Multiboot header makes this image one
//! a VMM would boot as Multiboot by content, as NimbOS's and ArceOS's are: a VMM that
//! ignored the BIOS start would enter it at the header's `entry_addr`, and the guest says so.

use core::arch::global_asm;

/// What the entry records, in this order, as `u32`s (see [`crate::Entry`]).
const STATE_WORDS: usize = 6;
/// The word pushed and popped back at entry.
pub const PUSHED: u32 = 0x5a17_c0de;
/// Multiboot header flags: bit 16, the address fields are valid (the a.out kludge).
const FLAGS: u32 = 1 << 16;
const MAGIC: u32 = 0x1bad_b002;

global_asm!(
    ".pushsection .data.biosboot_entry, \"aw\"",
    ".balign 4",
    ".global biosboot_state",
    "biosboot_state:",
    "    .zero 4 * {words}",
    ".popsection",
    ".pushsection .text.biosboot_head, \"ax\"",
    ".code32",
    ".global biosboot_entry",
    "biosboot_entry:",
    "    movl $0, biosboot_state + 20",
    "    jmp biosboot_record",
    ".balign 4",
    "biosboot_multiboot_header:",
    "    .long {magic}",
    "    .long {flags}",
    "    .long -({magic} + {flags})",
    "    .long biosboot_multiboot_header", // header_addr
    "    .long __image_start",             // load_addr
    "    .long __load_end",                // load_end_addr
    "    .long __image_end",               // bss_end_addr
    "    .long biosboot_multiboot_entry",  // entry_addr
    // Not Multiboot: the 64-bit code's range, for the image test that disassembles it
    // looking for SSE (crates/axvm-guests/tests/bios_start_images.rs).
    "    .long __text64_start",
    "    .long __text64_end",
    "biosboot_multiboot_entry:",
    "    movl $1, biosboot_state + 20",
    "biosboot_record:",
    "    movl %eax, biosboot_state",
    "    movl %ebx, biosboot_state + 4",
    "    movl %esp, biosboot_state + 8",
    "    movl %cr0, %ecx",
    "    movl %ecx, biosboot_state + 12",
    "    pushl ${pushed}",
    "    popl %ecx",
    "    movl %ecx, biosboot_state + 16",
    "    jmp axvm_start32",
    ".code64",
    ".popsection",
    words = const STATE_WORDS,
    magic = const MAGIC,
    flags = const FLAGS,
    pushed = const PUSHED,
    options(att_syntax),
);

extern "C" {
    static biosboot_state: [u32; STATE_WORDS];
}

/// The words the entry recorded.
pub fn state() -> [u32; STATE_WORDS] {
    // SAFETY: written once by the 32-bit entry before any Rust code runs, never after.
    unsafe { core::ptr::read_volatile(core::ptr::addr_of!(biosboot_state)) }
}
