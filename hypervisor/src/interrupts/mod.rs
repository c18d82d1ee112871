//! The interrupt descriptor table every CPU loads: the 32 exception vectors, which report and
//! stop the machine ([`exceptions`]); the kick IPI ([`crate::apic::KICK_VECTOR`]), whose handler
//! only acknowledges it; and the local APIC's spurious vector, ignored. Any other vector has no
//! gate, so an unexpected interrupt raises #NP (vector 11) with the vector in its error code
//! (`vector * 8 + 2`) and is reported like an exception.
//!
//! The handlers need no red zone care: the x86_64-unknown-none target compiles without one.
//! Interrupts stay disabled after bring-up; see [`crate::cpu::enable_interrupts`].

pub mod exceptions;

use core::arch::{asm, global_asm};
use core::mem::size_of;

use spin::Once;

use crate::apic;

/// The kernel's 64-bit code selector (the GDT of [`crate::boot::entry`]).
const KERNEL_CS: u16 = 0x08;
/// Gate type: present, DPL 0, 64-bit interrupt gate (IF cleared on entry).
const INTERRUPT_GATE: u8 = 0x8e;

/// One IDT gate, as the CPU reads it.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const ABSENT: Self = Self {
        offset_low: 0,
        selector: 0,
        ist: 0,
        attributes: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn to(handler: u64) -> Self {
        Self {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist: 0,
            attributes: INTERRUPT_GATE,
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

/// What `lidt` loads.
#[repr(C, packed)]
struct IdtPointer {
    limit: u16,
    base: u64,
}

static IDT: Once<[Gate; 256]> = Once::new();

extern "C" {
    /// The 32 exception entry stubs, in vector order.
    static hv_exception_stubs: [u64; 32];
    fn hv_kick_entry();
    fn hv_spurious_entry();
}

// Each exception stub pushes a zero where the CPU pushes no error code (all but #DF, #TS, #NP,
// #SS, #GP, #PF, #AC, #CP, #VC, #SX: the second macro argument), then the vector, so
// the common path always sees the same frame (`exceptions::Frame`).
global_asm!(
    ".macro HV_EXCEPTION vector, error_code",
    "hv_exception_\\vector:",
    ".if \\error_code == 0",
    "    push 0",
    ".endif",
    "    push \\vector",
    "    jmp hv_exception_common",
    ".endm",
    ".pushsection .text.hv_interrupts, \"ax\"",
    "HV_EXCEPTION 0, 0",
    "HV_EXCEPTION 1, 0",
    "HV_EXCEPTION 2, 0",
    "HV_EXCEPTION 3, 0",
    "HV_EXCEPTION 4, 0",
    "HV_EXCEPTION 5, 0",
    "HV_EXCEPTION 6, 0",
    "HV_EXCEPTION 7, 0",
    "HV_EXCEPTION 8, 1",
    "HV_EXCEPTION 9, 0",
    "HV_EXCEPTION 10, 1",
    "HV_EXCEPTION 11, 1",
    "HV_EXCEPTION 12, 1",
    "HV_EXCEPTION 13, 1",
    "HV_EXCEPTION 14, 1",
    "HV_EXCEPTION 15, 0",
    "HV_EXCEPTION 16, 0",
    "HV_EXCEPTION 17, 1",
    "HV_EXCEPTION 18, 0",
    "HV_EXCEPTION 19, 0",
    "HV_EXCEPTION 20, 0",
    "HV_EXCEPTION 21, 1",
    "HV_EXCEPTION 22, 0",
    "HV_EXCEPTION 23, 0",
    "HV_EXCEPTION 24, 0",
    "HV_EXCEPTION 25, 0",
    "HV_EXCEPTION 26, 0",
    "HV_EXCEPTION 27, 0",
    "HV_EXCEPTION 28, 0",
    "HV_EXCEPTION 29, 1",
    "HV_EXCEPTION 30, 1",
    "HV_EXCEPTION 31, 0",
    // Saves every general register (the report prints them), then calls the report, which
    // never returns, on a 16-byte aligned stack.
    "hv_exception_common:",
    "    push rax",
    "    push rbx",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push rbp",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    mov rdi, rsp",
    "    and rsp, -16",
    "    call {report}",
    "    ud2",
    // The kick IPI only wakes a halted CPU: acknowledge it (a write of 0 to the local APIC's
    // EOI register) and return. RAX is the one register touched.
    "hv_kick_entry:",
    "    push rax",
    "    mov eax, {eoi}",
    "    mov dword ptr [rax], 0",
    "    pop rax",
    "    iretq",
    // A spurious APIC interrupt needs no EOI.
    "hv_spurious_entry:",
    "    iretq",
    ".popsection",
    ".pushsection .rodata.hv_interrupts, \"a\"",
    ".balign 8",
    "hv_exception_stubs:",
    "    .quad hv_exception_0, hv_exception_1, hv_exception_2, hv_exception_3",
    "    .quad hv_exception_4, hv_exception_5, hv_exception_6, hv_exception_7",
    "    .quad hv_exception_8, hv_exception_9, hv_exception_10, hv_exception_11",
    "    .quad hv_exception_12, hv_exception_13, hv_exception_14, hv_exception_15",
    "    .quad hv_exception_16, hv_exception_17, hv_exception_18, hv_exception_19",
    "    .quad hv_exception_20, hv_exception_21, hv_exception_22, hv_exception_23",
    "    .quad hv_exception_24, hv_exception_25, hv_exception_26, hv_exception_27",
    "    .quad hv_exception_28, hv_exception_29, hv_exception_30, hv_exception_31",
    ".popsection",
    report = sym exceptions::report,
    eoi = const apic::DEFAULT_BASE + apic::EOI_REGISTER,
);

fn build_idt() -> [Gate; 256] {
    let mut idt = [Gate::ABSENT; 256];
    // SAFETY: a table of 32 code addresses defined in the assembly above.
    let stubs = unsafe { &*core::ptr::addr_of!(hv_exception_stubs) };
    for (gate, &stub) in idt.iter_mut().zip(stubs) {
        *gate = Gate::to(stub);
    }
    idt[usize::from(apic::KICK_VECTOR)] = Gate::to(hv_kick_entry as *const () as u64);
    idt[usize::from(apic::SPURIOUS_VECTOR)] = Gate::to(hv_spurious_entry as *const () as u64);
    idt
}

/// Loads the IDT on this CPU (building it on first use). Interrupts stay as they are.
pub fn load() {
    let idt = IDT.call_once(build_idt);
    let pointer = IdtPointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: idt.as_ptr() as u64,
    };
    // SAFETY: the IDT is a static that lives forever and its gates point at valid handlers.
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}
