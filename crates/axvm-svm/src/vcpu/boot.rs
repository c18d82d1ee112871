//! How a vCPU starts: the same modes, registers and start policy as the KVM host's
//! `VCpuBoot` (`crates/axvm-kvm/src/kvm/regs.rs`), written into the VMCB's state-save area
//! so that a guest sees the same state under either host.
//!
//! The KVM host starts from KVM's reset state (`KVM_GET_SREGS` of a new vCPU) and changes
//! only what each mode needs; `reset_state` writes that reset state here, and the tests
//! put every resulting value next to the KVM host's.

use axvm::GuestPhysAddr;

use crate::cpu::EFER_SVME;
use crate::exit::GuestGprs;
use crate::vmcb::{VmcbSaveArea, VmcbSegment};

// The start description every x86 backend takes (`axvm_pc::vcpu_boot`): one boot loader
// decides it, and this file writes it into the VMCB as the KVM host writes it into KVM's
// registers.
pub use axvm_pc::vcpu_boot::{BootRegs, CpuMode, StartPolicy, VCpuBoot as SvmBoot};

/// Segment attributes in the VMCB packing: type(4) S DPL(2) P AVL L D/B G.
mod attr {
    pub const S: u16 = 1 << 4;
    pub const P: u16 = 1 << 7;
    pub const L: u16 = 1 << 9;
    pub const DB: u16 = 1 << 10;
    pub const G: u16 = 1 << 11;
    /// Read/write data, accessed.
    pub const DATA: u16 = 0x3 | S | P;
    /// Execute/read code, accessed.
    pub const CODE: u16 = 0xb | S | P;
    /// An LDT system segment.
    pub const LDT: u16 = 0x2 | P;
    /// A busy TSS.
    pub const BUSY_TSS: u16 = 0xb | P;
}

const CODE64_SELECTOR: u16 = 0x8;
const DATA_SELECTOR: u16 = 0x10;
const CODE32_SELECTOR: u16 = 0x18;
/// The boot loader's GDT has four 8-byte descriptors.
const GDT_LIMIT: u32 = 4 * 8 - 1;

/// CR0 after reset: CD | NW | ET (KVM's reset value, which the KVM host keeps in real mode).
pub(crate) const CR0_RESET: u64 = 0x6000_0010;
const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1 is reserved and always set; IF and the rest clear.
const RFLAGS_RESERVED: u64 = 1 << 1;
/// The PAT after reset (WB, WT, UC-, UC, twice), which the guest's G_PAT starts as.
pub(crate) const PAT_RESET: u64 = 0x0007_0406_0007_0406;

/// The processor's state after INIT, as KVM gives a new vCPU: real mode, CS:IP at
/// f000:fff0 with base 0xffff_0000, 64 KiB segments.
pub(crate) fn reset_state(save: &mut VmcbSaveArea) {
    let data = segment(0, 0, 0xffff, attr::DATA);
    for segment in [
        &mut save.es,
        &mut save.ss,
        &mut save.ds,
        &mut save.fs,
        &mut save.gs,
    ] {
        *segment = data;
    }
    save.cs = segment(0xf000, 0xffff_0000, 0xffff, attr::CODE);
    save.gdtr = segment(0, 0, 0xffff, 0);
    save.idtr = segment(0, 0, 0xffff, 0);
    save.ldtr = segment(0, 0, 0xffff, attr::LDT);
    save.tr = segment(0, 0, 0xffff, attr::BUSY_TSS);
    save.cpl = 0;
    save.cr0 = CR0_RESET;
    save.cr2 = 0;
    save.cr3 = 0;
    save.cr4 = 0;
    // SVME must stay set in the guest's EFER, or VMRUN fails; reads of EFER hide it.
    save.efer = EFER_SVME;
    save.rflags = RFLAGS_RESERVED;
    save.dr6 = 0xffff_0ff0;
    save.dr7 = 0x400;
    save.g_pat = PAT_RESET;
    save.rip = 0xfff0;
    save.rsp = 0;
    save.rax = 0;
}

/// Sets `save` and returns the general registers so that the vCPU starts at `entry` as
/// `boot` says (the start policy is the caller's).
pub(crate) fn apply_boot_state(
    boot: &SvmBoot,
    entry: GuestPhysAddr,
    save: &mut VmcbSaveArea,
) -> GuestGprs {
    reset_state(save);
    let mut gprs = [0; 16];
    gprs[0] = boot.regs.rax;
    gprs[3] = boot.regs.rbx;
    gprs[4] = boot.regs.rsp;
    gprs[6] = boot.regs.rsi;
    save.rax = boot.regs.rax;
    save.rsp = boot.regs.rsp;
    match boot.mode {
        CpuMode::Real => set_real_mode_entry(save, entry.as_u64()),
        CpuMode::Protected32 { gdt_base } => {
            set_flat_segments(save, flat(CODE32_SELECTOR, attr::CODE | attr::DB), gdt_base);
            save.cr0 = CR0_PE | CR0_ET;
            save.rip = entry.as_u64();
        }
        CpuMode::Long {
            page_table_root,
            gdt_base,
        } => {
            set_flat_segments(save, flat(CODE64_SELECTOR, attr::CODE | attr::L), gdt_base);
            save.cr3 = page_table_root.as_u64();
            save.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
            save.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
            save.efer = EFER_LME | EFER_LMA | EFER_SVME;
            save.rip = entry.as_u64();
        }
    }
    gprs
}

/// CS:IP reaches `entry`; the other segments start at 0, like after reset.
fn set_real_mode_entry(save: &mut VmcbSaveArea, entry: u64) {
    let cs_base = entry & !0xffff;
    save.cs.base = cs_base;
    save.cs.selector = (cs_base >> 4) as u16;
    for segment in [
        &mut save.ds,
        &mut save.es,
        &mut save.fs,
        &mut save.gs,
        &mut save.ss,
    ] {
        segment.base = 0;
        segment.selector = 0;
    }
    save.rip = entry & 0xffff;
}

/// The state a start-up IPI with `vector` gives an application processor waiting after
/// INIT: the reset state with CS = vector << 8 (base vector << 12) and IP = 0.
pub(crate) fn set_sipi_state(save: &mut VmcbSaveArea, vector: u8) {
    reset_state(save);
    save.cs.selector = u16::from(vector) << 8;
    save.cs.base = u64::from(vector) << 12;
    save.rip = 0;
}

/// Loads `code` into CS, the flat data segment into the others, and the GDT register.
fn set_flat_segments(save: &mut VmcbSaveArea, code: VmcbSegment, gdt_base: GuestPhysAddr) {
    let data = flat(DATA_SELECTOR, attr::DATA | attr::DB);
    save.cs = code;
    save.ds = data;
    save.es = data;
    save.fs = data;
    save.gs = data;
    save.ss = data;
    save.gdtr = segment(0, gdt_base.as_u64(), GDT_LIMIT, 0);
}

/// A flat 4 GiB segment with attributes `attrib` (G added).
fn flat(selector: u16, attrib: u16) -> VmcbSegment {
    segment(selector, 0, 0xffff_ffff, attrib | attr::G)
}

fn segment(selector: u16, base: u64, limit: u32, attrib: u16) -> VmcbSegment {
    VmcbSegment {
        selector,
        attrib,
        limit,
        base,
    }
}

#[cfg(test)]
mod tests;
