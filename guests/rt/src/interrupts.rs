//! Interrupts in long mode: an IDT whose 256 gates all lead to Rust handlers, the local
//! APIC (xAPIC, MMIO at 0xfee00000), the IOAPIC (0xfec00000) and the two legacy 8259 PICs.
//!
//! Usage: register handlers with [`set_handler`], load the IDT on each vCPU with
//! [`load_idt`], mask the PICs ([`pic::mask_all`]), enable the local APIC
//! ([`lapic::enable`]), route IOAPIC pins ([`ioapic::route`]), then sleep with [`wait`]
//! until a handler has done what is wanted. A handler of an APIC-delivered interrupt ends
//! it with [`lapic::eoi`]. Vectors without a handler panic (exceptions 0-31 included, so a
//! fault prints `guest panic: ...` and exits 0xff instead of triple-faulting), except the
//! local APIC's spurious vector, [`SPURIOUS_VECTOR`], which is ignored as it must be.
//!
//! # Interrupts are only enabled inside [`wait`]
//!
//! The guests are built for `x86_64-unknown-linux-gnu`, whose ABI lets a leaf function keep
//! data in the 128-byte "red zone" below RSP. An interrupt taken at CPL0 pushes its frame
//! right there, so it would corrupt such data. The red zone cannot be switched off for the
//! precompiled `core` (`-C no-redzone` only applies to our own crates), so interrupts are
//! never enabled in Rust code: [`wait`] is an assembly function, called (not inlined, so
//! its caller is not a leaf and keeps nothing below RSP) that runs `sti; hlt; cli`. The
//! `sti` interrupt shadow covers the `hlt`, so an interrupt is only ever taken while
//! halted, with the return address at the `cli`: a pending one wakes the `hlt` at once and
//! none is lost between a check and the `hlt`. Handlers run with interrupts off (the gates
//! are interrupt gates), on the interrupted stack.
//!
//! Handlers are plain Rust; the stubs save the caller-saved general registers (the only
//! state a Rust function may clobber, as the guests are compiled without SSE and never
//! touch the FPU) and return with `iretq`.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::cpu::pause;

/// What an interrupt stub pushed and the CPU saved, as the handler sees it.
#[repr(C)]
#[derive(Debug)]
pub struct InterruptFrame {
    /// The vector (0-255).
    pub vector: u64,
    /// The exception's error code; 0 for vectors that have none.
    pub error_code: u64,
    /// Where the interrupted code resumes.
    pub rip: u64,
    /// Its code segment selector.
    pub cs: u64,
    /// Its RFLAGS.
    pub rflags: u64,
    /// Its stack pointer.
    pub rsp: u64,
    /// Its stack segment selector.
    pub ss: u64,
}

/// An interrupt handler. It runs with interrupts off and must end an APIC-delivered
/// interrupt with [`lapic::eoi`].
pub type Handler = fn(&InterruptFrame);

/// The local APIC's spurious-interrupt vector, which [`lapic::enable`] programs. Spurious
/// interrupts need no EOI and are ignored.
pub const SPURIOUS_VECTOR: u8 = 0xff;

/// The registered handlers, as `Handler` pointers cast to `usize`; 0 = none.
static HANDLERS: [AtomicUsize; 256] = [const { AtomicUsize::new(0) }; 256];

/// Sets the handler of `vector`, replacing any earlier one. May be called before or after
/// [`load_idt`], from any vCPU.
pub fn set_handler(vector: u8, handler: Handler) {
    HANDLERS[usize::from(vector)].store(handler as usize, Ordering::Release);
}

/// Called by the common stub with a pointer to the frame on the interrupted stack.
extern "C" fn dispatch(frame: &InterruptFrame) {
    let raw = HANDLERS[frame.vector as usize & 0xff].load(Ordering::Acquire);
    if raw != 0 {
        // SAFETY: only `set_handler` stores non-zero values, each a `Handler`.
        let handler: Handler = unsafe { core::mem::transmute::<usize, Handler>(raw) };
        handler(frame);
    } else if frame.vector != u64::from(SPURIOUS_VECTOR) {
        let kind = if frame.vector < 32 {
            "exception"
        } else {
            "interrupt"
        };
        panic!(
            "unexpected {kind} vector {:#x}, error code {:#x}, at rip {:#x} (rsp {:#x})",
            frame.vector, frame.error_code, frame.rip, frame.rsp
        );
    }
}

// One 16-byte stub per vector, at `rt_interrupt_stubs + 16 * vector`. Each pushes a zero
// error code where the CPU pushes none (so every frame has the same shape), then the
// vector, and jumps to the common part, which saves the caller-saved registers, aligns
// the stack for the call (the CPU only guarantees 8 bytes) and calls `dispatch`.
// The section is only kept by the linker (--gc-sections) in guests that load the IDT.
global_asm!(
    ".pushsection .text.rt_interrupts, \"ax\", @progbits",
    ".balign 16",
    ".global rt_interrupt_stubs",
    "rt_interrupt_stubs:",
    "rt_vector = 0",
    ".rept 256",
    "    .balign 16",
    // Exceptions with an error code: #DF 8, #TS 10, #NP 11, #SS 12, #GP 13, #PF 14,
    // #AC 17, #CP 21, #VC 29, #SX 30.
    "    .if rt_vector == 8 || (rt_vector >= 10 && rt_vector <= 14) || rt_vector == 17 || rt_vector == 21 || rt_vector == 29 || rt_vector == 30",
    "    .else",
    "    push 0",
    "    .endif",
    "    push rt_vector",
    "    jmp rt_interrupt_common",
    "    rt_vector = rt_vector + 1",
    ".endr",
    "rt_interrupt_common:",
    "    push rax",
    "    push rcx",
    "    push rdx",
    "    push rsi",
    "    push rdi",
    "    push r8",
    "    push r9",
    "    push r10",
    "    push r11",
    "    push rbp",
    "    mov rbp, rsp",
    // The frame (vector, error code, then what the CPU pushed) is above the 10 saves.
    "    lea rdi, [rsp + 80]",
    "    and rsp, -16",
    "    cld",
    "    call {dispatch}",
    "    mov rsp, rbp",
    "    pop rbp",
    "    pop r11",
    "    pop r10",
    "    pop r9",
    "    pop r8",
    "    pop rdi",
    "    pop rsi",
    "    pop rdx",
    "    pop rcx",
    "    pop rax",
    // Drop the vector and the error code.
    "    add rsp, 16",
    "    iretq",
    ".popsection",
    dispatch = sym dispatch,
);

// `wait`: see the module documentation for why this is assembly.
global_asm!(
    ".pushsection .text.rt_interrupts_wait, \"ax\", @progbits",
    ".global rt_interrupts_wait",
    ".type rt_interrupts_wait, @function",
    "rt_interrupts_wait:",
    "    sti",
    "    hlt",
    "    cli",
    "    ret",
    ".size rt_interrupts_wait, . - rt_interrupts_wait",
    ".popsection",
);

extern "C" {
    static rt_interrupt_stubs: u8;
    fn rt_interrupts_wait();
}

/// Bytes per stub in `rt_interrupt_stubs`.
const STUB_SIZE: u64 = 16;

/// Halts this vCPU with interrupts enabled until an interrupt has been handled, then
/// returns with interrupts disabled again. An interrupt that became pending while they
/// were off is handled at once.
///
/// Typical use, which cannot miss the interrupt it waits for:
///
/// ```ignore
/// while !DONE.load(Ordering::Acquire) {
///     rt::interrupts::wait();
/// }
/// ```
#[inline]
pub fn wait() {
    // SAFETY: `sti; hlt; cli; ret`; handlers save what they use. The IDT must be loaded,
    // which is the caller's business: without one, an interrupt is a triple fault.
    unsafe { rt_interrupts_wait() }
}

/// One IDT gate: two quadwords.
#[repr(C, align(16))]
struct Idt([[u64; 2]; 256]);

static mut IDT: Idt = Idt([[0; 2]; 256]);

/// `IDT_STATE` values: nobody has started writing the gates, one vCPU is writing them,
/// they are written.
const IDT_EMPTY: u8 = 0;
const IDT_WRITING: u8 = 1;
const IDT_WRITTEN: u8 = 2;
static IDT_STATE: AtomicU8 = AtomicU8::new(IDT_EMPTY);

/// A present 64-bit interrupt gate at DPL 0 (type 0xE): interrupts stay off in handlers.
const INTERRUPT_GATE: u64 = 0x8e;

/// The current code segment selector, so the gates work whatever GDT the boot protocol
/// left (axvm's direct ELF start uses 0x08, Linux's boot protocol 0x10).
fn code_selector() -> u16 {
    let cs: u16;
    // SAFETY: reading CS has no effect.
    unsafe { asm!("mov {0:x}, cs", out(reg) cs, options(nomem, nostack, preserves_flags)) };
    cs
}

/// The gate for a handler at `offset` in segment `selector`.
fn gate(offset: u64, selector: u16) -> [u64; 2] {
    let low = (offset & 0xffff)
        | (u64::from(selector) << 16)
        | (INTERRUPT_GATE << 40)
        | (((offset >> 16) & 0xffff) << 48);
    [low, offset >> 32]
}

/// Loads the IDT on this vCPU (`lidt`), writing its 256 gates first if no vCPU has. Each
/// vCPU that takes interrupts calls this once; the table is shared.
pub fn load_idt() {
    match IDT_STATE.compare_exchange(IDT_EMPTY, IDT_WRITING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            let selector = code_selector();
            let stubs = core::ptr::addr_of!(rt_interrupt_stubs) as u64;
            // SAFETY: only the vCPU that won the exchange writes the table, and no vCPU
            // loads it until IDT_STATE says it is written.
            let idt = unsafe { &mut *core::ptr::addr_of_mut!(IDT) };
            for (vector, entry) in idt.0.iter_mut().enumerate() {
                *entry = gate(stubs + STUB_SIZE * vector as u64, selector);
            }
            IDT_STATE.store(IDT_WRITTEN, Ordering::Release);
        }
        Err(_) => {
            while IDT_STATE.load(Ordering::Acquire) != IDT_WRITTEN {
                pause();
            }
        }
    }
    /// The `lidt` operand: limit, then the linear base address.
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: core::ptr::addr_of!(IDT) as u64,
    };
    // SAFETY: the table is complete and lives forever; every gate leads to a stub.
    unsafe {
        asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags));
    }
}

/// The local APIC in xAPIC mode: 32-bit registers at 16-byte intervals in the page at
/// [`lapic::BASE`], each vCPU seeing its own.
pub mod lapic {
    use crate::cpu::pause;
    use crate::io::{mmio_read, mmio_write};

    /// Physical (= virtual) base address of the local APIC page.
    pub const BASE: usize = 0xfee0_0000;
    /// Local APIC ID register; the ID is in bits 31:24.
    pub const ID: usize = 0x20;
    /// Version register.
    pub const VERSION: usize = 0x30;
    /// Task priority register: 0 lets every vector through.
    pub const TPR: usize = 0x80;
    /// End-of-interrupt register: write 0 when a handler is done.
    pub const EOI: usize = 0xb0;
    /// Spurious-interrupt vector register: bit 8 enables the APIC, bits 7:0 are the vector.
    pub const SVR: usize = 0xf0;
    /// Interrupt command register, low half: writing it sends the IPI.
    pub const ICR_LOW: usize = 0x300;
    /// Interrupt command register, high half: the destination APIC ID in bits 31:24.
    pub const ICR_HIGH: usize = 0x310;
    /// LVT entry of the APIC timer.
    pub const LVT_TIMER: usize = 0x320;
    /// Timer initial count: writing it starts the timer; 0 stops it.
    pub const TIMER_INITIAL_COUNT: usize = 0x380;
    /// Timer current count.
    pub const TIMER_CURRENT_COUNT: usize = 0x390;
    /// Timer divide configuration (see [`TIMER_DIVIDE_BY_16`]).
    pub const TIMER_DIVIDE: usize = 0x3e0;

    /// SVR bit 8: APIC software enable.
    pub const SVR_ENABLE: u32 = 1 << 8;
    /// ICR bit 12 (read): the last IPI has not been accepted yet.
    pub const ICR_SEND_PENDING: u32 = 1 << 12;
    /// ICR bit 14: level assert (required for every IPI but INIT de-assert).
    pub const ICR_ASSERT: u32 = 1 << 14;
    /// LVT bit 16: masked.
    pub const LVT_MASKED: u32 = 1 << 16;
    /// LVT timer bit 17: periodic rather than one-shot.
    pub const LVT_TIMER_PERIODIC: u32 = 1 << 17;
    /// Divide configuration value for a timer counting at the bus clock / 16.
    pub const TIMER_DIVIDE_BY_16: u32 = 0b0011;

    /// Reads register `reg` (an offset in the page) of this vCPU's local APIC.
    pub fn read(reg: usize) -> u32 {
        // SAFETY: the local APIC page is identity-mapped device memory; registers are
        // 16-byte aligned and read as 32 bits.
        unsafe { mmio_read::<u32>(BASE + reg) }
    }

    /// Writes register `reg` of this vCPU's local APIC.
    pub fn write(reg: usize, value: u32) {
        // SAFETY: as in `read`; what a write does is the caller's intent.
        unsafe { mmio_write::<u32>(BASE + reg, value) }
    }

    /// This vCPU's local APIC ID.
    pub fn id() -> u32 {
        read(ID) >> 24
    }

    /// Software-enables this vCPU's local APIC with [`SPURIOUS_VECTOR`](super::SPURIOUS_VECTOR)
    /// and a task priority of 0, so it accepts fixed interrupts of every vector. (After
    /// reset it is software-disabled and drops them.)
    pub fn enable() {
        write(TPR, 0);
        write(SVR, SVR_ENABLE | u32::from(super::SPURIOUS_VECTOR));
    }

    /// Signals the end of the interrupt being handled.
    pub fn eoi() {
        write(EOI, 0);
    }

    /// Sends a fixed interrupt of `vector` to the local APIC with ID `apic_id` (physical
    /// destination, edge, no shorthand) and waits until it has been accepted.
    pub fn send_ipi(apic_id: u8, vector: u8) {
        wait_for_icr_idle();
        write(ICR_HIGH, u32::from(apic_id) << 24);
        write(ICR_LOW, ICR_ASSERT | u32::from(vector));
        wait_for_icr_idle();
    }

    fn wait_for_icr_idle() {
        while read(ICR_LOW) & ICR_SEND_PENDING != 0 {
            pause();
        }
    }

    /// Starts the APIC timer in periodic mode: an interrupt of `vector` every
    /// `initial_count` ticks of the bus clock divided as `divide` says (e.g.
    /// [`TIMER_DIVIDE_BY_16`]). KVM's APIC bus runs at 1 GHz.
    pub fn start_periodic_timer(vector: u8, divide: u32, initial_count: u32) {
        write(TIMER_DIVIDE, divide);
        write(LVT_TIMER, LVT_TIMER_PERIODIC | u32::from(vector));
        write(TIMER_INITIAL_COUNT, initial_count);
    }

    /// Stops and masks the APIC timer.
    pub fn stop_timer() {
        write(LVT_TIMER, LVT_MASKED);
        write(TIMER_INITIAL_COUNT, 0);
    }
}

/// The IOAPIC at [`ioapic::BASE`]: an index register (IOREGSEL) and a data window (IOWIN),
/// through which each input pin's 64-bit redirection entry says where its interrupt goes.
pub mod ioapic {
    use core::sync::atomic::{AtomicBool, Ordering};

    use crate::cpu::pause;
    use crate::io::{mmio_read, mmio_write};

    /// Physical (= virtual) base address: IOREGSEL.
    pub const BASE: usize = 0xfec0_0000;
    /// IOWIN, the data window for the register IOREGSEL selects.
    pub const IOWIN: usize = BASE + 0x10;
    /// Register: IOAPIC ID.
    pub const REG_ID: u32 = 0x00;
    /// Register: version; bits 23:16 are the index of the last redirection entry.
    pub const REG_VERSION: u32 = 0x01;
    /// Register: low half of pin 0's redirection entry; pin n's is at `0x10 + 2n`, its
    /// high half (destination APIC ID in bits 31:24) at `0x11 + 2n`.
    pub const REG_REDIRECTION: u32 = 0x10;
    /// Redirection entry bit 16: masked.
    pub const MASKED: u32 = 1 << 16;

    /// IOREGSEL and IOWIN are one shared pair: a lock keeps two vCPUs from interleaving.
    static LOCK: AtomicBool = AtomicBool::new(false);

    fn locked<T>(f: impl FnOnce() -> T) -> T {
        while LOCK
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            pause();
        }
        let result = f();
        LOCK.store(false, Ordering::Release);
        result
    }

    fn select_and_read(reg: u32) -> u32 {
        // SAFETY: the IOAPIC page is identity-mapped device memory; both registers are
        // 32-bit and aligned.
        unsafe {
            mmio_write::<u32>(BASE, reg);
            mmio_read::<u32>(IOWIN)
        }
    }

    fn select_and_write(reg: u32, value: u32) {
        // SAFETY: as above.
        unsafe {
            mmio_write::<u32>(BASE, reg);
            mmio_write::<u32>(IOWIN, value);
        }
    }

    /// Reads IOAPIC register `reg`.
    pub fn read(reg: u32) -> u32 {
        locked(|| select_and_read(reg))
    }

    /// Writes IOAPIC register `reg`.
    pub fn write(reg: u32, value: u32) {
        locked(|| select_and_write(reg, value))
    }

    /// The number of input pins (redirection entries).
    pub fn pins() -> u32 {
        ((read(REG_VERSION) >> 16) & 0xff) + 1
    }

    /// Routes input `pin` to `vector` on the local APIC with ID `apic_id`: fixed delivery,
    /// physical destination, active high, edge-triggered, unmasked (ISA interrupts such as
    /// the PIT's). The destination is written before the entry is unmasked.
    pub fn route(pin: u8, vector: u8, apic_id: u8) {
        let reg = REG_REDIRECTION + 2 * u32::from(pin);
        locked(|| {
            select_and_write(reg, MASKED);
            select_and_write(reg + 1, u32::from(apic_id) << 24);
            select_and_write(reg, u32::from(vector));
        });
    }

    /// Masks input `pin`.
    pub fn mask(pin: u8) {
        write(REG_REDIRECTION + 2 * u32::from(pin), MASKED);
    }
}

/// The two legacy 8259 PICs (master at ports 0x20/0x21, slave at 0xa0/0xa1).
pub mod pic {
    use crate::io::outb;

    /// Master PIC data port: the interrupt mask register.
    pub const MASTER_DATA: u16 = 0x21;
    /// Slave PIC data port: the interrupt mask register.
    pub const SLAVE_DATA: u16 = 0xa1;

    /// Masks all 16 PIC inputs, so ISA interrupts reach the CPU through the IOAPIC only.
    pub fn mask_all() {
        // SAFETY: writing the mask registers only masks interrupts.
        unsafe {
            outb(MASTER_DATA, 0xff);
            outb(SLAVE_DATA, 0xff);
        }
    }
}
