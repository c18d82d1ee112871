//! Whether each CPU can run guests with AMD SVM, and with which features. Detection only:
//! enabling SVM (EFER.SVME, VM_HSAVE_PA) is the vCPU's business (`axvm-svm`).

use crate::{cpu, hv_println};

/// CPUID 0x8000_0001 ECX: SVM.
const CPUID_SVM: u32 = 1 << 2;
/// CPUID 0x8000_000A EDX: nested paging, next-RIP save, decode assists.
const CPUID_NPT: u32 = 1 << 0;
const CPUID_NRIPS: u32 = 1 << 3;
const CPUID_DECODE_ASSISTS: u32 = 1 << 7;
/// VM_CR: SVMDIS (bit 4) set means firmware disabled SVM; with LOCK (bit 3) for good.
const MSR_VM_CR: u32 = 0xc001_0114;
const VM_CR_LOCK: u64 = 1 << 3;
const VM_CR_SVMDIS: u64 = 1 << 4;

/// What one CPU offers.
#[derive(Clone, Copy, Debug, Default)]
pub struct SvmSupport {
    /// CPUID says SVM exists.
    pub svm: bool,
    /// SVM revision (CPUID 0x8000_000A EAX).
    pub revision: u32,
    /// Number of ASIDs (CPUID 0x8000_000A EBX).
    pub asids: u32,
    /// Nested paging.
    pub npt: bool,
    /// The VMCB's next-RIP field is filled on intercepts.
    pub nrips: bool,
    /// Decode assists (the faulting instruction's bytes in the VMCB on #NPF).
    pub decode_assists: bool,
    /// VM_CR.SVMDIS: the firmware disabled SVM (EFER.SVME cannot be set).
    pub disabled: bool,
    /// VM_CR.LOCK: the disable cannot be undone.
    pub locked: bool,
}

impl SvmSupport {
    /// Whether guests can run on this CPU as axvm-svm needs: SVM enabled, with nested paging.
    pub fn usable(&self) -> bool {
        self.svm && !self.disabled && self.npt
    }
}

/// Reads this CPU's SVM support.
pub fn detect() -> SvmSupport {
    let max_extended = cpu::cpuid(0x8000_0000)[0];
    if max_extended < 0x8000_0001 || cpu::cpuid(0x8000_0001)[2] & CPUID_SVM == 0 {
        return SvmSupport::default();
    }
    let [revision, asids, _, features] = if max_extended >= 0x8000_000a {
        cpu::cpuid(0x8000_000a)
    } else {
        [0; 4]
    };
    // SAFETY: VM_CR exists wherever CPUID reports SVM.
    let vm_cr = unsafe { cpu::rdmsr(MSR_VM_CR) };
    SvmSupport {
        svm: true,
        revision: revision & 0xff,
        asids,
        npt: features & CPUID_NPT != 0,
        nrips: features & CPUID_NRIPS != 0,
        decode_assists: features & CPUID_DECODE_ASSISTS != 0,
        disabled: vm_cr & VM_CR_SVMDIS != 0,
        locked: vm_cr & VM_CR_LOCK != 0,
    }
}

fn yes_no(flag: bool) -> &'static str {
    if flag {
        "yes"
    } else {
        "no"
    }
}

/// Detects and prints one line for CPU `cpu`, and returns what it found.
pub fn report(cpu: usize) -> SvmSupport {
    let s = detect();
    if !s.svm {
        hv_println!(
            "cpu {cpu}: SVM no (CPUID 0x80000001 ECX bit 2 clear: run QEMU with -cpu EPYC)"
        );
        return s;
    }
    hv_println!(
        "cpu {cpu}: SVM yes (revision {}, {} ASIDs), NPT {}, NRIPS {}, decode assists {}, VM_CR.SVMDIS {}{}",
        s.revision,
        s.asids,
        yes_no(s.npt),
        yes_no(s.nrips),
        yes_no(s.decode_assists),
        u8::from(s.disabled),
        if s.locked { " (locked)" } else { "" },
    );
    s
}
