//! What the processor offers for SVM, and turning SVM on for the current CPU.
//!
//! [`SvmFeatures::from_raw`] is pure (it interprets CPUID and MSR values the caller read),
//! so every combination is unit-tested; [`SvmFeatures::detect`] and [`enable_svm`] are the
//! thin `unsafe` parts that touch the current CPU.

use core::arch::asm;

/// CPUID leaf 0x8000_0001 ECX bit 2: the processor has SVM.
const CPUID_EXT_ECX_SVM: u32 = 1 << 2;
/// The CPUID leaf that describes SVM (APM vol. 3, "Function 8000_000Ah").
pub const SVM_FEATURES_LEAF: u32 = 0x8000_000a;
/// Leaf 0x8000_000A EDX bits.
mod edx {
    pub const NESTED_PAGING: u32 = 1 << 0;
    pub const NRIP_SAVE: u32 = 1 << 3;
    pub const VMCB_CLEAN: u32 = 1 << 5;
    pub const FLUSH_BY_ASID: u32 = 1 << 6;
    pub const DECODE_ASSISTS: u32 = 1 << 7;
}

/// The VM_CR MSR: firmware's SVM lock.
pub const MSR_VM_CR: u32 = 0xc001_0114;
/// VM_CR.LOCK: SVMDIS cannot be changed any more.
const VM_CR_LOCK: u64 = 1 << 3;
/// VM_CR.SVMDIS: EFER.SVME cannot be set.
const VM_CR_SVMDIS: u64 = 1 << 4;
/// The VM_HSAVE_PA MSR: where `VMRUN` saves the host's state.
pub const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
/// The EFER MSR.
pub const MSR_EFER: u32 = 0xc000_0080;
/// EFER.SVME: SVM instructions are enabled.
pub const EFER_SVME: u64 = 1 << 12;

/// What the processor offers for SVM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SvmFeatures {
    /// CPUID says SVM exists.
    pub svm: bool,
    /// Firmware disabled SVM (VM_CR.SVMDIS).
    pub disabled_by_firmware: bool,
    /// VM_CR.LOCK: the firmware's choice cannot be undone.
    pub locked: bool,
    /// Nested paging (required by this backend).
    pub nested_paging: bool,
    /// The processor saves the next RIP on intercepts (the VMCB's `next_rip`).
    pub nrip_save: bool,
    /// VMCB clean bits.
    pub vmcb_clean: bool,
    /// TLB flushes of one ASID (`tlb_control` 3).
    pub flush_by_asid: bool,
    /// The VMCB holds the instruction bytes of a nested page fault (QEMU's `-cpu EPYC`
    /// does not offer them; the vCPU then reads the instruction from guest memory).
    pub decode_assists: bool,
    /// How many ASIDs there are (ASID 0 is the host's, so guests get 1..asids).
    pub asids: u32,
}

impl SvmFeatures {
    /// Interprets raw values: ECX of CPUID 0x8000_0001, EBX and EDX of CPUID 0x8000_000A
    /// (pass 0 when the extended maximum leaf is below it) and the VM_CR MSR (0 when SVM
    /// is absent, since the MSR then may not exist).
    pub const fn from_raw(ext_ecx: u32, svm_ebx: u32, svm_edx: u32, vm_cr: u64) -> Self {
        let svm = ext_ecx & CPUID_EXT_ECX_SVM != 0;
        let (ebx, edx, vm_cr) = if svm {
            (svm_ebx, svm_edx, vm_cr)
        } else {
            (0, 0, 0)
        };
        Self {
            svm,
            disabled_by_firmware: vm_cr & VM_CR_SVMDIS != 0,
            locked: vm_cr & VM_CR_LOCK != 0,
            nested_paging: edx & edx::NESTED_PAGING != 0,
            nrip_save: edx & edx::NRIP_SAVE != 0,
            vmcb_clean: edx & edx::VMCB_CLEAN != 0,
            flush_by_asid: edx & edx::FLUSH_BY_ASID != 0,
            decode_assists: edx & edx::DECODE_ASSISTS != 0,
            asids: ebx,
        }
    }

    /// The features of the current CPU.
    ///
    /// # Safety
    ///
    /// Must run at CPL 0 (it reads the VM_CR MSR when CPUID reports SVM).
    pub unsafe fn detect() -> Self {
        let max_ext = cpuid(0x8000_0000, 0)[0];
        let ext_ecx = if max_ext >= 0x8000_0001 {
            cpuid(0x8000_0001, 0)[2]
        } else {
            0
        };
        let [_, svm_ebx, _, svm_edx] = if max_ext >= SVM_FEATURES_LEAF {
            cpuid(SVM_FEATURES_LEAF, 0)
        } else {
            [0; 4]
        };
        let vm_cr = if ext_ecx & CPUID_EXT_ECX_SVM != 0 {
            // SAFETY: the caller runs at CPL 0, and VM_CR exists on every SVM processor.
            unsafe { read_msr(MSR_VM_CR) }
        } else {
            0
        };
        Self::from_raw(ext_ecx, svm_ebx, svm_edx, vm_cr)
    }

    /// Whether this backend can run guests here; the error says what is missing.
    pub fn check_usable(&self) -> Result<(), SvmUnavailable> {
        if !self.svm {
            return Err(SvmUnavailable::NoSvm);
        }
        if self.disabled_by_firmware {
            return Err(SvmUnavailable::DisabledByFirmware {
                locked: self.locked,
            });
        }
        if !self.nested_paging {
            return Err(SvmUnavailable::NoNestedPaging);
        }
        if self.asids < 2 {
            return Err(SvmUnavailable::NoGuestAsid { asids: self.asids });
        }
        Ok(())
    }
}

/// Why SVM cannot be used on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvmUnavailable {
    /// CPUID 0x8000_0001 ECX bit 2 is clear.
    #[error("this CPU has no AMD SVM (CPUID 0x80000001 ECX bit 2 is clear); on QEMU use `-cpu EPYC` (or `-cpu host` with KVM and nested=1)")]
    NoSvm,
    /// VM_CR.SVMDIS is set.
    #[error("SVM is disabled by firmware (VM_CR.SVMDIS){}", if *locked { " and locked (VM_CR.LOCK): enable SVM/virtualization in the firmware setup" } else { "" })]
    DisabledByFirmware {
        /// VM_CR.LOCK.
        locked: bool,
    },
    /// No nested paging (CPUID 0x8000_000A EDX bit 0).
    #[error("this CPU's SVM has no nested paging (CPUID 0x8000000A EDX bit 0), which the axvm SVM backend requires")]
    NoNestedPaging,
    /// Fewer than two ASIDs: none is left for guests.
    #[error(
        "this CPU's SVM reports {asids} ASIDs (CPUID 0x8000000A EBX); guests need at least ASID 1"
    )]
    NoGuestAsid {
        /// The count CPUID gave.
        asids: u32,
    },
    /// The host save area is not a 4 KiB-aligned physical address.
    #[error("the host save area's physical address {0:#x} is not 4 KiB-aligned (VM_HSAVE_PA needs a page of its own)")]
    BadHostSaveArea(u64),
}

/// Turns SVM on for the current CPU: checks [`SvmFeatures`], sets EFER.SVME and points
/// VM_HSAVE_PA at `host_save_area_pa`, a zeroed 4 KiB page the kernel gives this CPU for
/// good (the processor writes the host's state there on every `VMRUN`). Returns the
/// features, so the caller can log them. Call it once on every CPU that runs vCPUs.
///
/// # Safety
///
/// Must run at CPL 0; `host_save_area_pa` must be a page of RAM nothing else uses while
/// SVM stays enabled on this CPU.
pub unsafe fn enable_svm(host_save_area_pa: u64) -> Result<SvmFeatures, SvmUnavailable> {
    if host_save_area_pa % 0x1000 != 0 {
        return Err(SvmUnavailable::BadHostSaveArea(host_save_area_pa));
    }
    // SAFETY: the caller runs at CPL 0.
    let features = unsafe { SvmFeatures::detect() };
    features.check_usable()?;
    // SAFETY: CPL 0 (caller); SVM exists and is not disabled (checked), so setting SVME
    // and writing VM_HSAVE_PA do not fault; the page is the caller's to give.
    unsafe {
        write_msr(MSR_EFER, read_msr(MSR_EFER) | EFER_SVME);
        write_msr(MSR_VM_HSAVE_PA, host_save_area_pa);
    }
    Ok(features)
}

/// CPUID `leaf`/`subleaf` on the current CPU as `[eax, ebx, ecx, edx]`.
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID exists on every x86_64 processor and has no side effects.
    let r = unsafe { core::arch::x86_64::__cpuid_count(leaf, subleaf) };
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// Reads MSR `msr`.
///
/// # Safety
///
/// CPL 0, and `msr` must exist (else #GP).
pub unsafe fn read_msr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: the caller's contract.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
    }
    (u64::from(high) << 32) | u64::from(low)
}

/// Writes MSR `msr`.
///
/// # Safety
///
/// CPL 0, `msr` must exist and `value` must be valid for it (else #GP), and the write's
/// effect must be what the caller wants.
pub unsafe fn write_msr(msr: u32, value: u64) {
    // SAFETY: the caller's contract.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") value as u32, in("edx") (value >> 32) as u32, options(nostack, preserves_flags));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    /// What QEMU 7.2 `-cpu EPYC` reports: SVM, NPT, NRIPS, no decode assists, 16 ASIDs.
    const EPYC_EDX: u32 = edx::NESTED_PAGING | edx::NRIP_SAVE;

    #[test]
    fn qemu_epyc_is_usable_without_decode_assists() {
        let f = SvmFeatures::from_raw(CPUID_EXT_ECX_SVM, 16, EPYC_EDX, 0);
        assert!(f.svm && f.nested_paging && f.nrip_save);
        assert!(!f.decode_assists && !f.vmcb_clean && !f.flush_by_asid);
        assert_eq!(f.asids, 16);
        assert_eq!(f.check_usable(), Ok(()));
    }

    #[test]
    fn each_edx_bit_is_its_own_feature() {
        let f = SvmFeatures::from_raw(CPUID_EXT_ECX_SVM, 0x8000, 0xe9, 0);
        assert!(f.nested_paging && f.nrip_save && f.vmcb_clean && f.flush_by_asid);
        assert!(f.decode_assists);
        let f = SvmFeatures::from_raw(CPUID_EXT_ECX_SVM, 0x8000, edx::DECODE_ASSISTS, 0);
        assert!(f.decode_assists && !f.nested_paging && !f.nrip_save);
    }

    #[test]
    fn a_cpu_without_svm_ignores_the_other_values_and_says_so() {
        let f = SvmFeatures::from_raw(0, 16, EPYC_EDX, VM_CR_SVMDIS);
        assert!(!f.svm && !f.nested_paging && !f.disabled_by_firmware);
        assert_eq!(f.check_usable(), Err(SvmUnavailable::NoSvm));
        assert!(SvmUnavailable::NoSvm.to_string().contains("-cpu EPYC"));
    }

    #[test]
    fn firmware_disable_lock_npt_and_asids_are_each_refused() {
        let disabled = SvmFeatures::from_raw(CPUID_EXT_ECX_SVM, 16, EPYC_EDX, VM_CR_SVMDIS);
        assert_eq!(
            disabled.check_usable(),
            Err(SvmUnavailable::DisabledByFirmware { locked: false })
        );
        let locked =
            SvmFeatures::from_raw(CPUID_EXT_ECX_SVM, 16, EPYC_EDX, VM_CR_SVMDIS | VM_CR_LOCK);
        let err = locked.check_usable().unwrap_err();
        assert!(err.to_string().contains("firmware setup"), "{err}");
        let no_npt = SvmFeatures::from_raw(CPUID_EXT_ECX_SVM, 16, edx::NRIP_SAVE, 0);
        assert_eq!(no_npt.check_usable(), Err(SvmUnavailable::NoNestedPaging));
        let one_asid = SvmFeatures::from_raw(CPUID_EXT_ECX_SVM, 1, EPYC_EDX, 0);
        assert_eq!(
            one_asid.check_usable(),
            Err(SvmUnavailable::NoGuestAsid { asids: 1 })
        );
    }

    #[test]
    fn a_misaligned_host_save_area_is_refused_before_touching_the_cpu() {
        // SAFETY: the alignment check returns before any MSR access.
        let result = unsafe { enable_svm(0x1234) };
        assert_eq!(result, Err(SvmUnavailable::BadHostSaveArea(0x1234)));
    }
}
