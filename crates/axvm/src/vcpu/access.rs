//! How a read's value reaches the guest's registers, exactly as x86 hardware does it.
//!
//! Backends that write guest registers themselves (a type-1 hypervisor decoding the trapped
//! instruction) use these functions; a backend whose kernel completes the instruction (KVM)
//! hands over the raw bytes and the kernel applies the same rules. Getting them wrong is a
//! classic VMM bug: writing a whole RAX for an 8-bit `IN AL, DX` corrupts the guest's AH.

use crate::AccessWidth;

/// RAX after a port read (`IN`) of `width` returned `value`.
///
/// An 8- or 16-bit `IN` replaces only AL or AX and keeps the rest of RAX; a 32-bit `IN`
/// writes EAX, which zero-extends into RAX like every 32-bit register write in long mode.
///
/// ```
/// use axvm::{vcpu::merge_port_read, AccessWidth};
/// let rax = 0xdead_beef_cafe_f00d;
/// assert_eq!(merge_port_read(rax, 0x86, AccessWidth::Byte), 0xdead_beef_cafe_f086);
/// assert_eq!(merge_port_read(rax, 0x8086, AccessWidth::Word), 0xdead_beef_cafe_8086);
/// assert_eq!(merge_port_read(rax, 0x1237_8086, AccessWidth::Dword), 0x1237_8086);
/// ```
pub const fn merge_port_read(old_rax: u64, value: u64, width: AccessWidth) -> u64 {
    match width {
        AccessWidth::Byte | AccessWidth::Word => (old_rax & !width.mask()) | width.truncate(value),
        AccessWidth::Dword | AccessWidth::Qword => width.truncate(value),
    }
}

/// How a load instruction puts a narrower memory value into a wider register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadExtension {
    /// `MOV r8/r16, m`: only the low bytes of the register change.
    Keep,
    /// `MOVZX`, and any 32-bit destination: the upper bits become zero.
    Zero,
    /// `MOVSX`/`MOVSXD`: the upper bits copy the value's sign bit.
    Sign,
}

/// The destination register's value after an MMIO load of `width` returned `value`.
///
/// ```
/// use axvm::{vcpu::{extend_mmio_read, LoadExtension}, AccessWidth};
/// assert_eq!(extend_mmio_read(0x1111, 0x80, AccessWidth::Byte, LoadExtension::Sign), u64::MAX - 0x7f);
/// assert_eq!(extend_mmio_read(0x1111, 0x80, AccessWidth::Byte, LoadExtension::Zero), 0x80);
/// assert_eq!(extend_mmio_read(0x1111, 0x80, AccessWidth::Byte, LoadExtension::Keep), 0x1180);
/// ```
pub const fn extend_mmio_read(
    old_reg: u64,
    value: u64,
    width: AccessWidth,
    extension: LoadExtension,
) -> u64 {
    let value = width.truncate(value);
    match extension {
        LoadExtension::Keep => (old_reg & !width.mask()) | value,
        LoadExtension::Zero => value,
        LoadExtension::Sign => {
            let shift = 64 - 8 * width.size() as u32;
            (((value << shift) as i64) >> shift) as u64
        }
    }
}

/// EDX and EAX after `RDMSR` returned `value`: the high half in EDX, the low half in EAX,
/// each zero-extended into its 64-bit register.
///
/// ```
/// use axvm::vcpu::split_msr_value;
/// assert_eq!(split_msr_value(0x1_4158_564d), (0x1, 0x4158_564d));
/// ```
pub const fn split_msr_value(value: u64) -> (u64, u64) {
    (value >> 32, value & 0xffff_ffff)
}
