//! The local APIC (xAPIC, memory-mapped at its default base) and the legacy 8259 PICs.
//!
//! The kernel uses the APIC for inter-processor interrupts only: INIT-SIPI-SIPI to start the
//! APs and the kick IPI ([`KICK_VECTOR`]) that wakes a CPU halted with interrupts on (a vCPU
//! loop waiting for work, or one that should leave guest mode: a physical interrupt arriving
//! while a guest runs causes `#VMEXIT(INTR)` when the VMCB intercepts INTR). The PICs are
//! remapped away from the exception vectors and masked: no legacy IRQ reaches the kernel.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::{cpu, mm, smp, time};

/// The xAPIC's physical base after reset (QEMU never moves it; [`init`] checks).
pub const DEFAULT_BASE: u64 = 0xfee0_0000;
/// The EOI register's offset.
pub const EOI_REGISTER: u64 = 0xb0;
/// The vector of the kick IPI: its handler only acknowledges it.
pub const KICK_VECTOR: u8 = 0xf0;
/// The spurious-interrupt vector (its low four bits must be ones on old APICs).
pub const SPURIOUS_VECTOR: u8 = 0xff;

const IA32_APIC_BASE: u32 = 0x1b;
const APIC_BASE_ENABLE: u64 = 1 << 11;
const APIC_BASE_X2APIC: u64 = 1 << 10;
const ID: u64 = 0x20;
const TASK_PRIORITY: u64 = 0x80;
const SPURIOUS: u64 = 0xf0;
const SPURIOUS_ENABLE: u32 = 1 << 8;
const ICR_LOW: u64 = 0x300;
const ICR_HIGH: u64 = 0x310;
const ICR_PENDING: u32 = 1 << 12;
const ICR_ASSERT: u32 = 1 << 14;
const ICR_FIXED: u32 = 0;
const ICR_INIT: u32 = 0b101 << 8;
const ICR_STARTUP: u32 = 0b110 << 8;
const LVT_TIMER: u64 = 0x320;
const TIMER_INITIAL: u64 = 0x380;
const TIMER_CURRENT: u64 = 0x390;
const TIMER_DIVIDE: u64 = 0x3e0;
/// Divide configuration 0b1011: the timer counts at the bus clock itself.
const DIVIDE_BY_1: u32 = 0b1011;
/// How long [`calibrate_timer`] measures.
const CALIBRATION_US: u64 = 5_000;
/// The timer's ticks per millisecond, measured at boot (0 before).
static TIMER_TICKS_PER_MS: AtomicU64 = AtomicU64::new(0);
/// How long an IPI may stay undelivered before the sender gives up.
const DELIVERY_TIMEOUT_NS: u64 = 100_000_000;

/// The 8259 PICs' command and data ports, and the vectors they are moved to.
const PIC1: u16 = 0x20;
const PIC2: u16 = 0xa0;
const PIC1_VECTORS: u8 = 0x20;
const PIC2_VECTORS: u8 = 0x28;

fn read(register: u64) -> u32 {
    // SAFETY: an aligned 32-bit read of a local APIC register (identity-mapped, uncached).
    unsafe { core::ptr::read_volatile(mm::phys_to_virt(DEFAULT_BASE + register).cast::<u32>()) }
}

fn write(register: u64, value: u32) {
    // SAFETY: an aligned 32-bit write of a local APIC register; callers pick the register.
    unsafe {
        core::ptr::write_volatile(
            mm::phys_to_virt(DEFAULT_BASE + register).cast::<u32>(),
            value,
        )
    }
}

/// Checks that this CPU's APIC is an enabled xAPIC at [`DEFAULT_BASE`] (what the kernel's
/// register accesses assume), then software-enables it with the spurious vector and accepts
/// every priority. Panics, naming the MSR value, when the firmware left something else.
pub fn init() {
    // SAFETY: IA32_APIC_BASE exists on every CPU with an APIC, which CPUID leaf 1 promised.
    let base = unsafe { cpu::rdmsr(IA32_APIC_BASE) };
    if base & !0xfff != DEFAULT_BASE || base & APIC_BASE_ENABLE == 0 || base & APIC_BASE_X2APIC != 0
    {
        panic!(
            "IA32_APIC_BASE = {base:#x}: the kernel needs an enabled xAPIC at {DEFAULT_BASE:#x}"
        );
    }
    write(TASK_PRIORITY, 0);
    write(SPURIOUS, SPURIOUS_ENABLE | u32::from(SPURIOUS_VECTOR));
}

/// This CPU's local APIC ID.
pub fn id() -> u8 {
    (read(ID) >> 24) as u8
}

/// Acknowledges the interrupt being handled.
pub fn eoi() {
    write(EOI_REGISTER, 0);
}

/// Sends `command` to the APIC `apic_id` and waits until this APIC has delivered it. `false`
/// when it stayed pending for [`DELIVERY_TIMEOUT_NS`].
fn send(apic_id: u8, command: u32) -> bool {
    write(ICR_HIGH, u32::from(apic_id) << 24);
    write(ICR_LOW, command);
    let deadline = time::now_nanos().saturating_add(DELIVERY_TIMEOUT_NS);
    while read(ICR_LOW) & ICR_PENDING != 0 {
        if time::now_nanos() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Sends the fixed interrupt `vector` to CPU `cpu` (a [`smp::this_cpu`] number). `false` when
/// there is no such CPU or its APIC did not accept it. Interrupt handlers must not call this
/// (the ICR is written in two halves).
pub fn send_ipi(cpu: usize, vector: u8) -> bool {
    match smp::apic_id_of(cpu) {
        Some(apic_id) => send(apic_id, ICR_FIXED | ICR_ASSERT | u32::from(vector)),
        None => false,
    }
}

/// INIT to the APIC `apic_id` (an AP waiting to be started).
pub fn send_init(apic_id: u8) -> bool {
    send(apic_id, ICR_INIT | ICR_ASSERT)
}

/// A start-up IPI to `apic_id`: it starts in real mode at page `vector` (address vector << 12).
pub fn send_startup(apic_id: u8, vector: u8) -> bool {
    send(apic_id, ICR_STARTUP | ICR_ASSERT | u32::from(vector))
}

/// Measures this CPU's APIC timer against the TSC (after [`time::calibrate`]), for
/// [`arm_timer`]. Every CPU's timer runs at the same bus clock, so the BSP measures once.
pub fn calibrate_timer() -> u64 {
    write(TIMER_DIVIDE, DIVIDE_BY_1);
    write(LVT_TIMER, (1 << 16) | u32::from(KICK_VECTOR));
    write(TIMER_INITIAL, u32::MAX);
    time::delay_us(CALIBRATION_US);
    let elapsed = u64::from(u32::MAX - read(TIMER_CURRENT));
    write(TIMER_INITIAL, 0);
    let per_ms = (elapsed * 1000 / CALIBRATION_US).max(1);
    TIMER_TICKS_PER_MS.store(per_ms, Ordering::Relaxed);
    per_ms
}

/// Makes this CPU's APIC timer raise [`KICK_VECTOR`] once `nanos` from now (the one-shot
/// deadline of a virtual timer: a guest running or a halted vCPU loop then gets control
/// back), replacing any earlier one; `None` stops it.
pub fn arm_timer(nanos: Option<u64>) {
    let Some(nanos) = nanos else {
        write(TIMER_INITIAL, 0);
        return;
    };
    let per_ms = TIMER_TICKS_PER_MS.load(Ordering::Relaxed).max(1);
    let ticks = (u128::from(nanos) * u128::from(per_ms) / 1_000_000).clamp(1, u128::from(u32::MAX));
    write(TIMER_DIVIDE, DIVIDE_BY_1);
    write(LVT_TIMER, u32::from(KICK_VECTOR));
    write(TIMER_INITIAL, ticks as u32);
}

/// Moves the two 8259 PICs to vectors 0x20-0x2f (so a spurious IRQ 7 cannot look like an
/// exception) and masks every line.
pub fn disable_legacy_pic() {
    let sequence: [(u16, u8); 10] = [
        (PIC1, 0x11), // ICW1: initialise, ICW4 follows
        (PIC2, 0x11),
        (PIC1 + 1, PIC1_VECTORS), // ICW2: vector base
        (PIC2 + 1, PIC2_VECTORS),
        (PIC1 + 1, 0x04), // ICW3: slave on IRQ 2
        (PIC2 + 1, 0x02), // ICW3: slave identity
        (PIC1 + 1, 0x01), // ICW4: 8086 mode
        (PIC2 + 1, 0x01),
        (PIC1 + 1, 0xff), // mask everything
        (PIC2 + 1, 0xff),
    ];
    for (port, value) in sequence {
        // SAFETY: the PICs' own ports; the kernel is their only user.
        unsafe { cpu::outb(port, value) };
    }
}
