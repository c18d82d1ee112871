//! Port I/O exits of each width, through an emulated PCI configuration
//! mechanism #1 (0xcf8 address, 0xcfc data) whose device 0:0.0 is an i440FX
//! host bridge (vendor 0x8086, device 0x1237, as in QEMU).

use core::arch::asm;

use rt::io::{inb, inl, inw, outl};
use rt::{check_eq, println};

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;
/// Enable bit | bus 0 | device 0 | function 0 | register 0 (IDs).
const HOST_BRIDGE_ID_REG: u32 = 0x8000_0000;
/// Device ID << 16 | vendor ID of the i440FX host bridge.
const I440FX_ID: u32 = 0x1237_8086;
/// Fills RAX before a narrow `in`, to see which bits the VMM replaces.
const RAX_PATTERN: u64 = 0xdead_beef_cafe_f00d;

/// Runs the checks; prints a line ending in `OK` or exits with a FAIL.
pub fn check() {
    // SAFETY: PCI configuration reads of the host bridge's ID register have
    // no side effects.
    unsafe {
        outl(CONFIG_ADDRESS, HOST_BRIDGE_ID_REG);
        check_eq("inl(0xcfc)", I440FX_ID, inl(CONFIG_DATA), 20);
        check_eq("inw(0xcfc)", 0x8086, inw(CONFIG_DATA), 21);
        check_eq("inw(0xcfe)", 0x1237, inw(CONFIG_DATA + 2), 22);
        check_eq("inb(0xcfc)", 0x86, inb(CONFIG_DATA), 23);
        check_eq("inl(0xcf8)", HOST_BRIDGE_ID_REG, inl(CONFIG_ADDRESS), 24);
    }
    check_rax_merging();
    println!("axvm demo guest: port I/O OK");
}

/// On real hardware `in al`/`in ax` replace only AL/AX and keep the rest of
/// RAX, while `in eax` zero-extends into RAX like any 32-bit register write.
/// A VMM that writes the whole of RAX on an I/O exit breaks this, so test it
/// with hand-written asm (the compiler would otherwise not care about the
/// upper bits).
fn check_rax_merging() {
    let (after_inb, after_inw, after_inl): (u64, u64, u64);
    // SAFETY: as above, reads of the host bridge's ID register.
    unsafe {
        asm!("in al, dx", inout("rax") RAX_PATTERN => after_inb, in("dx") CONFIG_DATA,
            options(nomem, nostack, preserves_flags));
        asm!("in ax, dx", inout("rax") RAX_PATTERN => after_inw, in("dx") CONFIG_DATA,
            options(nomem, nostack, preserves_flags));
        asm!("in eax, dx", inout("rax") RAX_PATTERN => after_inl, in("dx") CONFIG_DATA,
            options(nomem, nostack, preserves_flags));
    }
    check_eq(
        "RAX after `in al, dx`",
        0xdead_beef_cafe_f086,
        after_inb,
        25,
    );
    check_eq(
        "RAX after `in ax, dx`",
        0xdead_beef_cafe_8086,
        after_inw,
        26,
    );
    check_eq(
        "RAX after `in eax, dx`",
        0x0000_0000_1237_8086,
        after_inl,
        27,
    );
}
