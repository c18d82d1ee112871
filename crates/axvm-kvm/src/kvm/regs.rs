//! Initial register state: how a vCPU starts in real mode, 32-bit protected mode or 64-bit
//! long mode, with the registers a boot protocol passes values in.

use axvm::GuestPhysAddr;
use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};

pub use axvm_pc::vcpu_boot::{BootRegs, CpuMode, StartPolicy, VCpuBoot};

use axvm_pc::vcpu_boot::{BootState, Segment};

/// Sets `sregs` and `regs` so that the vCPU starts at `entry` as `boot` says: axvm-pc's
/// [`BootState`], which starts from KVM's own reset state, converted into KVM's structures.
/// LDTR, TR and IDTR (the reset ones in every mode) and what `BootState` does not describe
/// (CR2, CR8, the APIC base, the pending interrupt) stay as KVM reset them.
pub(crate) fn set_boot_state(
    boot: &VCpuBoot,
    entry: GuestPhysAddr,
    sregs: &mut kvm_sregs,
    regs: &mut kvm_regs,
) {
    let state = BootState::new(boot, entry);
    *regs = kvm_regs {
        rflags: state.rflags,
        rip: state.rip,
        rax: state.regs.rax,
        rbx: state.regs.rbx,
        rsi: state.regs.rsi,
        rsp: state.regs.rsp,
        ..Default::default()
    };
    if matches!(boot.mode, CpuMode::Real) {
        // KVM's reset state is already real mode, in each vendor's own attribute bits
        // (kvm_amd resets CS to type 0xa, kvm_intel to 0xb): only where it starts changes.
        for (segment, ours) in [
            (&mut sregs.cs, state.cs),
            (&mut sregs.ds, state.ds),
            (&mut sregs.es, state.es),
            (&mut sregs.fs, state.fs),
            (&mut sregs.gs, state.gs),
            (&mut sregs.ss, state.ss),
        ] {
            segment.selector = ours.selector;
            segment.base = ours.base;
        }
        return;
    }
    sregs.cs = kvm_segment_of(state.cs);
    sregs.ds = kvm_segment_of(state.ds);
    sregs.es = kvm_segment_of(state.es);
    sregs.fs = kvm_segment_of(state.fs);
    sregs.gs = kvm_segment_of(state.gs);
    sregs.ss = kvm_segment_of(state.ss);
    sregs.gdt.base = state.gdtr.base;
    sregs.gdt.limit = state.gdtr.limit;
    sregs.cr0 = state.cr0;
    sregs.cr3 = state.cr3;
    sregs.cr4 = state.cr4;
    sregs.efer = state.efer;
}

/// `segment` as KVM spells it, one field per attribute bit.
fn kvm_segment_of(segment: Segment) -> kvm_segment {
    let attributes = segment.attributes;
    kvm_segment {
        base: segment.base,
        limit: segment.limit,
        selector: segment.selector,
        type_: attributes.type_(),
        present: attributes.present(),
        dpl: attributes.dpl(),
        db: attributes.db(),
        s: attributes.s(),
        l: attributes.long(),
        g: attributes.granularity(),
        avl: attributes.avl(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use kvm_ioctls::Kvm;

    /// The fields of a segment `set_boot_state` writes.
    fn written(s: &kvm_segment) -> (u16, u64, u32, [u8; 8]) {
        let bits = [s.type_, s.present, s.dpl, s.db, s.s, s.l, s.g, s.avl];
        (s.selector, s.base, s.limit, bits)
    }

    /// A real-mode start writes the whole `BootState`, which must equal what KVM resets a
    /// new vCPU to outside CS:IP, so that it changes nothing else (as when only the
    /// selectors and bases were written).
    #[test]
    fn a_real_mode_start_keeps_kvms_reset_state_outside_cs_ip() {
        let Ok(kvm) = Kvm::new() else {
            return; // No /dev/kvm here: nothing to compare with.
        };
        let Ok(vcpu) = kvm.create_vm().and_then(|vm| vm.create_vcpu(0)) else {
            return;
        };
        let reset = vcpu.get_sregs().expect("KVM_GET_SREGS of a new vCPU");
        let mut sregs = reset;
        let mut regs = kvm_regs::default();
        let boot = VCpuBoot::default();
        set_boot_state(&boot, GuestPhysAddr::new(0xf_0000), &mut sregs, &mut regs);
        assert_eq!((sregs.cs.selector, sregs.cs.base), (0xf000, 0xf_0000));
        assert_eq!(sregs.cs.limit, reset.cs.limit, "CS limit");
        assert_eq!(written(&sregs.cs).3, written(&reset.cs).3, "CS attributes");
        for (name, now, then) in [
            ("DS", &sregs.ds, &reset.ds),
            ("ES", &sregs.es, &reset.es),
            ("FS", &sregs.fs, &reset.fs),
            ("GS", &sregs.gs, &reset.gs),
            ("SS", &sregs.ss, &reset.ss),
        ] {
            assert_eq!(written(now), written(then), "{name}");
        }
        assert_eq!(
            (sregs.gdt.base, sregs.gdt.limit),
            (reset.gdt.base, reset.gdt.limit)
        );
        let control = |s: &kvm_sregs| (s.cr0, s.cr3, s.cr4, s.efer);
        assert_eq!(control(&sregs), control(&reset));
        assert_eq!((regs.rip, regs.rflags), (0, 2));
    }
}
