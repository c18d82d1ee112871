//! `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp`, which the compiler
//! calls for copies, fills and comparisons of byte ranges.
//!
//! On `x86_64-unknown-linux-gnu` they come from libc, which the guests do
//! not link (the precompiled `compiler_builtins` only provides them for
//! targets without a libc). A guest that needs none of them, as most do,
//! links none: they are only pulled in when referenced.
//!
//! Written as x86 string instructions in assembly, not as Rust loops: the
//! compiler may turn a byte loop back into a call of the very function it
//! implements, and assembly keeps SSE out as well. KVM's instruction emulator
//! handles `rep movsb`/`stosb`/`cmpsb`, so they also run on nested hosts.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dest`; the ranges must not overlap.
///
/// # Safety
/// Both ranges must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; DF is clear (the ABI guarantees it).
    unsafe {
        asm!("rep movsb", inout("rdi") dest => _, inout("rsi") src => _, inout("rcx") n => _,
             options(nostack, preserves_flags));
    }
    dest
}

/// Copies `n` bytes from `src` to `dest`; the ranges may overlap.
///
/// # Safety
/// Both ranges must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // dest is below src, or past its end: a forward copy is safe.
        // SAFETY: as for memcpy.
        return unsafe { memcpy(dest, src, n) };
    }
    // Backwards, from the last byte, with DF set and cleared again.
    // SAFETY: the caller's contract; n > 0 here (dest - src < n).
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rdi") dest.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
             inout("rcx") n => _, options(nostack));
    }
    dest
}

/// Fills `n` bytes at `dest` with the low byte of `c`.
///
/// # Safety
/// The range must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; DF is clear.
    unsafe {
        asm!("rep stosb", inout("rdi") dest => _, inout("rcx") n => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dest
}

/// Compares `n` bytes: negative, zero or positive as the first differing
/// byte of `a` is below, equal to or above that of `b` (unsigned).
///
/// # Safety
/// Both ranges must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    let left: *const u8;
    let right: *const u8;
    // `repe cmpsb` stops after the first differing byte (or after n), with
    // RSI/RDI one past it.
    // SAFETY: the caller's contract; DF is clear.
    unsafe {
        asm!("repe cmpsb", inout("rsi") a => left, inout("rdi") b => right,
             inout("rcx") n => _, options(nostack, readonly));
        i32::from(*left.sub(1)) - i32::from(*right.sub(1))
    }
}

/// Like [`memcmp`], but only zero or non-zero matters.
///
/// # Safety
/// Both ranges must be valid for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: the caller's contract.
    unsafe { memcmp(a, b, n) }
}
