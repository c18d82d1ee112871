//! CPU instructions the guests need: `cpuid`, MSRs, halting.

use core::arch::asm;

/// The four registers `cpuid` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuidResult {
    /// EAX after `cpuid`.
    pub eax: u32,
    /// EBX after `cpuid` (leaf 1: initial APIC ID in bits 31:24).
    pub ebx: u32,
    /// ECX after `cpuid`.
    pub ecx: u32,
    /// EDX after `cpuid`.
    pub edx: u32,
}

/// Executes `cpuid` for `leaf`/`subleaf`.
///
/// `rbx` cannot be named as an asm operand (LLVM may reserve it), so it is
/// saved and swapped through a scratch register, as `core::arch` does.
#[inline]
pub fn cpuid(leaf: u32, subleaf: u32) -> CpuidResult {
    let (eax, ebx, ecx, edx): (u32, u32, u32, u32);
    // SAFETY: cpuid has no side effects besides the registers named here.
    unsafe {
        asm!(
            "mov {tmp:r}, rbx",
            "cpuid",
            "xchg {tmp:r}, rbx",
            tmp = out(reg) ebx,
            inout("eax") leaf => eax,
            inout("ecx") subleaf => ecx,
            out("edx") edx,
            options(nomem, nostack, preserves_flags),
        );
    }
    CpuidResult { eax, ebx, ecx, edx }
}

/// This vCPU's index: the initial APIC ID, CPUID leaf 1 EBX[31:24].
///
/// The VMM gives vCPU *n* APIC ID *n*; vCPU 0 is the bootstrap processor.
#[inline]
pub fn vcpu_id() -> u32 {
    cpuid(1, 0).ebx >> 24
}

/// Reads a model-specific register, returning `(edx, eax)` as the hardware
/// does, so callers can check each half separately.
///
/// # Safety
/// Reading an MSR the VMM does not handle raises #GP, which without an IDT
/// is a triple fault.
#[inline]
pub unsafe fn rdmsr_parts(msr: u32) -> (u32, u32) {
    let (hi, lo): (u32, u32);
    asm!("rdmsr", in("ecx") msr, out("edx") hi, out("eax") lo, options(nomem, nostack, preserves_flags));
    (hi, lo)
}

/// Reads a model-specific register as one 64-bit value (EDX:EAX).
///
/// # Safety
/// See [`rdmsr_parts`].
#[inline]
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (hi, lo) = rdmsr_parts(msr);
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Writes a model-specific register (EDX:EAX = `value`).
///
/// # Safety
/// MSR writes can change CPU behaviour arbitrarily; unknown MSRs raise #GP.
#[inline]
pub unsafe fn wrmsr(msr: u32, value: u64) {
    asm!(
        "wrmsr",
        in("ecx") msr,
        in("edx") (value >> 32) as u32,
        in("eax") value as u32,
        options(nostack, preserves_flags),
    );
}

/// Reads the time-stamp counter, for timeouts that must not depend on how
/// fast instructions run (natively vs. under KVM's instruction emulator,
/// which is ~1000 times slower).
#[inline]
pub fn rdtsc() -> u64 {
    let (hi, lo): (u32, u32);
    // SAFETY: rdtsc only reads the counter (CR4.TSD is clear at CPL0 anyway).
    unsafe {
        asm!("rdtsc", out("edx") hi, out("eax") lo, options(nomem, nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Spin-loop hint (`pause`), so a waiting vCPU yields to its sibling.
///
/// Written as asm rather than `core::hint::spin_loop` so no SSE2-gated
/// intrinsic is involved.
#[inline(always)]
pub fn pause() {
    // SAFETY: `pause` is a hint with no architectural effect.
    unsafe { asm!("pause", options(nomem, nostack, preserves_flags)) };
}

/// Stops this vCPU for good: `cli; hlt` in a loop (an NMI or spurious wake-up
/// just halts again).
#[inline]
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: disabling interrupts and halting only stops this vCPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
