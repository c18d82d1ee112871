//! The entry stubs every vCPU starts in, the exception vector table, and the
//! [`entry!`](crate::entry) macro that names the guest's Rust `main`.
//!
//! Start state (the arm64 contract, also what QEMU `-M virt -kernel` gives):
//! EL1, MMU and caches off, interrupts masked, no stack; the boot vCPU at
//! `_start` with x0 = the device tree's address; a vCPU started by PSCI CPU_ON
//! at the entry the call named with x0 = the call's context. The stubs touch
//! no shared state before they have a stack: each vCPU derives its own from
//! its MPIDR affinity.

use core::arch::global_asm;

/// vCPUs whose index (Aff0 + 16 × Aff1, vCPU *i* for KVM and QEMU virt) is at
/// or above this have no stack and park in `wfi` at once.
pub const MAX_VCPUS: usize = 8;
/// log2 of each vCPU's stack size (16 KiB).
const STACK_SHIFT: usize = 14;
const STACK_SIZE: usize = 1 << STACK_SHIFT;

/// The per-vCPU stacks, in their own NOLOAD section that `_start` does not
/// zero (`rt/link.ld`).
#[repr(C, align(16))]
struct Stacks([[u8; STACK_SIZE]; MAX_VCPUS]);

#[unsafe(link_section = ".axvm_stacks")]
static mut STACKS: Stacks = Stacks([[0; STACK_SIZE]; MAX_VCPUS]);

/// What a vCPU started by [`crate::psci::cpu_on`] runs, per vCPU index: the
/// secondary stub cannot take a Rust function in a register, as PSCI passes
/// only one value (the context) to the new vCPU.
pub(crate) static mut SECONDARY_MAIN: [usize; MAX_VCPUS] = [0; MAX_VCPUS];

/// The Image header's text_offset: the link address 0x4008_0000 less RAM's
/// 2 MiB-aligned base 0x4000_0000.
const IMAGE_TEXT_OFFSET: u64 = 0x8_0000;

extern "C" {
    /// Defined by the guest binary through [`entry!`](crate::entry).
    fn __axvm_guest_main(dtb: usize) -> !;
}

global_asm!(
    // First in .text (rt/link.ld): `_start` is the load address and the ELF entry.
    ".section .text.entry, \"ax\"",
    ".global _start",
    ".type _start, %function",
    "_start:",
    // A Linux arm64 Image header (Documentation/arch/arm64/booting.rst), so that the flat
    // binary of this ELF is also an `Image` a Linux loader places at RAM base + text_offset
    // = 0x40080000, the link address (QEMU does, and then passes x0 = the DTB): code0
    // branches over the header, text_offset, image_size (file and .bss and stacks), flags 0
    // (little-endian, 2 MiB-aligned base near the start of RAM), the magic.
    "    b axvm_boot",
    "    .word 0",
    "    .quad {text_offset}",
    "    .quad __axvm_image_size",
    "    .quad 0",
    "    .quad 0, 0, 0",
    "    .ascii \"ARM\\x64\"",
    "    .word 0",
    "axvm_boot:",
    "    mov x19, x0",
    "    bl axvm_cpu_setup",
    // Zero .bss (the stacks are outside it), 16 bytes at a time: rt/link.ld aligns both ends.
    "    adrp x9, __bss_start",
    "    add x9, x9, :lo12:__bss_start",
    "    adrp x10, __bss_end",
    "    add x10, x10, :lo12:__bss_end",
    "1:  cmp x9, x10",
    "    b.hs 2f",
    "    stp xzr, xzr, [x9], #16",
    "    b 1b",
    "2:  mov x0, x19",
    "    bl {main}",
    "    b axvm_park",
    ".size _start, . - _start",
    "",
    // The entry a PSCI CPU_ON names (psci::cpu_on): x0 = the call's context.
    ".section .text.axvm_secondary, \"ax\"",
    ".global axvm_secondary_start",
    ".type axvm_secondary_start, %function",
    "axvm_secondary_start:",
    "    mov x19, x0",
    "    bl axvm_cpu_setup",
    "    adrp x9, {secondary}",
    "    add x9, x9, :lo12:{secondary}",
    "    ldr x9, [x9, x10, lsl #3]",
    "    cbz x9, axvm_park",
    "    mov x0, x19",
    "    blr x9",
    "    b axvm_park",
    ".size axvm_secondary_start, . - axvm_secondary_start",
    "",
    // Per-vCPU set-up without a stack (x9-x12 and x30 only): FP/SIMD on (CPACR_EL1.FPEN,
    // compiled code may use the vector registers), the vector table, and SP = the top of
    // this vCPU's stack. Returns the vCPU index in x10; parks a vCPU it has no stack for.
    "axvm_cpu_setup:",
    "    mov x9, #(3 << 20)",
    "    msr cpacr_el1, x9",
    "    adrp x9, axvm_vectors",
    "    add x9, x9, :lo12:axvm_vectors",
    "    msr vbar_el1, x9",
    "    isb",
    "    mrs x9, mpidr_el1",
    "    and x10, x9, #0xff",
    "    ubfx x11, x9, #8, #8",
    "    add x10, x10, x11, lsl #4",
    "    cmp x10, #{max}",
    "    b.hs axvm_park",
    "    add x11, x10, #1",
    "    lsl x11, x11, #{shift}",
    "    adrp x12, {stacks}",
    "    add x12, x12, :lo12:{stacks}",
    "    add x12, x12, x11",
    "    mov sp, x12",
    "    ret",
    "",
    ".global axvm_park",
    "axvm_park:",
    "    wfi",
    "    b axvm_park",
    main = sym __axvm_guest_main,
    secondary = sym SECONDARY_MAIN,
    stacks = sym STACKS,
    max = const MAX_VCPUS,
    shift = const STACK_SHIFT,
    text_offset = const IMAGE_TEXT_OFFSET,
);

/// Declares the guest's entry function, `fn(dtb: usize) -> !`, which the boot
/// vCPU runs on its own stack with `.bss` zeroed; `dtb` is the x0 it started
/// with (the device tree's guest-physical address).
///
/// ```ignore
/// rt::entry!(main);
/// fn main(dtb: usize) -> ! { rt::exit(0) }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "C" fn __axvm_guest_main(dtb: usize) -> ! {
            let main: fn(usize) -> ! = $main;
            main(dtb)
        }
    };
}
