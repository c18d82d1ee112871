//! The CPUs: finding them (the ACPI MADT), starting the APs with INIT-SIPI-SIPI, numbering
//! them densely (0 = the BSP, then the APs in the order they came up) and handing them work.
//!
//! After bring-up every AP is parked: it halts with interrupts enabled only inside
//! [`cpu::wait_for_interrupt`] and checks for work each time it wakes. [`run_on_aps`] publishes
//! a function and kicks every AP ([`apic::KICK_VECTOR`]); each calls it with its CPU number and
//! parks again if it returns. Interrupts are otherwise off on every CPU.

use core::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};

use crate::boot::entry::{self, AP_CPU, AP_STACK_TOP};
use crate::{acpi, apic, cpu, hv_println, interrupts, mm, svm, time};

/// The most CPUs the kernel runs on.
pub const MAX_CPUS: usize = 64;
/// Each AP's stack (from the frame allocator).
pub const AP_STACK_PAGES: usize = 16;
/// The MP specification's waits: after INIT, after each SIPI.
const INIT_WAIT_US: u64 = 10_000;
const SIPI_WAIT_US: u64 = 200;
/// How long an AP may take from its SIPI to [`ap_online`], and to take work.
const START_TIMEOUT_NS: u64 = 2_000_000_000;
const WORK_TIMEOUT_NS: u64 = 1_000_000_000;
const NO_CPU: u8 = u8::MAX;

static CPU_COUNT: AtomicUsize = AtomicUsize::new(1);
/// CPU number -> APIC ID, and back.
static APIC_IDS: [AtomicU8; MAX_CPUS] = [const { AtomicU8::new(0) }; MAX_CPUS];
static CPU_OF_APIC: [AtomicU8; 256] = [const { AtomicU8::new(NO_CPU) }; 256];
/// Set by the AP being started once it is ready for work.
static STARTED: AtomicUsize = AtomicUsize::new(0);
/// The work for parked APs: a `fn(usize)` as an address, its generation, and how many APs
/// took the current generation.
static WORK_FN: AtomicUsize = AtomicUsize::new(0);
static WORK_GENERATION: AtomicU64 = AtomicU64::new(0);
static WORK_TAKEN: AtomicUsize = AtomicUsize::new(0);

/// How many CPUs run the kernel (the BSP and every AP that started).
pub fn cpu_count() -> usize {
    CPU_COUNT.load(Ordering::Acquire)
}

/// This CPU's number: 0 for the BSP, 1.. for the APs.
pub fn this_cpu() -> usize {
    // Every CPU registers itself before running anything that may ask; an unknown APIC ID can
    // only mean the BSP before `init_bsp`.
    match CPU_OF_APIC[usize::from(apic::id())].load(Ordering::Relaxed) {
        NO_CPU => 0,
        cpu => usize::from(cpu),
    }
}

/// The APIC ID of CPU `cpu`, if it runs.
pub fn apic_id_of(cpu: usize) -> Option<u8> {
    (cpu < cpu_count()).then(|| APIC_IDS[cpu].load(Ordering::Relaxed))
}

fn register(cpu: usize, apic_id: u8) {
    APIC_IDS[cpu].store(apic_id, Ordering::Relaxed);
    CPU_OF_APIC[usize::from(apic_id)].store(cpu as u8, Ordering::Relaxed);
}

/// Makes the BSP CPU 0.
pub fn init_bsp() {
    register(0, apic::id());
}

/// Starts every other CPU the MADT lists, one at a time; returns how many CPUs run now. A CPU
/// that does not come up is reported and skipped.
pub fn start_aps() -> usize {
    let bsp = apic::id();
    let mut apic_ids = [0u8; MAX_CPUS];
    let mut found = 0;
    let mut too_many = false;
    let madt = acpi::for_each_cpu(|apic_id| {
        if apic_id == bsp {
            return;
        }
        match apic_ids.get_mut(found) {
            Some(slot) if found + 1 < MAX_CPUS => {
                *slot = apic_id;
                found += 1;
            }
            _ => too_many = true,
        }
    });
    if !madt {
        hv_println!("no ACPI MADT found: running on the BSP only");
        return 1;
    }
    if too_many {
        hv_println!("more than {MAX_CPUS} CPUs: the rest stay off");
    }
    let vector = entry::install_trampoline();
    let mut running = 1;
    for &apic_id in &apic_ids[..found] {
        if start_one(apic_id, running, vector) {
            running += 1;
            CPU_COUNT.store(running, Ordering::Release);
        }
    }
    running
}

fn start_one(apic_id: u8, cpu: usize, vector: u8) -> bool {
    let Some(stack) = mm::frames::alloc(AP_STACK_PAGES) else {
        hv_println!("no memory for the stack of APIC ID {apic_id}: not started");
        return false;
    };
    AP_STACK_TOP.store(
        stack + AP_STACK_PAGES as u64 * mm::PAGE_SIZE,
        Ordering::Relaxed,
    );
    AP_CPU.store(cpu as u64, Ordering::Relaxed);
    STARTED.store(0, Ordering::Release);
    let sent = apic::send_init(apic_id) && {
        time::delay_us(INIT_WAIT_US);
        (0..2).all(|_| {
            let ok = STARTED.load(Ordering::Acquire) != 0 || apic::send_startup(apic_id, vector);
            time::delay_us(SIPI_WAIT_US);
            ok
        })
    };
    let deadline = time::now_nanos() + START_TIMEOUT_NS;
    while sent && STARTED.load(Ordering::Acquire) == 0 && time::now_nanos() < deadline {
        core::hint::spin_loop();
    }
    if STARTED.load(Ordering::Acquire) == 0 {
        hv_println!("the CPU with APIC ID {apic_id} did not start (IPIs delivered: {sent})");
        mm::frames::free(stack, AP_STACK_PAGES);
        return false;
    }
    true
}

/// An AP's bring-up in long mode: registers itself, loads the IDT, enables its APIC, reports
/// SVM, tells the BSP it is up, and parks.
pub fn ap_online(cpu: usize) -> ! {
    register(cpu, apic::id());
    interrupts::load();
    apic::init();
    svm::enable(cpu);
    STARTED.store(1, Ordering::Release);
    park(cpu)
}

/// Waits for work ([`run_on_aps`]) with interrupts off except while halted.
fn park(cpu: usize) -> ! {
    let mut seen = WORK_GENERATION.load(Ordering::Acquire);
    loop {
        cpu::disable_interrupts();
        let generation = WORK_GENERATION.load(Ordering::Acquire);
        if generation == seen {
            cpu::wait_for_interrupt();
            continue;
        }
        seen = generation;
        let address = WORK_FN.load(Ordering::Acquire);
        WORK_TAKEN.fetch_add(1, Ordering::AcqRel);
        // SAFETY: `run_on_aps` stores only `fn(usize)` pointers here, before the generation.
        let work: fn(usize) = unsafe { core::mem::transmute::<usize, fn(usize)>(address) };
        work(cpu);
    }
}

/// Has every parked AP call `f(its cpu number)`, and returns once each has taken it (not once
/// they finish: `f` may run forever, a vCPU loop say). Called by the BSP. An AP still busy in
/// an earlier `f` takes only the latest one when it returns; APs that do not take it within a
/// second are reported. With no APs it does nothing.
pub fn run_on_aps(f: fn(usize)) {
    if this_cpu() != 0 {
        log::error!(
            "run_on_aps called on cpu {}, not the BSP: ignored",
            this_cpu()
        );
        return;
    }
    let aps = cpu_count() - 1;
    if aps == 0 {
        return;
    }
    WORK_TAKEN.store(0, Ordering::Release);
    WORK_FN.store(f as usize, Ordering::Release);
    WORK_GENERATION.fetch_add(1, Ordering::AcqRel);
    for ap in 1..=aps {
        if !apic::send_ipi(ap, apic::KICK_VECTOR) {
            hv_println!("cpu {ap}: the kick IPI was not delivered");
        }
    }
    let deadline = time::now_nanos() + WORK_TIMEOUT_NS;
    while WORK_TAKEN.load(Ordering::Acquire) < aps {
        if time::now_nanos() > deadline {
            let taken = WORK_TAKEN.load(Ordering::Acquire);
            hv_println!("run_on_aps: only {taken} of {aps} APs took the work within a second");
            return;
        }
        core::hint::spin_loop();
    }
}
