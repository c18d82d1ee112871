//! Initial register state: how a vCPU starts in real mode or in 64-bit long mode.

use axvm::GuestPhysAddr;
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};

/// How a vCPU starts; the `SetupConfig` of [`KvmVCpu`](super::KvmVCpu), chosen by the boot
/// loader from the image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuMode {
    /// 16-bit real mode at the entry address, like a PC after reset jumping to a BIOS-style
    /// entry (how the ArceOS hypervisor starts x86 guests).
    #[default]
    Real,
    /// 64-bit long mode, paging on, interrupts off, with the page tables at
    /// `page_table_root` and a GDT (null, code 0x8, data 0x10) at `gdt_base`.
    Long {
        /// Guest-physical address of the PML4.
        page_table_root: GuestPhysAddr,
        /// Guest-physical address of the GDT.
        gdt_base: GuestPhysAddr,
    },
}

/// GDT selectors of the long-mode GDT built by the boot loader.
const CODE64_SELECTOR: u16 = 0x8;
const DATA_SELECTOR: u16 = 0x10;

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
/// RFLAGS bit 1 is reserved and always set; everything else (IF included) is clear.
const RFLAGS_RESERVED: u64 = 1 << 1;

/// Sets `sregs` and `regs` so that the vCPU starts at `entry` in `mode`.
pub(crate) fn set_boot_state(
    mode: CpuMode,
    entry: GuestPhysAddr,
    sregs: &mut kvm_sregs,
    regs: &mut kvm_regs,
) {
    *regs = kvm_regs {
        rflags: RFLAGS_RESERVED,
        ..Default::default()
    };
    match mode {
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
        CpuMode::Long {
            page_table_root,
            gdt_base,
        } => {
            let code = flat_segment(CODE64_SELECTOR, 0xb, true);
            let data = flat_segment(DATA_SELECTOR, 0x3, false);
            sregs.cs = code;
            sregs.ds = data;
            sregs.es = data;
            sregs.fs = data;
            sregs.gs = data;
            sregs.ss = data;
            sregs.gdt.base = gdt_base.as_u64();
            sregs.gdt.limit = 3 * 8 - 1;
            sregs.cr3 = page_table_root.as_u64();
            sregs.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
            sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
            sregs.efer = EFER_LME | EFER_LMA;
            regs.rip = entry.as_u64();
        }
    }
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
