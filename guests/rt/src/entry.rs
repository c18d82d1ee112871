//! The `_start` stub every vCPU enters, and the [`entry!`](crate::entry)
//! macro that names the guest's Rust `main`.
//!
//! Entry contract (what the VMM provides): 64-bit long mode at CPL0,
//! interrupts off, paging on with the low 4 GiB identity-mapped, fresh guest
//! RAM zeroed (so `.bss` is zero), and *every* vCPU — BSP and APs alike —
//! starting at the ELF entry with no usable stack. The stub therefore derives
//! a per-vCPU stack from the APIC ID alone, touching no shared state.

use core::arch::global_asm;

/// vCPUs with an APIC ID at or above this have no stack and halt at once.
pub const MAX_VCPUS: usize = 8;
/// log2 of each vCPU's stack size (16 KiB).
pub(crate) const STACK_SHIFT: usize = 14;
const STACK_SIZE: usize = 1 << STACK_SHIFT;

/// The per-vCPU stacks, in `.bss`. 16-byte alignment makes every stack top
/// meet the SysV ABI's alignment at the `call` into Rust.
#[repr(C, align(16))]
pub(crate) struct Stacks([[u8; STACK_SIZE]; MAX_VCPUS]);

/// Also used by the 32-bit entry ([`crate::boot32`]). Its own section name
/// (still under `.bss.`, so `link64.ld` keeps it in `.bss`) lets a linker
/// script keep the stacks out of the range that the 32-bit entry zeroes:
/// stacks need no clearing.
#[unsafe(link_section = ".bss.axvm_stacks")]
pub(crate) static mut STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_VCPUS]);

extern "C" {
    /// Defined by the guest binary through [`entry!`](crate::entry).
    fn __axvm_guest_main(vcpu_id: u32) -> !;
}

global_asm!(
    // Placed first in .text by link64.ld, so `_start` is the image's load
    // address (0x200000) as well as the ELF entry.
    ".section .text.entry, \"ax\"",
    ".global _start",
    ".type _start, @function",
    "_start:",
    "    cli",
    "    cld",
    // Initial APIC ID = CPUID.1:EBX[31:24].
    "    mov eax, 1",
    "    xor ecx, ecx",
    "    cpuid",
    "    shr ebx, 24",
    "    cmp ebx, {max}",
    "    jae 2f",
    // rsp = &STACKS + (id + 1) * STACK_SIZE: the top of this vCPU's stack.
    "    mov edi, ebx",
    "    lea eax, [rbx + 1]",
    "    shl rax, {shift}",
    "    lea rsp, [rip + {stacks}]",
    "    add rsp, rax",
    "    xor ebp, ebp",
    "    call {main}",
    "2:",
    "    cli",
    "    hlt",
    "    jmp 2b",
    ".size _start, . - _start",
    max = const MAX_VCPUS,
    shift = const STACK_SHIFT,
    stacks = sym STACKS,
    main = sym __axvm_guest_main,
);

/// Declares the guest's entry function, `fn(vcpu_id: u32) -> !`, which every
/// vCPU runs on its own stack once `_start` has set one up.
///
/// ```ignore
/// rt::entry!(main);
/// fn main(vcpu_id: u32) -> ! { rt::exit(0) }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn __axvm_guest_main(vcpu_id: u32) -> ! {
            let main: fn(u32) -> ! = $main;
            main(vcpu_id)
        }
    };
}
