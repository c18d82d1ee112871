//! axvm's wake-up guest: a vCPU halted with interrupts on is woken by an interrupt the host
//! delivers to its local APIC (`AxVM::inject_interrupt_to_vcpu`), and, with a second vCPU,
//! by an IPI that vCPU 0 sends through its local APIC.
//!
//! vCPU 0 registers a handler for vectors [`FIRST_VECTOR`]..=[`LAST_VECTOR`], loads the
//! IDT, masks the 8259 PICs, enables its local APIC and prints
//! `wakeup: waiting for an interrupt`; it then halts (`sti; hlt`) until the handler has
//! run, with no deadline of its own (the host test has one), and prints
//! `wakeup: woken by vector 0x40` (whichever vector came).
//!
//! If a vCPU 1 runs (`wakeup-smp.toml`), it prepares the same way, reports ready and halts;
//! after its own wake-up vCPU 0 sends it [`IPI_VECTOR`], and vCPU 1 prints
//! `wakeup: IPI received on vCPU 1 (vector 0x41)`. Then vCPU 0 exits 0.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use rt::cpu::{halt_forever, pause, rdtsc};
use rt::interrupts::{self, lapic, pic, InterruptFrame};
use rt::{exit, println, MAX_VCPUS};

rt::entry!(main);

/// The vectors that count as a wake-up: the host test injects the first.
const FIRST_VECTOR: u8 = 0x40;
const LAST_VECTOR: u8 = 0x4f;
/// The vector vCPU 0 sends vCPU 1.
const IPI_VECTOR: u8 = 0x41;

/// After its own wake-up, how long vCPU 0 gives a vCPU 1 that has not shown up yet to do
/// so, in TSC ticks (about 0.1 s at 3 GHz). vCPU 1 starts with vCPU 0 and marks itself
/// present first thing, long before the host has seen vCPU 0's line and injected, so this
/// only costs a VM without vCPU 1 that long.
const AP_GRACE_TSC: u64 = 1 << 28;
/// How long vCPU 0 waits for vCPU 1 to get ready, then to take the IPI (about 3 s at
/// 3 GHz each).
const AP_TIMEOUT_TSC: u64 = 1 << 33;

/// Exit statuses.
const STATUS_AP_NOT_READY: u8 = 3;
const STATUS_NO_IPI: u8 = 4;
const STATUS_WRONG_IPI_VECTOR: u8 = 5;

/// The vector that woke each vCPU (indexed by local APIC ID); 0 = not woken yet.
static WOKEN_BY: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];
/// vCPU 1 runs.
static AP_PRESENT: AtomicBool = AtomicBool::new(false);
/// vCPU 1 has its IDT and local APIC ready and is about to halt.
static AP_READY: AtomicBool = AtomicBool::new(false);
/// vCPU 1 has printed what woke it.
static AP_DONE: AtomicBool = AtomicBool::new(false);

fn on_wakeup(frame: &InterruptFrame) {
    let apic_id = lapic::id() as usize;
    if let Some(slot) = WOKEN_BY.get(apic_id) {
        slot.store(frame.vector as u32, Ordering::Release);
    }
    lapic::eoi();
}

fn main(vcpu_id: u32) -> ! {
    match vcpu_id {
        0 => bsp(),
        1 => ap(),
        _ => halt_forever(),
    }
}

/// Handlers, IDT, local APIC: what each vCPU does before it can be woken.
fn prepare() {
    for vector in FIRST_VECTOR..=LAST_VECTOR {
        interrupts::set_handler(vector, on_wakeup);
    }
    interrupts::load_idt();
    lapic::enable();
}

/// Halts with interrupts on until the handler has run on this vCPU; returns the vector.
fn wait_for_wakeup(vcpu_id: usize) -> u32 {
    loop {
        let vector = WOKEN_BY[vcpu_id].load(Ordering::Acquire);
        if vector != 0 {
            return vector;
        }
        interrupts::wait();
    }
}

fn bsp() -> ! {
    prepare();
    pic::mask_all();
    println!("wakeup: waiting for an interrupt");
    let vector = wait_for_wakeup(0);
    println!("wakeup: woken by vector {vector:#x}");
    if ap_present() {
        ipi_to_ap();
    }
    exit(0)
}

/// Whether vCPU 1 runs, giving it [`AP_GRACE_TSC`] to show up.
fn ap_present() -> bool {
    let start = rdtsc();
    while !AP_PRESENT.load(Ordering::Acquire) {
        if rdtsc().wrapping_sub(start) > AP_GRACE_TSC {
            return false;
        }
        pause();
    }
    true
}

/// Sends vCPU 1 the IPI once it is ready and waits until it has reported it.
fn ipi_to_ap() {
    wait_for(
        "vCPU 1 did not get ready to take an IPI",
        &AP_READY,
        STATUS_AP_NOT_READY,
    );
    lapic::send_ipi(1, IPI_VECTOR);
    wait_for("vCPU 1 did not report the IPI", &AP_DONE, STATUS_NO_IPI);
    let got = WOKEN_BY[1].load(Ordering::Acquire);
    if got != u32::from(IPI_VECTOR) {
        println!("FAIL: vCPU 1 woken by vector expected {IPI_VECTOR:#x} got {got:#x}");
        exit(STATUS_WRONG_IPI_VECTOR);
    }
}

fn wait_for(what: &str, flag: &AtomicBool, status: u8) {
    let start = rdtsc();
    while !flag.load(Ordering::Acquire) {
        if rdtsc().wrapping_sub(start) > AP_TIMEOUT_TSC {
            println!("FAIL: {what}");
            exit(status);
        }
        pause();
    }
}

fn ap() -> ! {
    AP_PRESENT.store(true, Ordering::Release);
    prepare();
    AP_READY.store(true, Ordering::Release);
    let vector = wait_for_wakeup(1);
    if vector == u32::from(IPI_VECTOR) {
        println!("wakeup: IPI received on vCPU 1 (vector {vector:#x})");
    } else {
        println!("wakeup: vCPU 1 woken by vector {vector:#x}");
    }
    AP_DONE.store(true, Ordering::Release);
    halt_forever()
}
