//! Initial register state: how a vCPU starts in real mode, 32-bit protected mode or 64-bit
//! long mode, with the registers a boot protocol passes values in.

use axvm::GuestPhysAddr;
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};

pub use axvm_pc::vcpu_boot::{BootRegs, CpuMode, StartPolicy, VCpuBoot};

// GDT selectors of the GDT the boot loader writes (see `axvm_pc::boot_tables::GDT`).
use axvm_pc::boot_tables::{CODE32_SELECTOR, CODE64_SELECTOR, DATA_SELECTOR};

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
/// The GDT has four 8-byte descriptors.
const GDT_LIMIT: u16 = 4 * 8 - 1;
/// RFLAGS bit 1 is reserved and always set; everything else (IF included) is clear.
const RFLAGS_RESERVED: u64 = 1 << 1;

/// Sets `sregs` and `regs` so that the vCPU starts at `entry` as `boot` says.
pub(crate) fn set_boot_state(
    boot: &VCpuBoot,
    entry: GuestPhysAddr,
    sregs: &mut kvm_sregs,
    regs: &mut kvm_regs,
) {
    *regs = kvm_regs {
        rflags: RFLAGS_RESERVED,
        rax: boot.regs.rax,
        rbx: boot.regs.rbx,
        rsi: boot.regs.rsi,
        rsp: boot.regs.rsp,
        ..Default::default()
    };
    match boot.mode {
        CpuMode::Real => {
            let entry = entry.as_u64();
            // CS:IP reaches the entry; the other segments start at 0, like after reset.
            let cs_base = entry & !0xffff;
            sregs.cs.base = cs_base;
            sregs.cs.selector = (cs_base >> 4) as u16;
            for segment in [
                &mut sregs.ds,
                &mut sregs.es,
                &mut sregs.fs,
                &mut sregs.gs,
                &mut sregs.ss,
            ] {
                segment.base = 0;
                segment.selector = 0;
            }
            regs.rip = entry & 0xffff;
        }
        CpuMode::Protected32 { gdt_base } => {
            set_flat_segments(sregs, flat_segment(CODE32_SELECTOR, 0xb, false), gdt_base);
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr3 = 0;
            sregs.cr4 = 0;
            sregs.efer = 0;
            regs.rip = entry.as_u64();
        }
        CpuMode::Long {
            page_table_root,
            gdt_base,
        } => {
            set_flat_segments(sregs, flat_segment(CODE64_SELECTOR, 0xb, true), gdt_base);
            sregs.cr3 = page_table_root.as_u64();
            sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
            sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
            sregs.efer = EFER_LME | EFER_LMA;
            regs.rip = entry.as_u64();
        }
    }
}

/// Loads `code` into CS, the flat data segment into the others, and the GDT register.
fn set_flat_segments(sregs: &mut kvm_sregs, code: kvm_segment, gdt_base: GuestPhysAddr) {
    let data = flat_segment(DATA_SELECTOR, 0x3, false);
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.gdt.base = gdt_base.as_u64();
    sregs.gdt.limit = GDT_LIMIT;
}

/// A flat 4 GiB segment (64-bit code when `long`).
fn flat_segment(selector: u16, type_: u8, long: bool) -> kvm_segment {
    kvm_segment {
        base: 0,
        limit: 0xffff_ffff,
        selector,
        type_,
        present: 1,
        dpl: 0,
        db: u8::from(!long),
        s: 1,
        l: u8::from(long),
        g: 1,
        ..Default::default()
    }
}

/// The x87/SSE state of a CPU after `FNINIT`: control word 0x37f, MXCSR 0x1f80 (all
/// exceptions masked).
pub(crate) fn reset_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}
