//! The 32-bit entry: from the state the Multiboot v1 and PVH boot protocols
//! hand over (32-bit protected mode, paging off) into 64-bit long mode, and
//! the real-mode trampoline that brings application processors (APs) woken
//! by INIT-SIPI-SIPI the same way.
//!
//! # Bootstrap processor: `axvm_start32`
//!
//! A guest names `axvm_start32` as its 32-bit entry point (the a.out-kludge
//! `entry_addr` of a Multiboot header, the address in a PVH ELF note). It
//! expects: 32-bit protected mode, flat 4 GiB code and data segments, paging
//! off, interrupts off; EAX = the Multiboot magic (any value under PVH),
//! EBX = the boot information's physical address. No stack is assumed, and
//! none is used until long mode. It then
//!
//! 1. keeps EAX and EBX in registers, loads its own GDT ([`GDT`] layout
//!    below) and reloads every segment register from it;
//! 2. zeroes `__bss_start..__bss_end` (defined by the guest's linker script;
//!    4-byte aligned) — a Multiboot loader zeroes up to `bss_end_addr`, but an
//!    ELF loader need not zero `p_memsz` beyond `p_filesz` (linux-loader
//!    does not), so the entry does not rely on either. The per-CPU stacks
//!    (section `.bss.axvm_stacks`) may be placed outside that range;
//! 3. stores EAX and EBX in `.data` for the 64-bit side;
//! 4. builds page tables in `.bss` identity-mapping the low 4 GiB with 2 MiB
//!    pages (the top GiB, where the local APIC, IOAPIC and other MMIO live,
//!    uncached: PCD|PWT), and enables PAE, EFER.LME and paging;
//! 5. far-jumps to 64-bit code, which takes the stack of its CPU (the
//!    per-APIC-ID stacks of [`crate::entry`], 16 KiB each, APIC IDs below
//!    [`MAX_VCPUS`](crate::MAX_VCPUS); a higher ID halts) and calls the
//!    guest's `bsp(magic, info)` from [`entry32!`](crate::entry32).
//!
//! Interrupts stay off throughout, and no SSE instruction is used.
//!
//! # Application processors: the trampoline
//!
//! [`install_ap_trampoline`] copies a small real-mode stub to a page below
//! 1 MiB; an AP sent a SIPI with that page's vector starts there in real mode
//! (CS = vector << 8, IP = 0). The stub loads the same GDT, sets CR0.PE and
//! jumps to `axvm_ap_start32` in the image, which joins step 4 above (the
//! page tables are the BSP's, already built) and calls the guest's
//! `ap(apic_id)`. The stub uses only CS-relative addressing, so it runs from
//! any page.
//!
//! # GDT
//!
//! | selector | segment |
//! | --- | --- |
//! | 0x08 | 64-bit code |
//! | 0x10 | flat 32-bit data (also used as the 64-bit data selector) |
//! | 0x18 | flat 32-bit code |

use core::arch::global_asm;

use crate::entry::{STACKS, STACK_SHIFT};
use crate::MAX_VCPUS;

/// Selector of the 64-bit code segment in the entry's GDT.
pub const GDT_CODE64: u16 = 0x08;
/// Selector of the flat data segment in the entry's GDT.
pub const GDT_DATA: u16 = 0x10;
/// Selector of the flat 32-bit code segment in the entry's GDT.
pub const GDT_CODE32: u16 = 0x18;

/// CR4.PAE.
const CR4_PAE: u32 = 1 << 5;
/// IA32_EFER and its long-mode-enable bit.
const MSR_EFER: u32 = 0xc000_0080;
const EFER_LME: u32 = 1 << 8;
/// CR0.PG | CR0.PE.
const CR0_PG_PE: u32 = 0x8000_0001;
/// Page-directory entry bits: present, writable, 2 MiB page.
const PDE_2M: u32 = 0x83;
/// Page-level cache disable and write-through, for the MMIO gigabyte.
const PDE_UNCACHED: u32 = 0x18;
/// Index of the first 2 MiB page of the fourth gigabyte (3 GiB / 2 MiB).
const FIRST_MMIO_PDE: u32 = 1536;
/// 2 MiB pages in 4 GiB.
const PDES: u32 = 2048;

extern "C" {
    static axvm_ap_tramp_start: u8;
    static axvm_ap_tramp_end: u8;
}

// AT&T syntax: LLVM's Intel-syntax parser is unreliable for 16- and 32-bit
// far jumps and operand-size suffixes (see guests/realmode).
global_asm!(
    // ---- GDT (in .rodata; accessed bits preset so the CPU never writes it).
    ".pushsection .rodata.axvm_boot32, \"a\"",
    ".balign 16",
    "axvm_gdt:",
    "    .quad 0",
    "    .quad 0x00af9b000000ffff", // 0x08: 64-bit code, DPL 0
    "    .quad 0x00cf93000000ffff", // 0x10: flat data, 4 GiB
    "    .quad 0x00cf9b000000ffff", // 0x18: flat 32-bit code, 4 GiB
    "axvm_gdt_end:",
    ".balign 8",
    "axvm_gdtr:",
    "    .word axvm_gdt_end - axvm_gdt - 1",
    "    .quad axvm_gdt",
    ".popsection",
    // ---- What the BSP was handed, for the 64-bit side (in .data: not
    // cleared with .bss).
    ".pushsection .data.axvm_boot32, \"aw\"",
    ".balign 4",
    "axvm_boot32_magic: .long 0",
    "axvm_boot32_info: .long 0",
    ".popsection",
    // ---- Page tables: PML4, one PDPT, four page directories.
    ".pushsection .bss.axvm_boot32_pt, \"aw\", @nobits",
    ".balign 4096",
    "axvm_pml4: .zero 4096",
    "axvm_pdpt: .zero 4096",
    "axvm_pd: .zero 4096 * 4",
    ".popsection",
    // ---- 32-bit code.
    ".pushsection .text.boot32, \"ax\"",
    ".code32",
    ".global axvm_start32",
    ".type axvm_start32, @function",
    "axvm_start32:",
    "    cli",
    "    cld",
    "    movl %eax, %ebp",
    "    movl %ebx, %esi",
    "    lgdtl axvm_gdtr",
    "    movl ${data}, %eax",
    "    movl %eax, %ds",
    "    movl %eax, %es",
    "    movl %eax, %ss",
    "    movl %eax, %fs",
    "    movl %eax, %gs",
    "    ljmpl ${code32}, $1f",
    "1:",
    // Zero .bss (the page tables included), 4 bytes at a time.
    "    movl $__bss_start, %edi",
    "    movl $__bss_end, %ecx",
    "    subl %edi, %ecx",
    "    shrl $2, %ecx",
    "    xorl %eax, %eax",
    "    rep stosl",
    "    movl %ebp, axvm_boot32_magic",
    "    movl %esi, axvm_boot32_info",
    // PML4[0] -> PDPT; PDPT[0..4] -> the four page directories.
    "    movl $axvm_pdpt + 3, %eax",
    "    movl %eax, axvm_pml4",
    "    movl $axvm_pd + 3, %eax",
    "    movl %eax, axvm_pdpt",
    "    addl $0x1000, %eax",
    "    movl %eax, axvm_pdpt + 8",
    "    addl $0x1000, %eax",
    "    movl %eax, axvm_pdpt + 16",
    "    addl $0x1000, %eax",
    "    movl %eax, axvm_pdpt + 24",
    // PD entry i maps 2 MiB at i << 21 (the high halves stay zero).
    "    xorl %ecx, %ecx",
    "2:",
    "    movl %ecx, %eax",
    "    shll $21, %eax",
    "    orl ${pde}, %eax",
    "    cmpl ${first_mmio}, %ecx",
    "    jb 3f",
    "    orl ${uncached}, %eax",
    "3:",
    "    movl %eax, axvm_pd(,%ecx,8)",
    "    incl %ecx",
    "    cmpl ${pdes}, %ecx",
    "    jb 2b",
    "    movl $1, %ebp", // the BSP
    "    jmp axvm_enter_long_mode",
    ".size axvm_start32, . - axvm_start32",
    //
    // APs arrive here from the trampoline: protected mode, CS = 0x18 of this
    // GDT, the other segment registers still holding real-mode values.
    ".global axvm_ap_start32",
    ".type axvm_ap_start32, @function",
    "axvm_ap_start32:",
    "    movl ${data}, %eax",
    "    movl %eax, %ds",
    "    movl %eax, %es",
    "    movl %eax, %ss",
    "    movl %eax, %fs",
    "    movl %eax, %gs",
    "    xorl %ebp, %ebp", // not the BSP
    "axvm_enter_long_mode:",
    "    movl $axvm_pml4, %eax",
    "    movl %eax, %cr3",
    "    movl %cr4, %eax",
    "    orl ${pae}, %eax",
    "    movl %eax, %cr4",
    "    movl ${efer}, %ecx",
    "    rdmsr",
    "    orl ${lme}, %eax",
    "    wrmsr",
    "    movl %cr0, %eax",
    "    orl ${pg_pe}, %eax",
    "    movl %eax, %cr0",
    "    ljmpl ${code64}, $axvm_long_mode",
    ".size axvm_ap_start32, . - axvm_ap_start32",
    //
    // ---- The AP trampoline: copied to a page below 1 MiB, entered in real
    // mode at its first byte with CS = page >> 4.
    ".code16",
    ".global axvm_ap_tramp_start",
    "axvm_ap_tramp_start:",
    "    cli",
    "    cld",
    "    lgdtl %cs:(axvm_ap_tramp_gdtr - axvm_ap_tramp_start)",
    "    movl %cr0, %eax",
    "    orl $1, %eax",
    "    movl %eax, %cr0",
    "    ljmpl ${code32}, $axvm_ap_start32",
    ".balign 8",
    "axvm_ap_tramp_gdtr:",
    "    .word axvm_gdt_end - axvm_gdt - 1",
    "    .long axvm_gdt",
    ".global axvm_ap_tramp_end",
    "axvm_ap_tramp_end:",
    //
    // ---- 64-bit: a stack by APIC ID, then the guest's Rust code.
    ".code64",
    "axvm_long_mode:",
    "    movl ${data}, %eax",
    "    movl %eax, %ds",
    "    movl %eax, %es",
    "    movl %eax, %ss",
    "    xorl %eax, %eax",
    "    movl %eax, %fs",
    "    movl %eax, %gs",
    // Initial APIC ID = CPUID.1:EBX[31:24] (cpuid leaves EBP alone).
    "    movl $1, %eax",
    "    xorl %ecx, %ecx",
    "    cpuid",
    "    shrl $24, %ebx",
    "    cmpl ${max}, %ebx",
    "    jae 5f",
    "    leal 1(%rbx), %eax",
    "    shlq ${shift}, %rax",
    "    leaq {stacks}(%rip), %rsp",
    "    addq %rax, %rsp",
    "    testl %ebp, %ebp",
    "    jz 4f",
    "    movl axvm_boot32_magic(%rip), %edi",
    "    movl axvm_boot32_info(%rip), %esi",
    "    xorl %ebp, %ebp",
    "    call __axvm_boot32_bsp",
    "    jmp 5f",
    "4:",
    "    movl %ebx, %edi",
    "    xorl %ebp, %ebp",
    "    call __axvm_boot32_ap",
    "5:",
    "    cli",
    "    hlt",
    "    jmp 5b",
    ".popsection",
    data = const GDT_DATA,
    code32 = const GDT_CODE32,
    code64 = const GDT_CODE64,
    pde = const PDE_2M,
    uncached = const PDE_UNCACHED,
    first_mmio = const FIRST_MMIO_PDE,
    pdes = const PDES,
    pae = const CR4_PAE,
    efer = const MSR_EFER,
    lme = const EFER_LME,
    pg_pe = const CR0_PG_PE,
    max = const MAX_VCPUS,
    shift = const STACK_SHIFT,
    stacks = sym STACKS,
    options(att_syntax),
);

/// Copies the AP trampoline to `page` (4 KiB-aligned, below 1 MiB, RAM that
/// nothing else uses from now on) and returns the SIPI vector that starts an
/// AP there (`page >> 12`).
///
/// # Safety
/// `page` must be writable RAM that holds nothing still needed; the caller
/// must have entered through `axvm_start32`, whose page tables and GDT the
/// APs reuse.
pub unsafe fn install_ap_trampoline(page: usize) -> u8 {
    assert!(
        page.is_multiple_of(4096) && page < 0x10_0000,
        "SIPI page must be 4 KiB-aligned and below 1 MiB"
    );
    let start = core::ptr::addr_of!(axvm_ap_tramp_start);
    let len = core::ptr::addr_of!(axvm_ap_tramp_end) as usize - start as usize;
    // Byte by byte through volatile accesses, so no call to `memcpy` (which
    // a freestanding guest does not have) is generated.
    for offset in 0..len {
        let byte = core::ptr::read_volatile(start.add(offset));
        core::ptr::write_volatile((page + offset) as *mut u8, byte);
    }
    (page >> 12) as u8
}

/// Declares the Rust entry points of a guest entered through
/// `axvm_start32` (Multiboot v1 or PVH): `bsp(magic: u32, info: u32) -> !`,
/// called on the bootstrap processor with the EAX and EBX it was entered
/// with, and `ap(apic_id: u32) -> !`, called on each AP started through the
/// trampoline ([`install_ap_trampoline`]).
///
/// ```ignore
/// rt::entry32!(bsp, ap);
/// fn bsp(magic: u32, info: u32) -> ! { rt::exit(0) }
/// fn ap(apic_id: u32) -> ! { rt::cpu::halt_forever() }
/// ```
#[macro_export]
macro_rules! entry32 {
    ($bsp:path, $ap:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn __axvm_boot32_bsp(magic: u32, info: u32) -> ! {
            let bsp: fn(u32, u32) -> ! = $bsp;
            bsp(magic, info)
        }

        #[unsafe(no_mangle)]
        extern "C" fn __axvm_boot32_ap(apic_id: u32) -> ! {
            let ap: fn(u32) -> ! = $ap;
            ap(apic_id)
        }
    };
}
