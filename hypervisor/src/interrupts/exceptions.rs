//! The exception report: what a CPU exception looked like (vector, error code, RIP, CR2, every
//! general register), printed on the console, then QEMU exits with [`EXCEPTION_STATUS`]. The
//! kernel has no exception it recovers from.

use core::fmt::Write;

use crate::{console, cpu, qemu, smp};

/// The exit status after an exception (and after a panic).
pub const EXCEPTION_STATUS: u8 = 0xfe;

/// The stack as the common stub leaves it: the registers it pushed (R15 lowest), the vector
/// and error code the entry stub pushed, then the CPU's interrupt frame.
#[repr(C)]
#[allow(missing_docs)]
pub struct Frame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const NAMES: [&str; 32] = [
    "divide error (#DE)",
    "debug (#DB)",
    "NMI",
    "breakpoint (#BP)",
    "overflow (#OF)",
    "bound range (#BR)",
    "invalid opcode (#UD)",
    "device not available (#NM)",
    "double fault (#DF)",
    "coprocessor segment overrun",
    "invalid TSS (#TS)",
    "segment not present (#NP)",
    "stack fault (#SS)",
    "general protection (#GP)",
    "page fault (#PF)",
    "reserved",
    "x87 floating point (#MF)",
    "alignment check (#AC)",
    "machine check (#MC)",
    "SIMD floating point (#XM)",
    "virtualization (#VE)",
    "control protection (#CP)",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "reserved",
    "hypervisor injection (#HV)",
    "VMM communication (#VC)",
    "security (#SX)",
    "reserved",
];

/// Prints the report for `frame` and exits QEMU. Called by the common stub with interrupts
/// off; takes no lock (the failing CPU may hold the console's).
pub extern "C" fn report(frame: &Frame) -> ! {
    let mut out = console::emergency_writer();
    let p = console::PREFIX;
    let name = usize::try_from(frame.vector)
        .ok()
        .and_then(|v| NAMES.get(v))
        .unwrap_or(&"?");
    let _ = writeln!(
        out,
        "\n{p}EXCEPTION on cpu {}: vector {} {name}, error code {:#x}",
        smp::this_cpu(),
        frame.vector,
        frame.error_code
    );
    if frame.vector == 11 && frame.error_code & 2 != 0 {
        let _ = writeln!(
            out,
            "{p}  (no IDT gate for vector {:#x}: an unexpected interrupt)",
            frame.error_code >> 3
        );
    }
    let _ = writeln!(
        out,
        "{p}  rip {:#018x} cs {:#x} rflags {:#x} rsp {:#018x} ss {:#x}",
        frame.rip, frame.cs, frame.rflags, frame.rsp, frame.ss
    );
    let _ = writeln!(out, "{p}  cr2 {:#018x}", cpu::cr2());
    let rows = [
        [
            ("rax", frame.rax),
            ("rbx", frame.rbx),
            ("rcx", frame.rcx),
            ("rdx", frame.rdx),
        ],
        [
            ("rsi", frame.rsi),
            ("rdi", frame.rdi),
            ("rbp", frame.rbp),
            ("r8 ", frame.r8),
        ],
        [
            ("r9 ", frame.r9),
            ("r10", frame.r10),
            ("r11", frame.r11),
            ("r12", frame.r12),
        ],
    ];
    for row in rows {
        let _ = write!(out, "{p} ");
        for (name, value) in row {
            let _ = write!(out, " {name} {value:#018x}");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "{p}  r13 {:#018x} r14 {:#018x} r15 {:#018x}",
        frame.r13, frame.r14, frame.r15
    );
    qemu::exit(EXCEPTION_STATUS)
}
