//! axvm's exit-loop guest: a raw 16-bit image that writes COM1's scratch register (port
//! 0x3ff) 20 000 times, one VM exit per write, then writes status 0 to the exit port
//! (0xf4): 20 001 exits in all, and nothing printed.
//!
//! It is the workload of every exit round-trip figure in `docs/PERFORMANCE.md`: the
//! `exits` benchmark of `axvm-kvm` (which patches the loop count, see below),
//! `scripts/svm-bench.sh` (the type-1 SVM hypervisor beside axvm on KVM) and the test that
//! counts its exits. One image for all, so the figures are of the same instructions.
//!
//! Contract: the VMM loads this flat image at 0x8000 and starts the vCPU in real mode with
//! CS base 0 and IP 0x8000, as for the `realmode` guest. It uses no memory but its own
//! code, no stack and no segment register; the scratch register is one the UART model just
//! stores, so each exit is a round trip with almost no device work.
//!
//! The layout is fixed, and `axvm-guests`' image test checks it byte for byte:
//!
//! ```text
//!  0: b9 20 4e    mov  $20000, %cx    # exits to make; the 16-bit count at offset 1
//!  3: ba ff 03    mov  $0x3ff, %dx    # COM1 scratch register; the port at offset 4
//!  6: 30 c0       xor  %al, %al
//!  8: ee       1: out  %al, (%dx)     # the measured exit
//!  9: e2 fd       loop 1b             # --cx, jump back while cx != 0
//!  b: b0 00       mov  $0, %al
//!  d: e6 f4       out  %al, $0xf4     # exit port: stop the VM with status 0
//!  f: f4          hlt                 # never reached
//! ```
//!
//! The `exits` benchmark rewrites the count (and, for its console case, the port and the
//! byte) at those offsets, so a change here must keep them.
#![no_std]
#![no_main]

use core::arch::global_asm;

// AT&T syntax, as in the `realmode` guest: in `.code16` the suffixes say the operand size
// meant (`movw`, `outb`), which LLVM's Intel-syntax parser may otherwise widen.
global_asm!(
    ".code16",
    ".section .text.boot, \"ax\"",
    ".global _start",
    "_start:",
    "    movw $20000, %cx",
    "    movw $0x3ff, %dx",
    "    xorb %al, %al",
    "2:",
    "    outb %al, %dx",
    "    loop 2b",
    "    movb $0, %al",
    "    outb %al, $0xf4",
    "    hlt",
    // Back to 64-bit for whatever the compiler emits after this block.
    ".code64",
    options(att_syntax),
);

/// Required by `no_std`; unreachable, since no Rust code runs in this guest.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
