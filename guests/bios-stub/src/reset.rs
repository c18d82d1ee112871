//! QEMU's stand-in for the ArceOS hypervisor's vCPU reset, for `scripts/qemu-compat.sh`:
//! a 64 KiB `-bios` image whose reset vector (0xfffffff0, its last 16 bytes) far-jumps to
//! 0000:8000, so QEMU's CPU reaches the BIOS stub (loaded at 0x8000 by `-device loader`)
//! in real mode with CS selector and base 0 and IP 0x8000, the state axvisor and axvm start
//! it in. No firmware runs: like under the hypervisor, the stub is the first code.
#![no_std]
#![no_main]

use core::arch::global_asm;

global_asm!(
    ".code16",
    ".section .text.reset, \"ax\"",
    ".global reset_vector",
    "reset_vector:",
    "    cli",
    "    ljmpw $0x0000, $0x8000",
    ".code64",
    options(att_syntax),
);

/// Required by `no_std`; unreachable, since no Rust code runs in this image.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
