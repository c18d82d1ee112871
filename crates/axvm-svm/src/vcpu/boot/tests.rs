//! The boot state of each mode, next to what the KVM host sets (`axvm-kvm`'s
//! `set_boot_state` over KVM's reset `kvm_sregs`), field by field in KVM's own terms.

use super::*;
use crate::vmcb::Vmcb;

const CR0_PE: u64 = 1 << 0;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;

/// A segment as `kvm_segment` spells it.
#[derive(Clone, Copy, Debug)]
struct KvmSegment {
    base: u64,
    limit: u32,
    selector: u16,
    type_: u8,
    present: u8,
    dpl: u8,
    db: u8,
    s: u8,
    l: u8,
    g: u8,
}

impl KvmSegment {
    /// The same segment in the VMCB's packed attribute format.
    fn to_vmcb(self) -> VmcbSegment {
        let attrib = u16::from(self.type_)
            | u16::from(self.s) << 4
            | u16::from(self.dpl) << 5
            | u16::from(self.present) << 7
            | u16::from(self.l) << 9
            | u16::from(self.db) << 10
            | u16::from(self.g) << 11;
        VmcbSegment {
            selector: self.selector,
            attrib,
            limit: self.limit,
            base: self.base,
        }
    }
}

/// KVM's reset segment for the data registers (`KVM_GET_SREGS` of a new vCPU).
const KVM_RESET_DATA: KvmSegment = KvmSegment {
    base: 0,
    limit: 0xffff,
    selector: 0,
    type_: 3,
    present: 1,
    dpl: 0,
    db: 0,
    s: 1,
    l: 0,
    g: 0,
};

/// `axvm-kvm`'s `flat_segment(selector, type_, long)`.
fn kvm_flat(selector: u16, type_: u8, long: bool) -> KvmSegment {
    KvmSegment {
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
    }
}

fn boot(mode: CpuMode) -> (VmcbSaveArea, GuestGprs) {
    boot_at(mode, 0x12_3456)
}

fn boot_at(mode: CpuMode, entry: u64) -> (VmcbSaveArea, GuestGprs) {
    let mut vmcb = Vmcb::zeroed();
    let regs = BootRegs {
        rax: 0x2bad_b002,
        rbx: 0x9500,
        rsi: 0x7000,
        rsp: 0x8_0000,
    };
    let config = SvmBoot {
        mode,
        regs,
        start: StartPolicy::AtBoot,
    };
    let gprs = apply_boot_state(&config, GuestPhysAddr::new(entry), &mut vmcb.save);
    (vmcb.save, gprs)
}

fn data_segments(save: &VmcbSaveArea) -> [VmcbSegment; 5] {
    [save.ds, save.es, save.fs, save.gs, save.ss]
}

#[test]
fn boot_registers_go_where_the_kvm_host_puts_them() {
    let (save, gprs) = boot(CpuMode::Real);
    assert_eq!((save.rax, gprs[0]), (0x2bad_b002, 0x2bad_b002));
    assert_eq!(gprs[3], 0x9500, "RBX");
    assert_eq!(gprs[6], 0x7000, "RSI");
    assert_eq!((save.rsp, gprs[4]), (0x8_0000, 0x8_0000));
    for (i, value) in gprs.iter().enumerate() {
        if ![0, 3, 4, 6].contains(&i) {
            assert_eq!(*value, 0, "register {i} starts at zero");
        }
    }
    assert_eq!(save.rflags, 2, "only the reserved bit, IF clear");
}

#[test]
fn real_mode_matches_kvm_reset_with_cs_ip_at_the_entry() {
    let (save, _) = boot_at(CpuMode::Real, 0x9_3456);
    let cs = KvmSegment {
        base: 0x9_0000,
        selector: 0x9000,
        type_: 0xb,
        ..KVM_RESET_DATA
    };
    assert_eq!(save.cs, cs.to_vmcb());
    assert_eq!(save.rip, 0x3456);
    for segment in data_segments(&save) {
        assert_eq!(segment, KVM_RESET_DATA.to_vmcb());
    }
    assert_eq!(save.cr0, 0x6000_0010, "KVM's reset CR0: CD | NW | ET");
    assert_eq!((save.cr3, save.cr4), (0, 0));
    assert_eq!(save.efer, EFER_SVME, "EFER 0 as the guest sees it");
    assert_eq!((save.gdtr.base, save.gdtr.limit), (0, 0xffff));
    assert_eq!((save.idtr.base, save.idtr.limit), (0, 0xffff));
    assert_eq!(save.cpl, 0);
}

#[test]
fn protected32_matches_the_kvm_host() {
    let gdt_base = GuestPhysAddr::new(0x500);
    let (save, _) = boot(CpuMode::Protected32 { gdt_base });
    assert_eq!(save.cs, kvm_flat(0x18, 0xb, false).to_vmcb());
    for segment in data_segments(&save) {
        assert_eq!(segment, kvm_flat(0x10, 0x3, false).to_vmcb());
    }
    assert_eq!((save.gdtr.base, save.gdtr.limit), (0x500, 31));
    assert_eq!(save.cr0, 0x11, "PE | ET");
    assert_eq!((save.cr3, save.cr4), (0, 0));
    assert_eq!(save.efer & !EFER_SVME, 0);
    assert_eq!(save.rip, 0x12_3456);
    let mut vmcb = Vmcb::zeroed();
    vmcb.save = save;
    assert_eq!(vmcb.guest_code_bitness(), 32);
}

#[test]
fn long_mode_matches_the_kvm_host() {
    let (save, _) = boot(CpuMode::Long {
        page_table_root: GuestPhysAddr::new(0x1000),
        gdt_base: GuestPhysAddr::new(0x500),
    });
    assert_eq!(save.cs, kvm_flat(0x8, 0xb, true).to_vmcb());
    for segment in data_segments(&save) {
        assert_eq!(segment, kvm_flat(0x10, 0x3, false).to_vmcb());
    }
    assert_eq!((save.gdtr.base, save.gdtr.limit), (0x500, 31));
    assert_eq!(save.cr3, 0x1000);
    assert_eq!(save.cr4, 0x620, "PAE | OSFXSR | OSXMMEXCPT");
    assert_eq!(save.cr0, 0x8001_0033, "PE | MP | ET | NE | WP | PG");
    assert_eq!(
        save.efer,
        0x500 | EFER_SVME,
        "LME | LMA, plus SVME for VMRUN"
    );
    assert_eq!(save.rip, 0x12_3456);
    let mut vmcb = Vmcb::zeroed();
    vmcb.save = save;
    assert_eq!(vmcb.guest_code_bitness(), 64);
}

#[test]
fn the_reset_state_passes_vmruns_consistency_checks() {
    // APM vol. 2, "Canonicalization and Consistency Checks" (the parts the state sets).
    for mode in [
        CpuMode::Real,
        CpuMode::Protected32 {
            gdt_base: GuestPhysAddr::new(0),
        },
        CpuMode::Long {
            page_table_root: GuestPhysAddr::new(0x1000),
            gdt_base: GuestPhysAddr::new(0),
        },
    ] {
        let (save, _) = boot(mode);
        assert_ne!(save.efer & EFER_SVME, 0, "{mode:?}: EFER.SVME");
        let (cd, nw) = (save.cr0 & (1 << 30) != 0, save.cr0 & (1 << 29) != 0);
        assert!(cd || !nw, "{mode:?}: CR0.NW without CR0.CD");
        assert_eq!(save.cr0 >> 32, 0, "{mode:?}");
        assert_eq!(save.dr6 >> 32, 0, "{mode:?}");
        assert_eq!(save.dr7 >> 32, 0, "{mode:?}");
        let long = save.efer & EFER_LME != 0 && save.cr0 & CR0_PG != 0;
        if long {
            assert_ne!(save.cr4 & CR4_PAE, 0, "{mode:?}: long mode needs PAE");
            assert_ne!(save.cr0 & CR0_PE, 0, "{mode:?}: long mode needs PE");
            let cs = save.cs.attrib;
            assert!(
                !(cs & VmcbSegment::ATTR_L != 0 && cs & VmcbSegment::ATTR_DB != 0),
                "{mode:?}: CS.L and CS.D both set"
            );
        }
    }
}

#[test]
fn a_sipi_entry_is_vector_times_4_kib_in_real_mode() {
    let mut vmcb = Vmcb::zeroed();
    set_sipi_state(&mut vmcb.save, 0x9a);
    assert_eq!(vmcb.save.cs.selector, 0x9a00);
    assert_eq!(vmcb.save.cs.base, 0x9_a000);
    assert_eq!(vmcb.save.rip, 0);
}
