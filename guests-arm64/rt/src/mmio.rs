//! MMIO accesses of each width, each one load or store instruction with a
//! plain base-register address, so that a hypervisor sees a data abort with a
//! valid syndrome (ESR_EL2.ISV) it can emulate: no pair, no writeback.
//!
//! # Safety
//!
//! Every function takes a guest-physical address (the MMU is off): the caller
//! makes sure it is a device register, or memory, that may be accessed so.

use core::arch::asm;

macro_rules! mmio_write {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $insn:literal, $reg:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// See the module doc.
        pub unsafe fn $name(addr: usize, value: $ty) {
            // SAFETY: the caller vouches for the address.
            unsafe {
                asm!(concat!($insn, " {v:", $reg, "}, [{a}]"), a = in(reg) addr, v = in(reg) value,
                     options(nostack, preserves_flags));
            }
        }
    };
}

macro_rules! mmio_read {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $insn:literal, $reg:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// See the module doc.
        pub unsafe fn $name(addr: usize) -> $ty {
            let value: u64;
            // SAFETY: the caller vouches for the address.
            unsafe {
                asm!(concat!($insn, " {v:", $reg, "}, [{a}]"), a = in(reg) addr, v = out(reg) value,
                     options(nostack, preserves_flags));
            }
            value as $ty
        }
    };
}

mmio_write!(/// One-byte store (`strb`).
    write8, u8, "strb", "w");
mmio_write!(/// Two-byte store (`strh`).
    write16, u16, "strh", "w");
mmio_write!(/// Four-byte store (`str w`).
    write32, u32, "str", "w");
mmio_write!(/// Eight-byte store (`str x`).
    write64, u64, "str", "x");
mmio_read!(/// One-byte load, zero-extended (`ldrb`).
    read8, u8, "ldrb", "w");
mmio_read!(/// Two-byte load, zero-extended (`ldrh`).
    read16, u16, "ldrh", "w");
mmio_read!(/// Four-byte load, zero-extended (`ldr w`).
    read32, u32, "ldr", "w");
mmio_read!(/// Eight-byte load (`ldr x`).
    read64, u64, "ldr", "x");
mmio_read!(/// One-byte load sign-extended to 64 bits (`ldrsb x`): the hypervisor must
    /// sign-extend (ESR_EL2.SSE) into the whole register.
    read8_signed, i64, "ldrsb", "x");
mmio_read!(/// Two-byte load sign-extended to 64 bits (`ldrsh x`).
    read16_signed, i64, "ldrsh", "x");
mmio_read!(/// Four-byte load sign-extended to 64 bits (`ldrsw x`).
    read32_signed, i64, "ldrsw", "x");
