//! Emulated xAPIC local APICs, one per vCPU, behind their MMIO page at 0xfee00000, for a
//! host that has no in-kernel APIC (the bare-metal SVM hypervisor; KVM has its own).
//!
//! What is modelled is what guests that start APs and take timer interrupts and IPIs use:
//! ID (= the vCPU id), version, TPR/PPR, the spurious-vector register (software enable),
//! EOI, IRR and ISR, LDR/DFR (flat logical destinations), the ICR with fixed, lowest-priority
//! (as fixed), INIT and STARTUP delivery, physical and logical destinations and the three
//! shorthands, and the LVT timer (one-shot and periodic, divide configuration, initial and
//! current count). IPIs are delivered at once, so the ICR's delivery-status bit always reads
//! 0. NMI, SMI and the TSC-deadline timer mode are not modelled (an NMI IPI is dropped).
//!
//! The page shows the APIC of the vCPU that accesses it ([`ApicHost::current_vcpu`]). The
//! host moves interrupts into its vCPUs itself: [`LocalApics::take_interrupt`] before it
//! enters vCPU *n*, [`LocalApics::poll_timer`] and [`LocalApics::next_deadline`] for the
//! timers, and it is told through [`ApicHost::interrupt_pending`] when vCPU *n* got one (to
//! wake or kick it).

mod state;

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};
use spin::Mutex;

pub use state::{reg, ApicState, LVT_MASKED, SVR_ENABLE, VERSION};

/// The local APIC page's guest-physical base.
pub const LAPIC_BASE: u64 = 0xfee0_0000;
/// Its size.
pub const LAPIC_SIZE: u64 = 0x1000;

/// ICR low fields.
const ICR_DELIVERY_SHIFT: u32 = 8;
const ICR_LOGICAL: u32 = 1 << 11;
const ICR_ASSERT: u32 = 1 << 14;
const ICR_SHORTHAND_SHIFT: u32 = 18;
const DELIVERY_FIXED: u32 = 0;
const DELIVERY_LOWEST: u32 = 1;
const DELIVERY_INIT: u32 = 5;
const DELIVERY_STARTUP: u32 = 6;

/// What the local APICs need from their host.
pub trait ApicHost: Send + Sync {
    /// The vCPU whose access is being handled (its APIC is the one the page shows).
    fn current_vcpu(&self) -> Option<usize>;
    /// Nanoseconds of a monotonic clock.
    fn now_nanos(&self) -> u64;
    /// vCPU `vcpu` has an interrupt to take: wake it if it is halted, make it leave guest
    /// mode if it runs elsewhere (it then calls [`LocalApics::take_interrupt`]).
    fn interrupt_pending(&self, vcpu: usize);
    /// A start-up IPI of `vector` for `vcpu`: start it in real mode at `vector << 12` if
    /// it waits for one, ignore it otherwise.
    fn start_up(&self, vcpu: usize, vector: u8);
}

/// Where an interrupt goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destination {
    /// The APIC with this ID (0xff: every APIC).
    Physical(u8),
    /// The APICs whose logical ID (flat model) shares a bit with the mask.
    Logical(u8),
}

/// Every vCPU's local APIC.
pub struct LocalApics<H: ApicHost> {
    host: H,
    apics: Vec<Mutex<ApicState>>,
}

impl<H: ApicHost> LocalApics<H> {
    /// The APICs of `vcpus` vCPUs, in their reset state; vCPU *n* has APIC ID *n*.
    pub fn new(vcpus: usize, host: H) -> Self {
        Self {
            host,
            apics: (0..vcpus)
                .map(|id| Mutex::new(ApicState::new(id as u8)))
                .collect(),
        }
    }

    /// The host.
    pub fn host(&self) -> &H {
        &self.host
    }

    /// How many APICs there are.
    pub fn len(&self) -> usize {
        self.apics.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.apics.is_empty()
    }

    fn apic(&self, vcpu: usize) -> Option<&Mutex<ApicState>> {
        self.apics.get(vcpu)
    }

    /// A fixed interrupt of `vector` for vCPU `vcpu` (a host-injected interrupt): `false`
    /// when there is no such vCPU or its APIC drops it (software-disabled).
    pub fn deliver_to_vcpu(&self, vcpu: usize, vector: u8) -> bool {
        let accepted = self
            .apic(vcpu)
            .is_some_and(|apic| apic.lock().accept(vector));
        if accepted {
            self.host.interrupt_pending(vcpu);
        }
        accepted
    }

    /// A fixed interrupt of `vector` for every APIC `destination` names (an IOAPIC
    /// message or an IPI). How many APICs accepted it.
    pub fn deliver(&self, destination: Destination, vector: u8) -> usize {
        self.targets(destination)
            .into_iter()
            .filter(|&vcpu| self.deliver_to_vcpu(vcpu, vector))
            .count()
    }

    /// The vCPUs `destination` names.
    fn targets(&self, destination: Destination) -> Vec<usize> {
        (0..self.apics.len())
            .filter(|&vcpu| {
                let apic = self.apics[vcpu].lock();
                match destination {
                    Destination::Physical(0xff) => true,
                    Destination::Physical(id) => apic.id() == id,
                    Destination::Logical(mask) => apic.matches_logical(mask),
                }
            })
            .collect()
    }

    /// The interrupt vCPU `vcpu` is to take next (now in service), if any.
    pub fn take_interrupt(&self, vcpu: usize) -> Option<u8> {
        self.apic(vcpu)?.lock().take_deliverable()
    }

    /// Whether vCPU `vcpu` has an interrupt to take.
    pub fn has_interrupt(&self, vcpu: usize) -> bool {
        self.apic(vcpu)
            .is_some_and(|apic| apic.lock().has_deliverable())
    }

    /// Fires vCPU `vcpu`'s APIC timer if it is due; whether it fired.
    pub fn poll_timer(&self, vcpu: usize) -> bool {
        let now = self.host.now_nanos();
        self.apic(vcpu)
            .is_some_and(|apic| apic.lock().poll_timer(now))
    }

    /// When vCPU `vcpu`'s APIC timer fires next, if it runs.
    pub fn next_deadline(&self, vcpu: usize) -> Option<u64> {
        self.apic(vcpu)?.lock().timer_deadline()
    }

    /// Sends the IPI that `icr_low` describes from vCPU `source`'s APIC.
    fn send_ipi(&self, source: usize, icr_low: u32, destination: u8) {
        let vector = icr_low as u8;
        let mode = (icr_low >> ICR_DELIVERY_SHIFT) & 0b111;
        let targets: Vec<usize> = match (icr_low >> ICR_SHORTHAND_SHIFT) & 0b11 {
            0 if icr_low & ICR_LOGICAL != 0 => self.targets(Destination::Logical(destination)),
            0 => self.targets(Destination::Physical(destination)),
            1 => vec![source],
            2 => (0..self.apics.len()).collect(),
            _ => (0..self.apics.len()).filter(|&v| v != source).collect(),
        };
        match mode {
            DELIVERY_FIXED => {
                for vcpu in targets {
                    self.deliver_to_vcpu(vcpu, vector);
                }
            }
            DELIVERY_LOWEST => {
                if let Some(&vcpu) = targets.first() {
                    self.deliver_to_vcpu(vcpu, vector);
                }
            }
            // INIT resets nothing here: the APs it is sent to still wait for their SIPI.
            // (INIT de-assert, level 0, is a no-op on every APIC since the P4.)
            DELIVERY_INIT => log::debug!("vCPU {source}: INIT IPI to {targets:?}"),
            DELIVERY_STARTUP if icr_low & ICR_ASSERT != 0 => {
                for vcpu in targets {
                    self.host.start_up(vcpu, vector);
                }
            }
            _ => log::warn!(
                "vCPU {source}: IPI with delivery mode {mode:#b} (ICR {icr_low:#x}) is not modelled; dropped"
            ),
        }
    }

    fn current(&self) -> Result<(usize, &Mutex<ApicState>), DeviceError> {
        let vcpu = self.host.current_vcpu().ok_or_else(|| error(
            "the local APIC page was accessed outside a vCPU (the host cannot say whose APIC it is)",
        ))?;
        let apic = self.apic(vcpu).ok_or_else(|| {
            error(&format!(
                "vCPU {vcpu} has no local APIC (the VM has {})",
                self.apics.len()
            ))
        })?;
        Ok((vcpu, apic))
    }
}

fn error(message: &str) -> DeviceError {
    DeviceError {
        device: "local APIC".into(),
        message: message.into(),
    }
}

impl<H: ApicHost> BaseDeviceOps for LocalApics<H> {
    fn name(&self) -> &str {
        "local APIC"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::InterruptController
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::mmio(LAPIC_BASE, LAPIC_SIZE)]
    }

    /// Registers are 32 bits wide at 16-byte boundaries; a narrower read inside one gets
    /// its bytes, anything else reads as zero.
    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        let (_, apic) = self.current()?;
        let byte = at.offset & 0xf;
        if byte + width.size() as u64 > 4 {
            return Ok(0);
        }
        let value = apic.lock().read(at.offset & !0xf, self.host.now_nanos());
        Ok(width.truncate(u64::from(value >> (8 * byte))))
    }

    /// Only aligned 32-bit writes act, as on hardware (others are dropped).
    fn handle_write(
        &self,
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let (vcpu, apic) = self.current()?;
        if width != AccessWidth::Dword || at.offset & 0xf != 0 {
            log::debug!(
                "vCPU {vcpu}: local APIC write of {width} at offset {:#x} dropped",
                at.offset
            );
            return Ok(WriteOutcome::Done);
        }
        let value = value as u32;
        match at.offset {
            reg::EOI => {
                let mut apic = apic.lock();
                apic.eoi();
            }
            reg::ICR_LOW => {
                let destination = apic.lock().icr_destination();
                self.send_ipi(vcpu, value, destination);
            }
            offset => {
                apic.lock().write(offset, value, self.host.now_nanos());
                if offset == reg::TIMER_INITIAL || offset == reg::LVT_TIMER {
                    // A new deadline: the host re-reads it before entering the vCPU.
                    self.host.interrupt_pending(vcpu);
                }
            }
        }
        Ok(WriteOutcome::Done)
    }
}

#[cfg(test)]
mod tests;
