//! The VM's interrupts on this host, which has no in-kernel interrupt controllers: axvm-pc's
//! local APICs, IOAPIC, PIT and silent 8259 PICs, wired to the vCPUs.
//!
//! - **Delivery.** An APIC that accepts an interrupt for vCPU *n* calls
//!   [`HvApicHost::interrupt_pending`], which kicks CPU *n* (vCPU *n* runs there) with
//!   [`apic::KICK_VECTOR`]: a running guest exits (`Interrupted`), a halted vCPU loop wakes.
//!   Before vCPU *n* enters the guest again ([`VmInterrupts::before_entry`], from the exit
//!   observer after every exit and from the runner before every `run_vcpu`), the APIC's
//!   next deliverable vector is queued on the SVM vCPU as a virtual interrupt.
//! - **Time.** Virtual timers (each APIC's timer, the PIT's channel 0 on IOAPIC pin 2 as on
//!   a PC and the KVM host, and a scheduled host injection) are checked at the same points,
//!   and the earliest deadline arms this CPU's physical APIC timer, whose interrupt is the
//!   kick: a guest that runs without exiting, or a vCPU loop halted in `hlt`, gets control
//!   back in time.
//! - **Start-up IPIs** are left in a per-vCPU mailbox ([`VmInterrupts::take_startup`]) that
//!   the vCPU waiting for one reads.
//!
//! No kick is lost between the check and `VMRUN`: [`VmInterrupts::before_entry`] checks with
//! interrupts off and they stay off until the guest runs; the vCPUs are set to exit on a
//! host interrupt whatever IF is (`SvmVCpu::set_host_interrupts_always_exit`), so a kick
//! sent after the check is pending at `VMRUN` and the guest exits at once; it is taken (only
//! acknowledged) at the next check.

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use axvm::device::BaseDeviceOps;
use axvm_pc::{ApicHost, Clock, IoApic, LocalApics, Pit, SilentPics};
use axvm_svm::SvmVCpu;

use super::hal::Frames;
use crate::{apic, cpu, hv_println, smp, time};

/// The IOAPIC input ISA IRQ 0 (the PIT) arrives on: GSI 2, as QEMU's MADT override says.
const PIT_IOAPIC_PIN: usize = 2;
/// Start-up mailbox: bit 9 = the vCPU waits for a SIPI (others are ignored, as a running
/// processor ignores SIPIs); bit 8 = one came, its vector in bits 7:0.
const STARTUP_AWAITED: u16 = 1 << 9;
const STARTUP_PENDING: u16 = 1 << 8;
/// "No deadline" in the scheduled injection's deadline.
const NEVER: u64 = u64::MAX;

/// What the APICs need from this host.
pub struct HvApicHost {
    vcpus: usize,
    startups: Vec<AtomicU16>,
}

impl HvApicHost {
    fn kick(&self, vcpu: usize) {
        if vcpu < self.vcpus && vcpu != smp::this_cpu() {
            apic::send_ipi(vcpu, apic::KICK_VECTOR);
        }
    }
}

impl ApicHost for HvApicHost {
    fn current_vcpu(&self) -> Option<usize> {
        Some(smp::this_cpu()).filter(|&cpu| cpu < self.vcpus)
    }

    fn now_nanos(&self) -> u64 {
        time::now_nanos()
    }

    fn interrupt_pending(&self, vcpu: usize) {
        self.kick(vcpu);
    }

    fn start_up(&self, vcpu: usize, vector: u8) {
        let Some(mailbox) = self.startups.get(vcpu) else {
            return;
        };
        let arrived = STARTUP_AWAITED | STARTUP_PENDING | u16::from(vector);
        if mailbox
            .compare_exchange(
                STARTUP_AWAITED,
                arrived,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.kick(vcpu);
        }
    }
}

/// The PIT's clock: the hypervisor's.
pub struct HvClock;

impl Clock for HvClock {
    fn now_nanos(&self) -> u64 {
        time::now_nanos()
    }
}

/// A host-injected interrupt waiting for its time (see [`VmInterrupts::schedule_injection`]).
struct ScheduledInjection {
    at_nanos: AtomicU64,
    vcpu: usize,
    vector: u8,
}

/// The VM's interrupt controllers and timers.
pub struct VmInterrupts {
    apics: Arc<LocalApics<HvApicHost>>,
    ioapic: Arc<IoApic<HvApicHost>>,
    pit: Arc<Pit<HvClock>>,
    injection: spin::Once<ScheduledInjection>,
}

impl VmInterrupts {
    /// Controllers in their reset state for a VM of `vcpus` vCPUs.
    pub fn new(vcpus: usize) -> Self {
        let host = HvApicHost {
            vcpus,
            startups: (0..vcpus).map(|_| AtomicU16::new(0)).collect(),
        };
        let apics = Arc::new(LocalApics::new(vcpus, host));
        Self {
            ioapic: Arc::new(IoApic::new(apics.clone())),
            apics,
            pit: Arc::new(Pit::new(HvClock)),
            injection: spin::Once::new(),
        }
    }

    /// The devices the guest reaches: local APICs, IOAPIC, PIT and port 0x61, PICs.
    pub fn devices(&self) -> [Arc<dyn BaseDeviceOps>; 4] {
        [
            self.apics.clone(),
            self.ioapic.clone(),
            self.pit.clone(),
            Arc::new(SilentPics::default()),
        ]
    }

    /// A fixed interrupt of `vector` for vCPU `vcpu`'s APIC; `false` if it was dropped (no
    /// such vCPU, or its APIC is software-disabled).
    pub fn inject(&self, vcpu: usize, vector: u8) -> bool {
        self.apics.deliver_to_vcpu(vcpu, vector)
    }

    /// Injects `vector` into vCPU `vcpu` `delay_nanos` from now, once (the console-line
    /// trigger's injection; a second call is ignored).
    pub fn schedule_injection(&self, vcpu: usize, vector: u8, delay_nanos: u64) {
        let at = time::now_nanos().saturating_add(delay_nanos);
        self.injection.call_once(|| ScheduledInjection {
            at_nanos: AtomicU64::new(at),
            vcpu,
            vector,
        });
        self.apics.host().kick(vcpu);
    }

    /// Opens vCPU `vcpu`'s start-up mailbox: it waits for a start-up IPI from now on.
    pub fn await_startup(&self, vcpu: usize) {
        if let Some(mailbox) = self.apics.host().startups.get(vcpu) {
            mailbox.store(STARTUP_AWAITED, Ordering::Release);
        }
    }

    /// The vector of the first start-up IPI sent to vCPU `vcpu` since
    /// [`await_startup`](Self::await_startup), taken from its mailbox, which closes (later
    /// ones are ignored: the vCPU runs).
    pub fn take_startup(&self, vcpu: usize) -> Option<u8> {
        let mailbox = self.apics.host().startups.get(vcpu)?;
        let value = mailbox.load(Ordering::Acquire);
        if value & STARTUP_PENDING == 0 {
            return None;
        }
        mailbox.store(0, Ordering::Release);
        Some(value as u8)
    }

    /// Whether a start-up IPI waits in vCPU `vcpu`'s mailbox.
    pub fn startup_pending(&self, vcpu: usize) -> bool {
        self.apics
            .host()
            .startups
            .get(vcpu)
            .is_some_and(|mailbox| mailbox.load(Ordering::Acquire) & STARTUP_PENDING != 0)
    }

    /// Whether any vCPU's start-up mailbox holds a start-up IPI.
    pub fn any_startup_pending(&self) -> bool {
        (0..self.apics.len()).any(|vcpu| self.startup_pending(vcpu))
    }

    /// Fires what is due on behalf of vCPU `vcpu`: its APIC timer, the PIT (any vCPU may
    /// collect its edges; each is raised once) and the scheduled injection.
    fn poll_timers(&self, vcpu: usize) {
        self.apics.poll_timer(vcpu);
        if self.pit.poll_irq0() {
            self.ioapic.raise(PIT_IOAPIC_PIN);
        }
        if let Some(injection) = self.injection.get() {
            let at = injection.at_nanos.load(Ordering::Acquire);
            if at <= time::now_nanos()
                && injection
                    .at_nanos
                    .compare_exchange(at, NEVER, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                && !self.inject(injection.vcpu, injection.vector)
            {
                hv_println!(
                    "inject: vCPU {}'s local APIC dropped vector {:#x} (software-disabled, or no such vCPU)",
                    injection.vcpu,
                    injection.vector
                );
            }
        }
    }

    /// The earliest virtual deadline vCPU `vcpu` must wake up for.
    fn next_deadline(&self, vcpu: usize) -> Option<u64> {
        let injection = self
            .injection
            .get()
            .map(|i| i.at_nanos.load(Ordering::Acquire))
            .filter(|&at| at != NEVER);
        [
            self.apics.next_deadline(vcpu),
            self.pit.next_irq0(),
            injection,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Arms this CPU's APIC timer for vCPU `vcpu`'s next deadline (or stops it).
    fn arm_host_timer(&self, vcpu: usize) {
        let now = time::now_nanos();
        apic::arm_timer(
            self.next_deadline(vcpu)
                .map(|deadline| deadline.saturating_sub(now)),
        );
    }

    /// On vCPU `vcpu`'s CPU, before it enters the guest: fires due timers, queues the next
    /// deliverable interrupt unless one is queued already, and arms the host timer.
    ///
    /// Returns with interrupts off, which they stay until `VMRUN` (the vCPUs make host
    /// interrupts exit the guest whatever IF is: `set_host_interrupts_always_exit`), so an
    /// interrupt for this vCPU accepted after the check here kicks a guest that then exits at
    /// once, instead of a kick taken in host mode and lost.
    pub fn before_entry(&self, vcpu_id: usize, vcpu: &mut SvmVCpu<Frames>) {
        // Kicks that made the guest exit are pending: take them now (their handler only
        // acknowledges them), then check with interrupts off.
        cpu::take_pending_interrupts();
        self.poll_timers(vcpu_id);
        if vcpu.pending_interrupt().is_none() {
            if let Some(vector) = self.apics.take_interrupt(vcpu_id) {
                // Refused only for vectors 16-31, exception vectors to SVM, which a
                // guest may program but no PC guest sends: reported and dropped.
                if let Err(err) = vcpu.queue_interrupt(vector) {
                    hv_println!("{err}");
                }
            }
        }
        self.arm_host_timer(vcpu_id);
    }

    /// Whether a halted vCPU `vcpu` has something to wake for (fires due timers first).
    pub fn wakes(&self, vcpu: usize) -> bool {
        self.poll_timers(vcpu);
        self.apics.has_interrupt(vcpu)
    }

    /// Arms the host timer for halted vCPU `vcpu`'s next deadline.
    pub fn arm_for_halt(&self, vcpu: usize) {
        self.arm_host_timer(vcpu);
    }
}

/// The exit observer of the VM: exit timing, then [`VmInterrupts::before_entry`].
pub struct EntryHook {
    /// The exit timing.
    pub timing: Arc<super::exit_timing::ExitTiming>,
    /// The interrupts.
    pub irq: Arc<VmInterrupts>,
}

impl axvm::ExitObserver<SvmVCpu<Frames>> for EntryHook {
    fn on_exit(&self, event: &axvm::ExitEvent, vcpu: &mut SvmVCpu<Frames>) {
        self.timing.on_exit(event, vcpu);
        self.irq.before_entry(event.vcpu, vcpu);
    }
}
