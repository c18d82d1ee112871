//! PSCI 0.2 calls over HVC (the conduit of the arm64 contract and of QEMU virt
//! without EL2): starting vCPUs, powering off, resetting.

use crate::entry::{MAX_VCPUS, SECONDARY_MAIN};

/// PSCI_VERSION function id.
pub const PSCI_VERSION: u32 = 0x8400_0000;
/// CPU_ON, SMC64 calling convention.
pub const CPU_ON: u32 = 0xC400_0003;
/// SYSTEM_OFF function id.
pub const SYSTEM_OFF: u32 = 0x8400_0008;
/// SYSTEM_RESET function id.
pub const SYSTEM_RESET: u32 = 0x8400_0009;

/// PSCI return value: success.
pub const SUCCESS: i64 = 0;
/// PSCI return value: invalid parameters.
pub const INVALID_PARAMETERS: i64 = -2;
/// PSCI return value: the target CPU is already on.
pub const ALREADY_ON: i64 = -4;

/// What a vCPU started by [`cpu_on`] runs, with the call's context.
pub type SecondaryMain = extern "C" fn(context: u64) -> !;

/// Makes the PSCI call `function` with arguments x1..x3; returns x0.
pub fn call(function: u32, arg1: u64, arg2: u64, arg3: u64) -> i64 {
    let ret: u64;
    // SAFETY: an HVC with a PSCI function id only asks the hypervisor for a PSCI service;
    // SMCCC lets it clobber x0-x17.
    unsafe {
        core::arch::asm!(
            "hvc #0",
            inout("x0") u64::from(function) => ret,
            inout("x1") arg1 => _,
            inout("x2") arg2 => _,
            inout("x3") arg3 => _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack),
        );
    }
    ret as i64
}

/// The PSCI version, major << 16 | minor.
pub fn version() -> u32 {
    call(PSCI_VERSION, 0, 0, 0) as u32
}

/// Starts the vCPU whose MPIDR affinity is `mpidr` (vCPU *i* has Aff0 = *i* for
/// *i* < 16) at `main` on its own stack, with `context` as its argument.
/// Returns PSCI's answer: [`SUCCESS`], [`ALREADY_ON`], ... A vCPU this runtime
/// has no stack for (index ≥ [`MAX_VCPUS`]) is refused with
/// [`INVALID_PARAMETERS`] before any call.
pub fn cpu_on(mpidr: u64, main: SecondaryMain, context: u64) -> i64 {
    let index = (mpidr & 0xff) + 16 * ((mpidr >> 8) & 0xff);
    let Some(index) = usize::try_from(index).ok().filter(|&i| i < MAX_VCPUS) else {
        return INVALID_PARAMETERS;
    };
    // SAFETY: the slot of a vCPU that is off is read only by that vCPU once started; the
    // `dsb` below orders the store before the call that starts it.
    unsafe {
        let slots = core::ptr::addr_of_mut!(SECONDARY_MAIN);
        core::ptr::write_volatile(&mut (*slots)[index], main as usize);
        core::arch::asm!("dsb sy", options(nostack));
    }
    extern "C" {
        fn axvm_secondary_start();
    }
    let entry = axvm_secondary_start as *const () as u64;
    call(CPU_ON, mpidr, entry, context)
}

/// Powers the VM off (PSCI SYSTEM_OFF): axvm ends it with status 0, QEMU exits 0.
pub fn system_off() -> ! {
    call(SYSTEM_OFF, 0, 0, 0);
    crate::exit::park()
}

/// Resets the VM (PSCI SYSTEM_RESET): axvm stops it (status 0, saying it was a
/// reset); QEMU restarts it, or exits with `-no-reboot`.
pub fn system_reset() -> ! {
    call(SYSTEM_RESET, 0, 0, 0);
    crate::exit::park()
}
