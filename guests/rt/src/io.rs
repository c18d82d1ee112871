//! Port I/O and MMIO accessors.
//!
//! Each function compiles to exactly one access of the named width, which is
//! what the VMM's I/O and MMIO exit handling is tested with.

use core::arch::asm;

/// Reads a byte from an I/O port (`in al, dx`).
///
/// # Safety
/// Port I/O can have arbitrary device side effects.
#[inline(always)]
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags));
    value
}

/// Reads a 16-bit word from an I/O port (`in ax, dx`).
///
/// # Safety
/// Port I/O can have arbitrary device side effects.
#[inline(always)]
pub unsafe fn inw(port: u16) -> u16 {
    let value: u16;
    asm!("in ax, dx", out("ax") value, in("dx") port, options(nomem, nostack, preserves_flags));
    value
}

/// Reads a 32-bit doubleword from an I/O port (`in eax, dx`).
///
/// # Safety
/// Port I/O can have arbitrary device side effects.
#[inline(always)]
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    asm!("in eax, dx", out("eax") value, in("dx") port, options(nomem, nostack, preserves_flags));
    value
}

/// Writes a byte to an I/O port (`out dx, al`).
///
/// # Safety
/// Port I/O can have arbitrary device side effects.
#[inline(always)]
pub unsafe fn outb(port: u16, value: u8) {
    asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags));
}

/// Writes a 16-bit word to an I/O port (`out dx, ax`).
///
/// # Safety
/// Port I/O can have arbitrary device side effects.
#[inline(always)]
pub unsafe fn outw(port: u16, value: u16) {
    asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags));
}

/// Writes a 32-bit doubleword to an I/O port (`out dx, eax`).
///
/// # Safety
/// Port I/O can have arbitrary device side effects.
#[inline(always)]
pub unsafe fn outl(port: u16, value: u32) {
    asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags));
}

/// Volatile MMIO read of a `u8`, `u16`, `u32` or `u64` at a physical
/// (= virtual, identity-mapped) address.
///
/// # Safety
/// `addr` must be mapped and suitably aligned for `T`.
#[inline(always)]
pub unsafe fn mmio_read<T: Mmio>(addr: usize) -> T {
    core::ptr::read_volatile(addr as *const T)
}

/// Volatile MMIO write of a `u8`, `u16`, `u32` or `u64`.
///
/// # Safety
/// `addr` must be mapped and suitably aligned for `T`.
#[inline(always)]
pub unsafe fn mmio_write<T: Mmio>(addr: usize, value: T) {
    core::ptr::write_volatile(addr as *mut T, value)
}

/// The integer widths a single `mov` can move to or from MMIO.
///
/// Restricting [`mmio_read`]/[`mmio_write`] to these keeps every access a
/// single instruction of a known width.
pub trait Mmio: Copy + private::Sealed {}

impl Mmio for u8 {}
impl Mmio for u16 {}
impl Mmio for u32 {}
impl Mmio for u64 {}

mod private {
    pub trait Sealed {}
    impl Sealed for u8 {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
    impl Sealed for u64 {}
}
