//! Thin wrappers over the privileged instructions the kernel uses: port I/O, MSRs, CPUID,
//! control registers, the interrupt flag and halting. Each is one instruction; they exist so
//! the `unsafe` and the `asm!` live in one place.

use core::arch::asm;

/// Writes a byte to an I/O port.
///
/// # Safety
/// The port's device must tolerate the write (the kernel owns the whole machine).
pub unsafe fn outb(port: u16, value: u8) {
    asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags));
}

/// Reads a byte from an I/O port.
///
/// # Safety
/// Reading some ports has side effects on their device.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags));
    value
}

/// Reads a model-specific register.
///
/// # Safety
/// `msr` must exist on this CPU, or the read raises #GP.
pub unsafe fn rdmsr(msr: u32) -> u64 {
    let (low, high): (u32, u32);
    asm!("rdmsr", in("ecx") msr, out("eax") low, out("edx") high, options(nomem, nostack, preserves_flags));
    (u64::from(high) << 32) | u64::from(low)
}

/// The four registers CPUID returns for `leaf` (sub-leaf 0).
pub fn cpuid(leaf: u32) -> [u32; 4] {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// The time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC is allowed at CPL0 and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// CR2: the linear address of the last page fault.
pub fn cr2() -> u64 {
    let value: u64;
    // SAFETY: reading CR2 has no side effect.
    unsafe { asm!("mov {}, cr2", out(reg) value, options(nomem, nostack, preserves_flags)) };
    value
}

/// Reloads CR3 with its own value, which flushes the non-global TLB entries after the kernel
/// changed its page tables.
pub fn flush_tlb() {
    // SAFETY: writing back the current CR3 changes no mapping.
    unsafe {
        asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack, preserves_flags));
    }
}

/// Sets RFLAGS.IF: interrupts (the kick IPI) are taken from now on.
pub fn enable_interrupts() {
    // SAFETY: every CPU has loaded the IDT before any code can call this (see `main`).
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Clears RFLAGS.IF.
pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// Whether RFLAGS.IF is set.
pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: reading RFLAGS through the stack; nothing else is touched.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// Enables interrupts and halts until one arrives, atomically: STI's one-instruction shadow
/// means an interrupt pending at the STI is taken only once HLT waits, so a wake-up sent after
/// the caller's last check is never lost. Returns with interrupts disabled again.
pub fn wait_for_interrupt() {
    // SAFETY: the IDT is loaded; the handlers return to the instruction after HLT.
    unsafe { asm!("sti", "hlt", "cli", options(nomem, nostack)) };
}

/// Takes the interrupts pending while IF was clear, then clears IF again: `sti; nop; cli`
/// (the NOP because STI's shadow would cover a CLI right after it).
pub fn take_pending_interrupts() {
    // SAFETY: the IDT is loaded; every handler returns.
    unsafe { asm!("sti", "nop", "cli", options(nomem, nostack)) };
}

/// Stops this CPU for good: interrupts off, halted.
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: with IF clear only NMI/INIT/SMI wake the CPU, and the loop halts again.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}
