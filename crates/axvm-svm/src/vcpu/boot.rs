//! How a vCPU starts: the same modes, registers and start policy as the KVM host's
//! `VCpuBoot`, and the same state, described once by axvm-pc's [`BootState`] and written
//! here into the VMCB's state-save area, so that a guest sees the same state under either
//! host. The tests put every resulting value next to the KVM host's.

use axvm::GuestPhysAddr;
use axvm_pc::vcpu_boot::{BootState, Segment, TableRegister};

use crate::cpu::EFER_SVME;
use crate::exit::GuestGprs;
use crate::vmcb::{VmcbSaveArea, VmcbSegment};

// The start description every x86 backend takes (`axvm_pc::vcpu_boot`): one boot loader
// decides it, and this file writes it into the VMCB as the KVM host writes it into KVM's
// registers.
pub use axvm_pc::vcpu_boot::{BootRegs, CpuMode, StartPolicy, VCpuBoot as SvmBoot};

/// The PAT after reset (WB, WT, UC-, UC, twice), which the guest's G_PAT starts as.
pub(crate) const PAT_RESET: u64 = 0x0007_0406_0007_0406;

/// The processor's state after INIT, as KVM gives a new vCPU (axvm-pc's
/// [`BootState::after_init`]), plus what only the VMCB holds.
pub(crate) fn reset_state(save: &mut VmcbSaveArea) {
    write_state(save, &BootState::after_init());
}

/// Sets `save` and returns the general registers so that the vCPU starts at `entry` as
/// `boot` says (the start policy is the caller's).
pub(crate) fn apply_boot_state(
    boot: &SvmBoot,
    entry: GuestPhysAddr,
    save: &mut VmcbSaveArea,
) -> GuestGprs {
    let state = BootState::new(boot, entry);
    write_state(save, &state);
    let mut gprs = [0; 16];
    gprs[0] = state.regs.rax;
    gprs[3] = state.regs.rbx;
    gprs[4] = state.regs.rsp;
    gprs[6] = state.regs.rsi;
    gprs
}

/// The state a start-up IPI with `vector` gives an application processor waiting after
/// INIT (axvm-pc's [`BootState::after_sipi`]).
pub(crate) fn set_sipi_state(save: &mut VmcbSaveArea, vector: u8) {
    write_state(save, &BootState::after_sipi(vector));
}

/// Writes `state` into the save area, with the VMCB-only fields at their reset values.
fn write_state(save: &mut VmcbSaveArea, state: &BootState) {
    save.cs = vmcb_segment(state.cs);
    save.ds = vmcb_segment(state.ds);
    save.es = vmcb_segment(state.es);
    save.fs = vmcb_segment(state.fs);
    save.gs = vmcb_segment(state.gs);
    save.ss = vmcb_segment(state.ss);
    save.ldtr = vmcb_segment(state.ldtr);
    save.tr = vmcb_segment(state.tr);
    save.gdtr = vmcb_table(state.gdtr);
    save.idtr = vmcb_table(state.idtr);
    save.cpl = 0;
    save.cr0 = state.cr0;
    save.cr2 = 0;
    save.cr3 = state.cr3;
    save.cr4 = state.cr4;
    // SVME must stay set in the guest's EFER, or VMRUN fails; reads of EFER hide it.
    save.efer = state.efer | EFER_SVME;
    save.rflags = state.rflags;
    save.dr6 = 0xffff_0ff0;
    save.dr7 = 0x400;
    save.g_pat = PAT_RESET;
    save.rip = state.rip;
    save.rsp = state.regs.rsp;
    save.rax = state.regs.rax;
}

/// A segment in the VMCB's packing, which is [`Segment`]'s own.
fn vmcb_segment(segment: Segment) -> VmcbSegment {
    VmcbSegment {
        selector: segment.selector,
        attrib: segment.attributes.0,
        limit: segment.limit,
        base: segment.base,
    }
}

/// GDTR or IDTR: a VMCB segment with only base and limit.
fn vmcb_table(table: TableRegister) -> VmcbSegment {
    VmcbSegment {
        selector: 0,
        attrib: 0,
        limit: u32::from(table.limit),
        base: table.base,
    }
}

#[cfg(test)]
mod tests;
