//! The ids `KVM_{GET,SET}_ONE_REG` take for the arm64 core registers.
//!
//! A core register's id is its offset in the kernel's `struct kvm_regs`, in 32-bit words,
//! tagged as an arm64 core register of 64 bits.

use std::mem::offset_of;

use kvm_bindings::{kvm_regs, user_pt_regs, KVM_REG_ARM64, KVM_REG_ARM_CORE, KVM_REG_SIZE_U64};

/// The id of a 64-bit core register at byte `offset` of `kvm_regs`.
const fn core_reg(offset: usize) -> u64 {
    KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE as u64 | (offset / 4) as u64
}

/// General-purpose register `x{n}` (n < 31).
pub(crate) const fn x(n: usize) -> u64 {
    core_reg(offset_of!(kvm_regs, regs) + offset_of!(user_pt_regs, regs) + n * 8)
}

/// The program counter.
pub(crate) const PC: u64 = core_reg(offset_of!(kvm_regs, regs) + offset_of!(user_pt_regs, pc));

/// PSTATE (the guest's SPSR view: exception level, DAIF masks, condition flags).
pub(crate) const PSTATE: u64 =
    core_reg(offset_of!(kvm_regs, regs) + offset_of!(user_pt_regs, pstate));

/// The stack pointer of EL0 (`SP_EL0`; `user_pt_regs.sp`).
pub(crate) const SP_EL0: u64 = core_reg(offset_of!(kvm_regs, regs) + offset_of!(user_pt_regs, sp));

/// The stack pointer of EL1.
pub(crate) const SP_EL1: u64 = core_reg(offset_of!(kvm_regs, sp_el1));

/// `MPIDR_EL1`, a system register: op0 3, op1 0, CRn 0, CRm 0, op2 5.
pub(crate) const MPIDR_EL1: u64 = sys_reg(3, 0, 0, 0, 5);

/// `SCTLR_EL1`: op0 3, op1 0, CRn 1, CRm 0, op2 0; bit 0 (M) is the stage-1 MMU.
pub(crate) const SCTLR_EL1: u64 = sys_reg(3, 0, 1, 0, 0);

/// The id of system register (op0, op1, CRn, CRm, op2), 64 bits.
const fn sys_reg(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64) -> u64 {
    KVM_REG_ARM64
        | KVM_REG_SIZE_U64
        | kvm_bindings::KVM_REG_ARM64_SYSREG as u64
        | (op0 << 14)
        | (op1 << 11)
        | (crn << 7)
        | (crm << 3)
        | op2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_the_kernel_layout() {
        // regs[0] is word 0, pc word 64 (after 31 registers and sp), pstate word 66.
        assert_eq!(x(0) & 0xffff, 0);
        assert_eq!(x(1) & 0xffff, 2);
        assert_eq!(PC & 0xffff, 64);
        assert_eq!(PSTATE & 0xffff, 66);
        assert_eq!(SP_EL1 & 0xffff, 68);
        assert_eq!(MPIDR_EL1 & 0xffff, 0xc005);
    }
}
