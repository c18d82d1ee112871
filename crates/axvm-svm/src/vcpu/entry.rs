//! The world switch: one `VMRUN` with the guest's general registers loaded around it.
//!
//! `VMRUN` itself switches only RAX, RSP, RIP, RFLAGS, the control registers, EFER and the
//! ES/CS/SS/DS segments (the host's go to the VM_HSAVE_PA page). FS, GS, TR, LDTR and the
//! SYSCALL/SYSENTER MSRs and KernelGSbase are `VMLOAD`/`VMSAVE` state, and the other 14
//! general registers are software's. The routine therefore:
//!
//! 1. saves the host's callee-saved registers on its stack and clears GIF (`clgi`), so no
//!    host interrupt is taken between here and the guest (one that arrives while the guest
//!    runs makes it exit with INTR, and is taken at `stgi` below); in the
//!    `interrupts_exit` mode it then sets IF, harmless with GIF clear, so that an interrupt
//!    makes the guest exit even when the caller entered with IF clear (a caller that checks
//!    for work with interrupts off and then enters: a kick sent after its check is pending
//!    at `VMRUN` and exits the guest at once instead of being lost), and clears IF again
//!    before `stgi`, leaving the interrupt pending for the caller;
//! 2. `vmsave`s the host's FS/GS/TR/LDTR/MSR state into a host-state page of the vCPU's
//!    own — the host kernel may use FS/GS bases (per-CPU data) or a TSS, and this keeps
//!    them whatever the kernel does, at the cost of a `VMSAVE`/`VMLOAD` pair per entry;
//! 3. loads the guest's registers from the array, `vmload`s the guest's FS/GS/... state,
//!    `vmrun`s, `vmsave`s the guest's state back into its VMCB;
//! 4. stores the guest's registers into the array, `vmload`s the host's state back, sets
//!    GIF (`stgi`) and returns.
//!
//! x87/SSE/AVX registers are not switched: the kernel built for `x86_64-unknown-none` uses
//! none (soft-float), so they hold the guest's values between runs as long as one physical
//! CPU runs one vCPU.

core::arch::global_asm!(
    ".global axvm_svm_vmrun",
    "axvm_svm_vmrun:",
    // Host callee-saved registers, then the arguments the exit path needs.
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "push rcx", // [rsp + 24]: nonzero = host interrupts exit the guest whatever IF was
    "push rdi", // [rsp + 16]: the register array
    "push rdx", // [rsp + 8]: the host-state page
    "push rsi", // [rsp]: the guest's VMCB
    "clgi",
    // With GIF clear nothing is taken, so IF=1 from here only means: a host interrupt
    // pending at VMRUN or arriving in the guest makes it exit (V_INTR_MASKING).
    "test rcx, rcx",
    "jz 2f",
    "sti",
    "2:",
    "mov rax, rdx",
    "vmsave rax",
    // The guest's registers, RDI last (it holds the array); RAX and RSP are in the VMCB.
    "mov rcx, [rdi + 8]",
    "mov rdx, [rdi + 16]",
    "mov rbx, [rdi + 24]",
    "mov rbp, [rdi + 40]",
    "mov rsi, [rdi + 48]",
    "mov r8, [rdi + 64]",
    "mov r9, [rdi + 72]",
    "mov r10, [rdi + 80]",
    "mov r11, [rdi + 88]",
    "mov r12, [rdi + 96]",
    "mov r13, [rdi + 104]",
    "mov r14, [rdi + 112]",
    "mov r15, [rdi + 120]",
    "mov rdi, [rdi + 56]",
    "mov rax, [rsp]",
    "vmload rax",
    "vmrun rax",
    // #VMEXIT: RAX (the VMCB's address), RSP and RIP are the host's again.
    "vmsave rax",
    "push rdi", // the guest's RDI; the array is now at [rsp + 24]
    "mov rdi, [rsp + 24]",
    "mov [rdi + 8], rcx",
    "mov [rdi + 16], rdx",
    "mov [rdi + 24], rbx",
    "mov [rdi + 40], rbp",
    "mov [rdi + 48], rsi",
    "mov [rdi + 64], r8",
    "mov [rdi + 72], r9",
    "mov [rdi + 80], r10",
    "mov [rdi + 88], r11",
    "mov [rdi + 96], r12",
    "mov [rdi + 104], r13",
    "mov [rdi + 112], r14",
    "mov [rdi + 120], r15",
    "pop rax",
    "mov [rdi + 56], rax",
    "add rsp, 8", // the guest's VMCB
    "pop rax",    // the host-state page
    "vmload rax",
    // #VMEXIT restored the IF of VMRUN: clear it again in that mode, so the interrupt
    // stays pending for the caller instead of being taken at STGI.
    "cmp qword ptr [rsp + 8], 0",
    "je 3f",
    "cli",
    "3:",
    "stgi",
    "add rsp, 16", // the register array and the mode
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
);

extern "sysv64" {
    /// Runs the guest of the VMCB at `guest_vmcb_pa` until its next `#VMEXIT`, with the
    /// general registers of `gprs` (x86 encoding order; entries 0 and 4, RAX and RSP, are
    /// neither read nor written: they live in the VMCB).
    fn axvm_svm_vmrun(
        gprs: *mut [u64; 16],
        guest_vmcb_pa: u64,
        host_state_pa: u64,
        interrupts_exit: u64,
    );
}

/// Runs the guest once (see the module documentation).
///
/// # Safety
///
/// SVM must be enabled on this CPU ([`crate::cpu::enable_svm`]); `guest_vmcb_pa` must be a
/// valid VMCB (intercepting VMRUN, with a valid ASID, nested page tables and permission
/// maps) and `host_state_pa` a page only this vCPU uses; both must stay reserved for the
/// vCPU. The guest's state must be consistent, or `VMRUN` exits with `VMEXIT_INVALID`.
///
/// With `interrupts_exit`, host interrupts make the guest exit whatever the caller's
/// RFLAGS.IF, and return with IF as the caller had it (an interrupt that made the guest exit
/// stays pending while IF is clear); without, they do so only when IF is set, and are taken
/// before this returns.
pub(super) unsafe fn vmrun(
    gprs: &mut [u64; 16],
    guest_vmcb_pa: u64,
    host_state_pa: u64,
    interrupts_exit: bool,
) {
    let caller_if = interrupts_enabled();
    // SAFETY: the caller's contract; the routine preserves every callee-saved register and
    // the stack, and writes only `gprs`, the two pages and the hidden CPU state it restores.
    unsafe {
        axvm_svm_vmrun(
            gprs,
            guest_vmcb_pa,
            host_state_pa,
            u64::from(interrupts_exit),
        )
    }
    if interrupts_exit && caller_if {
        // SAFETY: the caller had interrupts on; this gives them back (the routine cleared
        // IF), and a pending interrupt is taken here as it would have been at STGI.
        unsafe { core::arch::asm!("sti", options(nomem, nostack)) };
    }
}

/// Whether RFLAGS.IF is set.
fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reads RFLAGS through the stack and changes nothing.
    unsafe {
        core::arch::asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags))
    };
    flags & (1 << 9) != 0
}
