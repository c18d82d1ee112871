//! The exception vector table (`VBAR_EL1`, set by the entry stubs) and its Rust
//! dispatch: IRQs go to the handler a guest installs ([`set_irq_handler`]);
//! a synchronous exception is either the exit device's absence (see
//! [`crate::exit`]) or a guest bug, which is reported and ends the VM.

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::exit;

/// The exit status of a vCPU that took an exception nothing expects.
pub const UNEXPECTED_EXCEPTION_STATUS: u8 = 100;

/// The installed IRQ handler, a `fn(u32)` taking the acknowledged INTID, or 0.
/// Plain loads and stores only: exclusive accesses are not dependable with the
/// MMU off.
static IRQ_HANDLER: AtomicUsize = AtomicUsize::new(0);

/// Makes `handler` run for each interrupt the GIC CPU interface signals, with
/// the INTID it acknowledged; [`crate::gic`] acknowledges and ends it.
pub fn set_irq_handler(handler: fn(u32)) {
    IRQ_HANDLER.store(handler as usize, Ordering::Release);
}

// 16 slots of 0x80 bytes. Each saves x0/x1 into a 720-byte frame and branches to the common
// path with its slot number in x0. Frame: x0-x18, x29, x30, ELR, SPSR, FPSR, FPCR at 0..200,
// q0-q31 at 208..720 (the handler is Rust code that may use any caller-saved register).
global_asm!(
    ".section .text.axvm_vectors, \"ax\"",
    ".balign 2048",
    ".global axvm_vectors",
    "axvm_vectors:",
    ".irp slot, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15",
    ".balign 0x80",
    "    sub sp, sp, #720",
    "    stp x0, x1, [sp]",
    "    mov x0, #\\slot",
    "    b axvm_exception_common",
    ".endr",
    "",
    "axvm_exception_common:",
    "    stp x2, x3, [sp, #16]",
    "    stp x4, x5, [sp, #32]",
    "    stp x6, x7, [sp, #48]",
    "    stp x8, x9, [sp, #64]",
    "    stp x10, x11, [sp, #80]",
    "    stp x12, x13, [sp, #96]",
    "    stp x14, x15, [sp, #112]",
    "    stp x16, x17, [sp, #128]",
    "    stp x18, x29, [sp, #144]",
    "    mrs x9, elr_el1",
    "    stp x30, x9, [sp, #160]",
    "    mrs x9, spsr_el1",
    "    mrs x10, fpsr",
    "    stp x9, x10, [sp, #176]",
    "    mrs x9, fpcr",
    "    str x9, [sp, #192]",
    "    add x9, sp, #208",
    "    stp q0, q1, [x9], #32",
    "    stp q2, q3, [x9], #32",
    "    stp q4, q5, [x9], #32",
    "    stp q6, q7, [x9], #32",
    "    stp q8, q9, [x9], #32",
    "    stp q10, q11, [x9], #32",
    "    stp q12, q13, [x9], #32",
    "    stp q14, q15, [x9], #32",
    "    stp q16, q17, [x9], #32",
    "    stp q18, q19, [x9], #32",
    "    stp q20, q21, [x9], #32",
    "    stp q22, q23, [x9], #32",
    "    stp q24, q25, [x9], #32",
    "    stp q26, q27, [x9], #32",
    "    stp q28, q29, [x9], #32",
    "    stp q30, q31, [x9], #32",
    "    bl {dispatch}",
    "    add x9, sp, #208",
    "    ldp q0, q1, [x9], #32",
    "    ldp q2, q3, [x9], #32",
    "    ldp q4, q5, [x9], #32",
    "    ldp q6, q7, [x9], #32",
    "    ldp q8, q9, [x9], #32",
    "    ldp q10, q11, [x9], #32",
    "    ldp q12, q13, [x9], #32",
    "    ldp q14, q15, [x9], #32",
    "    ldp q16, q17, [x9], #32",
    "    ldp q18, q19, [x9], #32",
    "    ldp q20, q21, [x9], #32",
    "    ldp q22, q23, [x9], #32",
    "    ldp q24, q25, [x9], #32",
    "    ldp q26, q27, [x9], #32",
    "    ldp q28, q29, [x9], #32",
    "    ldp q30, q31, [x9], #32",
    "    ldr x9, [sp, #192]",
    "    msr fpcr, x9",
    "    ldp x9, x10, [sp, #176]",
    "    msr spsr_el1, x9",
    "    msr fpsr, x10",
    "    ldp x30, x9, [sp, #160]",
    "    msr elr_el1, x9",
    "    ldp x18, x29, [sp, #144]",
    "    ldp x16, x17, [sp, #128]",
    "    ldp x14, x15, [sp, #112]",
    "    ldp x12, x13, [sp, #96]",
    "    ldp x10, x11, [sp, #80]",
    "    ldp x8, x9, [sp, #64]",
    "    ldp x6, x7, [sp, #48]",
    "    ldp x4, x5, [sp, #32]",
    "    ldp x2, x3, [sp, #16]",
    "    ldp x0, x1, [sp]",
    "    add sp, sp, #720",
    "    eret",
    dispatch = sym axvm_exception,
);

/// Vector slot of a synchronous exception from EL1 with SP_EL1 (this guest's own code).
const SLOT_SYNC_CURRENT_EL: u64 = 4;
/// Vector slot of an IRQ taken from EL1 with SP_EL1.
const SLOT_IRQ_CURRENT_EL: u64 = 5;

/// Called by the vector table with the slot taken. Returns only for an IRQ.
extern "C" fn axvm_exception(slot: u64) {
    match slot {
        SLOT_IRQ_CURRENT_EL => crate::gic::handle_irq(irq_handler()),
        SLOT_SYNC_CURRENT_EL => synchronous_exception(),
        _ => {
            crate::println!("guest exception: unexpected vector slot {slot}");
            exit::exit(UNEXPECTED_EXCEPTION_STATUS)
        }
    }
}

fn irq_handler() -> Option<fn(u32)> {
    let handler = IRQ_HANDLER.load(Ordering::Acquire);
    // SAFETY: only `set_irq_handler` stores a non-zero value, and it stores a `fn(u32)`.
    (handler != 0).then(|| unsafe { core::mem::transmute::<usize, fn(u32)>(handler) })
}

fn synchronous_exception() -> ! {
    let (esr, elr, far): (u64, u64, u64);
    // SAFETY: reading the exception syndrome registers has no side effect.
    unsafe {
        core::arch::asm!(
            "mrs {esr}, esr_el1",
            "mrs {elr}, elr_el1",
            "mrs {far}, far_el1",
            esr = out(reg) esr,
            elr = out(reg) elr,
            far = out(reg) far,
            options(nomem, nostack),
        );
    }
    if elr == exit::exit_store_address() {
        exit::no_exit_device()
    }
    crate::println!("guest exception: ESR_EL1 {esr:#x} ELR_EL1 {elr:#x} FAR_EL1 {far:#x}");
    exit::exit(UNEXPECTED_EXCEPTION_STATUS)
}
