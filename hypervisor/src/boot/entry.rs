//! The machine code that runs before Rust: the Multiboot v1 header, the 32-bit entry that
//! switches to long mode with the kernel's boot page tables, and the real-mode trampoline that
//! brings each application processor (AP) the same way.
//!
//! The bootstrap processor (BSP) enters `hv_entry32` as Multiboot says: 32-bit protected mode,
//! paging off, interrupts off, EAX = magic, EBX = the info block, no stack. It loads the
//! kernel's [GDT](#gdt), zeroes `.bss`, fills the boot page tables (the low 4 GiB identity-mapped
//! with 2 MiB pages, the top GiB uncached until [`crate::mm::paging`] refines it from the memory
//! map), turns on PAE, long mode and paging, and calls `bsp_main(magic, info)` on the boot
//! stack. Nothing before that uses a stack or SSE.
//!
//! An AP woken by INIT-SIPI-SIPI starts in real mode at the trampoline copied below 1 MiB
//! ([`TRAMPOLINE`]); it loads the same GDT, enters protected mode, jumps to `hv_ap_entry32` in
//! the image and takes the same road to long mode, with the BSP's page tables, then calls
//! `ap_main(cpu)` on the stack the BSP left in [`AP_STACK_TOP`] for it.
//!
//! # GDT
//! 0x08: 64-bit code; 0x10: flat data; 0x18: flat 32-bit code.

use core::arch::global_asm;
use core::sync::atomic::AtomicU64;

/// The stack top the next AP to start takes, set by [`crate::smp`] before its SIPI.
#[no_mangle]
pub static AP_STACK_TOP: AtomicU64 = AtomicU64::new(0);
/// The CPU number the next AP to start gets (its `ap_main` argument).
#[no_mangle]
pub static AP_CPU: AtomicU64 = AtomicU64::new(0);

/// Multiboot v1 header magic and flags: modules page-aligned (bit 0), memory map wanted
/// (bit 1), load addresses in the header (bit 16, the a.out kludge: the file is not ELF).
const MB_MAGIC: u32 = 0x1bad_b002;
const MB_FLAGS: u32 = (1 << 0) | (1 << 1) | (1 << 16);
const MB_CHECKSUM: u32 = 0u32.wrapping_sub(MB_MAGIC.wrapping_add(MB_FLAGS));

/// The code and data selectors of the kernel's GDT.
const SEL_CODE64: u16 = 0x08;
const SEL_DATA: u16 = 0x10;
const SEL_CODE32: u16 = 0x18;

/// 2 MiB page-directory entry: present, writable, large; the uncached bits PWT|PCD.
const PDE_LARGE_RW: u32 = 0x83;
const PDE_UNCACHED: u32 = 0x18;
/// The first PDE of the fourth GiB, where the APICs and other MMIO live.
const PDE_FIRST_MMIO: u32 = 3 * 512;
const PDES_LOW_4G: u32 = 4 * 512;
/// CR4.PAE; EFER (MSR) with LME; CR0 with PG, WP and PE.
const CR4_PAE: u32 = 1 << 5;
const MSR_EFER: u32 = 0xc000_0080;
const EFER_LME: u32 = 1 << 8;
const CR0_PG_WP_PE: u32 = (1 << 31) | (1 << 16) | 1;
/// The BSP's boot stack.
const BOOT_STACK_SIZE: usize = 64 * 1024;

/// Where the AP trampoline is copied: a page below 1 MiB that the frame allocator never hands
/// out (it skips the low 1 MiB). The SIPI vector is this page's number.
pub const TRAMPOLINE: u64 = 0x8000;

extern "C" {
    static hv_trampoline_start: u8;
    static hv_trampoline_end: u8;
    /// The boot page tables (in `.bss`), refined and extended by [`crate::mm::paging`].
    pub static mut hv_pml4: [u64; 512];
    /// The boot PDPT: entries 0-3 point at `hv_pd_low`.
    pub static mut hv_pdpt: [u64; 512];
    /// The four page directories of the low 4 GiB.
    pub static mut hv_pd_low: [[u64; 512]; 4];
}

global_asm!(
    // ---- The Multiboot header: the first bytes of the file (link.ld puts this section first).
    ".pushsection .text.multiboot_header, \"ax\"",
    ".balign 4",
    "hv_multiboot_header:",
    "    .long {mb_magic}, {mb_flags}, {mb_checksum}",
    "    .long hv_multiboot_header, __kernel_start, __load_end, __kernel_end, hv_entry32",
    ".popsection",
    // ---- The GDT and its 32-bit pseudo-descriptor.
    ".pushsection .rodata.hv_gdt, \"a\"",
    ".balign 16",
    "hv_gdt:",
    "    .quad 0",
    "    .quad 0x00af9b000000ffff",
    "    .quad 0x00cf93000000ffff",
    "    .quad 0x00cf9b000000ffff",
    "hv_gdt_end:",
    ".balign 4",
    "    .word 0",
    "hv_gdtr:",
    "    .word hv_gdt_end - hv_gdt - 1",
    "    .long hv_gdt",
    ".popsection",
    ".pushsection .data.hv_boot, \"aw\"",
    ".balign 4",
    "hv_boot_magic: .long 0",
    "hv_boot_info: .long 0",
    ".popsection",
    ".pushsection .bss.hv_boot, \"aw\", @nobits",
    ".balign 4096",
    ".global hv_pml4, hv_pdpt, hv_pd_low",
    "hv_pml4: .zero 4096",
    "hv_pdpt: .zero 4096",
    "hv_pd_low: .zero 4 * 4096",
    "hv_boot_stack: .zero {boot_stack_size}",
    "hv_boot_stack_top:",
    ".popsection",
    // ---- 32-bit code.
    ".pushsection .text.boot32, \"ax\"",
    ".code32",
    ".global hv_entry32",
    "hv_entry32:",
    "    cli",
    "    cld",
    "    movl %eax, %ebp",
    "    movl %ebx, %esi",
    "    lgdtl hv_gdtr",
    "    movw ${sel_data}, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    "    movw %ax, %fs",
    "    movw %ax, %gs",
    "    ljmpl ${sel_code32}, $1f",
    "1:",
    "    movl $__bss_start, %edi",
    "    movl $__bss_end, %ecx",
    "    subl %edi, %ecx",
    "    shrl $2, %ecx",
    "    xorl %eax, %eax",
    "    rep stosl",
    "    movl %ebp, hv_boot_magic",
    "    movl %esi, hv_boot_info",
    "    movl $hv_pdpt + 3, hv_pml4",
    "    movl $hv_pd_low + 3, %eax",
    "    xorl %ecx, %ecx",
    "2:",
    "    movl %eax, hv_pdpt(, %ecx, 8)",
    "    addl $0x1000, %eax",
    "    incl %ecx",
    "    cmpl $4, %ecx",
    "    jb 2b",
    "    xorl %ecx, %ecx",
    "3:",
    "    movl %ecx, %eax",
    "    shll $21, %eax",
    "    orl ${pde}, %eax",
    "    cmpl ${first_mmio}, %ecx",
    "    jb 4f",
    "    orl ${uncached}, %eax",
    "4:",
    "    movl %eax, hv_pd_low(, %ecx, 8)",
    "    incl %ecx",
    "    cmpl ${pdes}, %ecx",
    "    jb 3b",
    "    movl $1, %ebp",
    "    jmp hv_paging_on",
    // APs: here from the trampoline with CS = 0x18, the data segments still real-mode values.
    ".global hv_ap_entry32",
    "hv_ap_entry32:",
    "    movw ${sel_data}, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    "    movw %ax, %fs",
    "    movw %ax, %gs",
    "    xorl %ebp, %ebp",
    "hv_paging_on:",
    "    movl $hv_pml4, %eax",
    "    movl %eax, %cr3",
    "    movl %cr4, %eax",
    "    orl ${cr4_pae}, %eax",
    "    movl %eax, %cr4",
    "    movl ${efer}, %ecx",
    "    rdmsr",
    "    orl ${efer_lme}, %eax",
    "    wrmsr",
    "    movl %cr0, %eax",
    "    orl ${cr0_bits}, %eax",
    "    movl %eax, %cr0",
    "    ljmpl ${sel_code64}, $hv_entry64",
    // ---- The AP trampoline template, copied to TRAMPOLINE; CS-relative addressing only.
    ".code16",
    ".global hv_trampoline_start, hv_trampoline_end",
    "hv_trampoline_start:",
    "    cli",
    "    cld",
    "    lgdtl %cs:(hv_trampoline_gdtr - hv_trampoline_start)",
    "    movl %cr0, %eax",
    "    orl $1, %eax",
    "    movl %eax, %cr0",
    "    ljmpl ${sel_code32}, $hv_ap_entry32",
    ".balign 4",
    "hv_trampoline_gdtr:",
    "    .word hv_gdt_end - hv_gdt - 1",
    "    .long hv_gdt",
    "hv_trampoline_end:",
    // ---- 64-bit: the BSP (EBP = 1) on the boot stack, an AP on the stack left for it.
    ".code64",
    "hv_entry64:",
    "    movw ${sel_data}, %ax",
    "    movw %ax, %ds",
    "    movw %ax, %es",
    "    movw %ax, %ss",
    "    xorl %eax, %eax",
    "    movw %ax, %fs",
    "    movw %ax, %gs",
    "    testl %ebp, %ebp",
    "    jz 5f",
    "    leaq hv_boot_stack_top(%rip), %rsp",
    "    movl hv_boot_magic(%rip), %edi",
    "    movl hv_boot_info(%rip), %esi",
    "    xorl %ebp, %ebp",
    "    call {bsp_main}",
    "    jmp 6f",
    "5:",
    "    movq {ap_stack}(%rip), %rsp",
    "    movq {ap_cpu}(%rip), %rdi",
    "    call {ap_main}",
    "6:",
    "    cli",
    "    hlt",
    "    jmp 6b",
    ".popsection",
    mb_magic = const MB_MAGIC,
    mb_flags = const MB_FLAGS,
    mb_checksum = const MB_CHECKSUM,
    sel_code64 = const SEL_CODE64,
    sel_data = const SEL_DATA,
    sel_code32 = const SEL_CODE32,
    pde = const PDE_LARGE_RW,
    uncached = const PDE_UNCACHED,
    first_mmio = const PDE_FIRST_MMIO,
    pdes = const PDES_LOW_4G,
    cr4_pae = const CR4_PAE,
    efer = const MSR_EFER,
    efer_lme = const EFER_LME,
    cr0_bits = const CR0_PG_WP_PE,
    boot_stack_size = const BOOT_STACK_SIZE,
    bsp_main = sym crate::bsp_main,
    ap_main = sym crate::ap_main,
    ap_stack = sym AP_STACK_TOP,
    ap_cpu = sym AP_CPU,
    options(att_syntax),
);

/// Copies the AP trampoline to [`TRAMPOLINE`] and returns the SIPI vector that starts an AP
/// there.
pub fn install_trampoline() -> u8 {
    let start = core::ptr::addr_of!(hv_trampoline_start);
    let len = core::ptr::addr_of!(hv_trampoline_end) as usize - start as usize;
    let target = crate::mm::phys_to_virt(TRAMPOLINE);
    // SAFETY: TRAMPOLINE is RAM below 1 MiB that nothing else uses (the frame allocator skips
    // the low 1 MiB); the template is `len` bytes of the kernel image.
    unsafe { core::ptr::copy_nonoverlapping(start, target, len) };
    (TRAMPOLINE >> 12) as u8
}
