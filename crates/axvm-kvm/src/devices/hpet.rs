//! An HPET (IA-PC High Precision Event Timer) at 0xfed00000, as QEMU's PC has one: three
//! comparators, a 64-bit main counter at 100 MHz, periodic and one-shot modes, 32-bit mode,
//! edge- or level-triggered interrupts through the IOAPIC inputs QEMU's q35 offers (2, 8,
//! 16-23), and legacy replacement routing (timer 0 on IRQ 0, timer 1 on IRQ 8). No FSB
//! (MSI) delivery. The register semantics are in `hpet/registers.rs`.
//!
//! Why axvm has one: ArceOS hypervisor configs for x86 pass the PC's HPET through
//! (`["HPET", 0xfed0_0000, 0xfed0_0000, 0x1000, 0x1]`), and their guests need it there:
//! NimbOS calibrates its clocks from the HPET and divides by zero without one. A Linux
//! process cannot hand out the host's HPET, so such a pass-through is served by this
//! device instead (`kvm/pass_through.rs`), and the ACPI `HPET` table describes it.
//!
//! Time is the host's monotonic clock, so the counter neither drifts nor depends on exits.
//! Interrupts come on time from a thread of the device's own ([`Hpet::start`]): it sleeps
//! until the next comparator match, and every register access also catches up first, so
//! a guest that reads the counter past a deadline sees the interrupt's effects already.
//! Edge-triggered interrupts pulse their GSI; level-triggered ones hold it high until the
//! guest clears the status bit (on the vCPU thread, before its EOI, so the IOAPIC does not
//! deliver it twice). Under legacy replacement KVM's in-kernel PIT stops driving IRQ 0, as
//! QEMU silences its PIT.

mod registers;

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

use crate::platform::pc::layout::{HPET_ADDRESS, HPET_LEN};
use crate::sandbox::ThreadRole;
#[cfg(test)]
use registers::CAPABILITIES as HPET_CAPABILITIES;
use registers::{Effects, Registers};

/// Where the HPET's interrupts go: KVM's irqchip and PIT (`kvm/irq_lines.rs`), or a
/// recorder in tests.
pub trait HpetLines: Send + Sync {
    /// Drives `gsi` high or low (a pulse is high then low).
    fn set_level(&self, gsi: u32, high: bool);
    /// Lets the PIT drive IRQ 0 (`true`) or silences it (`false`, legacy replacement).
    fn pit_output(&self, enabled: bool);
}

/// Lines that go nowhere: a host without an in-kernel irqchip has no interrupts to give.
pub struct NoLines;

impl HpetLines for NoLines {
    fn set_level(&self, _gsi: u32, _high: bool) {}
    fn pit_output(&self, _enabled: bool) {}
}

/// What the vCPU threads and the timer thread share.
struct State {
    registers: Registers,
    /// The GSIs this device holds high.
    held: u32,
    /// Set when the device goes: the timer thread ends.
    stopping: bool,
}

struct Shared {
    /// Time 0 of [`Registers`].
    start: Instant,
    state: Mutex<State>,
    /// Wakes the timer thread after a register write (its next deadline may have moved).
    wake: Condvar,
    lines: Box<dyn HpetLines>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Makes the lines do what `effects` and the level interrupts now asserted say.
    fn apply(&self, state: &mut State, effects: Effects) {
        if let Some(enabled) = effects.pit_output {
            self.lines.pit_output(enabled);
        }
        let wanted = state.registers.asserted_lines();
        for gsi in 0..32 {
            let bit = 1u32 << gsi;
            if (state.held ^ wanted) & bit != 0 {
                self.lines.set_level(gsi, wanted & bit != 0);
            }
            // A line held high by a level interrupt has no edge to give.
            if effects.pulses & bit != 0 && wanted & bit == 0 {
                self.lines.set_level(gsi, true);
                self.lines.set_level(gsi, false);
            }
        }
        state.held = wanted;
    }

    /// The timer thread: fire what is due, sleep until the next deadline or a write.
    fn run_timers(&self) {
        let mut state = self.lock();
        while !state.stopping {
            let now = self.now_ns();
            let effects = state.registers.catch_up(now);
            self.apply(&mut state, effects);
            state = match state.registers.next_deadline(now) {
                Some(ns) => {
                    let wait = Duration::from_nanos(ns.max(1));
                    self.wake
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                None => self
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// The HPET device (see the module documentation).
pub struct Hpet {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Hpet {
    /// An HPET, halted and reset, whose interrupts go to `lines`; interrupts come on time
    /// once [`start`](Self::start)ed (before, only on register accesses).
    pub fn new(lines: Box<dyn HpetLines>) -> Self {
        let state = State {
            registers: Registers::default(),
            held: 0,
            stopping: false,
        };
        Self {
            shared: Arc::new(Shared {
                start: Instant::now(),
                state: Mutex::new(state),
                wake: Condvar::new(),
                lines,
            }),
            thread: Mutex::new(None),
        }
    }

    /// Starts the timer thread of VM `vm_name`, confined to its system calls when
    /// `sandboxed` (see [`crate::sandbox`]); once only.
    pub fn start(&self, vm_name: &str, sandboxed: bool) -> std::io::Result<()> {
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_some() {
            return Ok(());
        }
        let shared = self.shared.clone();
        let builder = std::thread::Builder::new().name(format!("{vm_name}-hpet"));
        let role = sandboxed.then_some(ThreadRole::Timer);
        *thread = Some(crate::sandbox::spawn_confined(builder, role, move || {
            shared.run_timers()
        })?);
        Ok(())
    }

    /// The 64-bit registers an access of `width` at `offset` touches (one, or two when it
    /// straddles an 8-byte boundary), each with the bytes of the access in it.
    fn registers_touched(offset: u64, width: AccessWidth) -> impl Iterator<Item = (u64, u64)> {
        let size = width.size() as u64;
        (0..size)
            .map(move |i| offset.saturating_add(i))
            .filter(|&at| at < HPET_LEN)
            .fold(Vec::<(u64, u64)>::with_capacity(2), |mut touched, at| {
                let (register, byte) = (at & !7, at & 7);
                match touched.last_mut() {
                    Some((last, mask)) if *last == register => *mask |= 0xff << (8 * byte),
                    _ => touched.push((register, 0xff << (8 * byte))),
                }
                touched
            })
            .into_iter()
    }
}

/// The bytes of the register at `register` in their places in an access at `offset` (the
/// access starts at most 7 bytes before or after the register).
fn register_to_access(contents: u64, register: u64, offset: u64) -> u64 {
    match register.checked_sub(offset) {
        Some(after) => contents << (8 * after),
        None => contents >> (8 * (offset - register)),
    }
}

/// The bytes of an access at `offset` in their places in the register at `register`.
fn access_to_register(value: u64, register: u64, offset: u64) -> u64 {
    match register.checked_sub(offset) {
        Some(after) => value >> (8 * after),
        None => value << (8 * (offset - register)),
    }
}

impl Drop for Hpet {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.wake.notify_all();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(thread) = thread.take() {
            let _ = thread.join();
        }
    }
}

impl BaseDeviceOps for Hpet {
    fn name(&self) -> &str {
        "HPET"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::mmio(HPET_ADDRESS, HPET_LEN)]
    }

    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        let mut state = self.shared.lock();
        let now = self.shared.now_ns();
        let mut value = 0u64;
        for (register, mask) in Self::registers_touched(at.offset, width) {
            let (contents, effects) = state.registers.read(register, now);
            self.shared.apply(&mut state, effects);
            value |= register_to_access(contents & mask, register, at.offset);
        }
        Ok(value)
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let mut state = self.shared.lock();
        let now = self.shared.now_ns();
        for (register, mask) in Self::registers_touched(at.offset, width) {
            let bits = access_to_register(value, register, at.offset);
            let effects = state.registers.write(register, (mask, bits & mask), now);
            self.shared.apply(&mut state, effects);
        }
        drop(state);
        self.shared.wake.notify_all();
        Ok(WriteOutcome::Done)
    }
}

#[cfg(test)]
mod tests;
