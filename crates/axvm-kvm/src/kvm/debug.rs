//! Guest debugging on a KVM vCPU: what a debugger arms (`KVM_SET_GUEST_DEBUG`), why the
//! vCPU stopped for it, and its registers taken and put back while it is stopped.
//!
//! Software breakpoints are `int3` bytes the debugger writes into guest memory. Hardware
//! KVM reports them as `KVM_EXIT_DEBUG` with exception 3 (`KVM_GUESTDBG_USE_SW_BP`);
//! kvm_pvm, which emulates CPL0 code, fails to emulate `int3` outside real mode and reports
//! an emulation failure instead, so an emulation failure at one of the debugger's
//! breakpoints is taken for a hit too. Single steps and DR0-DR3 breakpoints and
//! watchpoints come as `KVM_EXIT_DEBUG` with exception 1 on both, DR6 saying which.

use kvm_bindings::{
    kvm_fpu, kvm_guest_debug, kvm_regs, kvm_sregs, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_SINGLESTEP,
    KVM_GUESTDBG_USE_HW_BP, KVM_GUESTDBG_USE_SW_BP,
};

use super::KvmVCpu;
use crate::error::KvmError;

/// What a debugger wants of a vCPU while it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestDebug {
    /// Debugging is on: breakpoints are reported rather than delivered to the guest.
    pub enabled: bool,
    /// Stop after one instruction.
    pub single_step: bool,
    /// Linear addresses holding an `int3` the debugger wrote.
    pub sw_breakpoints: Vec<u64>,
    /// DR0-DR3: linear addresses of hardware breakpoints and watchpoints.
    pub debugreg: [u64; 4],
    /// DR7: which of DR0-DR3 are on, and for what (execute, write, access; length).
    pub dr7: u64,
    /// Ports whose writes stop the vCPU (after the write is done).
    pub watched_ports: Vec<u16>,
}

/// Why a vCPU stopped for its debugger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DebugStop {
    /// It reached one of the debugger's `int3` bytes; RIP is at the breakpoint.
    SoftwareBreakpoint,
    /// An `int3` the debugger did not write (hardware KVM only).
    GuestBreakpoint,
    /// It ran one instruction.
    Step,
    /// DR0-DR3 slot `slot` matched.
    HardwareSlot {
        /// 0-3.
        slot: usize,
    },
    /// It wrote `data` to a watched `port`.
    PortWrite {
        /// The port.
        port: u16,
        /// The value written.
        data: u64,
    },
}

/// DR6.BS: the trap was a single step.
const DR6_BS: u64 = 1 << 14;

impl DebugStop {
    /// The stop a `KVM_EXIT_DEBUG` with `exception` and `dr6` means.
    pub(crate) fn from_exit(exception: u32, dr6: u64) -> Self {
        if exception == 3 {
            return Self::GuestBreakpoint;
        }
        match (0..4).find(|slot| dr6 & (1 << slot) != 0) {
            Some(slot) if dr6 & DR6_BS == 0 => Self::HardwareSlot { slot },
            _ => Self::Step,
        }
    }
}

/// A stopped vCPU's registers, as the debugger sees and changes them.
#[derive(Clone, Copy, Debug, Default)]
pub struct VcpuRegisters {
    /// General-purpose registers, RIP and RFLAGS.
    pub regs: kvm_regs,
    /// Segments, control registers, EFER.
    pub sregs: kvm_sregs,
    /// x87 and SSE state.
    pub fpu: kvm_fpu,
}

impl KvmVCpu {
    /// Arms `debug` on this vCPU (`KVM_SET_GUEST_DEBUG`); a default `GuestDebug` disarms.
    pub fn set_guest_debug(&mut self, debug: &GuestDebug) -> Result<(), KvmError> {
        let mut arg = kvm_guest_debug::default();
        if debug.enabled {
            arg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_SW_BP;
            if debug.dr7 != 0 {
                arg.control |= KVM_GUESTDBG_USE_HW_BP;
                arg.arch.debugreg[..4].copy_from_slice(&debug.debugreg);
                arg.arch.debugreg[7] = debug.dr7;
            }
            if debug.single_step {
                arg.control |= KVM_GUESTDBG_SINGLESTEP;
            }
        }
        self.fd
            .set_guest_debug(&arg)
            .map_err(KvmError::ioctl("KVM_SET_GUEST_DEBUG"))?;
        self.debug = debug.clone();
        Ok(())
    }

    /// Why the vCPU last stopped for its debugger, once.
    pub fn take_debug_stop(&mut self) -> Option<DebugStop> {
        self.debug_stop.take()
    }

    /// Reads the registers a debugger shows: before the first run, those it starts with.
    pub fn debug_registers(&mut self) -> Result<VcpuRegisters, KvmError> {
        if !self.boot_state_applied {
            self.apply_boot_state()?;
        }
        Ok(VcpuRegisters {
            regs: self
                .fd
                .get_regs()
                .map_err(KvmError::ioctl("KVM_GET_REGS"))?,
            sregs: self
                .fd
                .get_sregs()
                .map_err(KvmError::ioctl("KVM_GET_SREGS"))?,
            fpu: self.fd.get_fpu().map_err(KvmError::ioctl("KVM_GET_FPU"))?,
        })
    }

    /// Writes back registers a debugger changed.
    pub fn set_debug_registers(&mut self, registers: &VcpuRegisters) -> Result<(), KvmError> {
        self.fd
            .set_sregs(&registers.sregs)
            .map_err(KvmError::ioctl("KVM_SET_SREGS"))?;
        self.fd
            .set_regs(&registers.regs)
            .map_err(KvmError::ioctl("KVM_SET_REGS"))?;
        self.fd
            .set_fpu(&registers.fpu)
            .map_err(KvmError::ioctl("KVM_SET_FPU"))
    }

    /// Whether the vCPU sits on one of the debugger's `int3` bytes: what an emulation
    /// failure there means on kvm_pvm.
    pub(super) fn at_debugger_breakpoint(&self) -> bool {
        if !self.debug.enabled || self.debug.sw_breakpoints.is_empty() {
            return false;
        }
        let (Ok(regs), Ok(sregs)) = (self.fd.get_regs(), self.fd.get_sregs()) else {
            return false;
        };
        let linear = sregs.cs.base.wrapping_add(regs.rip);
        self.debug.sw_breakpoints.contains(&linear)
    }

    /// Whether a write to `port` stops the vCPU.
    pub(super) fn port_is_watched(&self, port: u16) -> bool {
        self.debug.enabled && self.debug.watched_ports.contains(&port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_exits_are_told_apart_by_exception_and_dr6() {
        // Values kvm_pvm reported for a single step and a DR0 execute breakpoint.
        assert_eq!(DebugStop::from_exit(1, 0xffff_4ff0), DebugStop::Step);
        assert_eq!(
            DebugStop::from_exit(1, 0xffff_0ff1),
            DebugStop::HardwareSlot { slot: 0 }
        );
        assert_eq!(
            DebugStop::from_exit(1, 0xffff_0ff8),
            DebugStop::HardwareSlot { slot: 3 }
        );
        assert_eq!(DebugStop::from_exit(3, 0), DebugStop::GuestBreakpoint);
    }
}
