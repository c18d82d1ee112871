//! MSR exits: axvm's identification MSR and a scratch MSR, both handled by
//! the VMM in user space.

use rt::cpu::{rdmsr_parts, wrmsr};
use rt::{check_eq, println};

/// Read-only identification MSR ("AXVM" in ASCII, 0x41 0x58 0x56 0x4d).
const MSR_AXVM_ID: u32 = 0x4158_564d;
/// Scratch MSR: returns what was last written.
const MSR_AXVM_SCRATCH: u32 = 0x4158_564e;
const SCRATCH_VALUE: u64 = 0x0123_4567_89ab_cdef;

/// Runs the checks; prints a line ending in `OK` or exits with a FAIL.
pub fn check() {
    // SAFETY: both MSRs are emulated by axvm and have no side effects.
    let ((id_hi, id_lo), (scratch_hi, scratch_lo)) = unsafe {
        let id = rdmsr_parts(MSR_AXVM_ID);
        wrmsr(MSR_AXVM_SCRATCH, SCRATCH_VALUE);
        (id, rdmsr_parts(MSR_AXVM_SCRATCH))
    };
    // EDX and EAX are checked separately: a VMM that puts the 64-bit value in
    // EAX alone, or forgets to split it, fails here.
    check_eq("rdmsr(0x4158564d) EDX", 0x1, id_hi, 30);
    check_eq("rdmsr(0x4158564d) EAX", MSR_AXVM_ID, id_lo, 31);
    check_eq(
        "rdmsr(0x4158564e) EDX",
        (SCRATCH_VALUE >> 32) as u32,
        scratch_hi,
        32,
    );
    check_eq(
        "rdmsr(0x4158564e) EAX",
        SCRATCH_VALUE as u32,
        scratch_lo,
        33,
    );
    println!("axvm demo guest: MSR OK");
}
