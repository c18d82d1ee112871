//! The IOAPIC at 0xfec00000 (24 input pins), for a host without an in-kernel one: its
//! redirection table sends an edge on a pin to a vector of the local APICs it names.
//!
//! Registers are reached through IOREGSEL (offset 0x00) and IOWIN (0x10): ID (0x00),
//! version (0x01: version 0x11, 24 entries), arbitration (0x02) and the redirection
//! entries (0x10 + 2 × pin, low then high half). Edge-triggered fixed and lowest-priority
//! delivery (as fixed) is modelled, which is what ISA interrupts use; level-triggered
//! entries are delivered as edges (no remote IRR), other delivery modes are dropped.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};
use spin::Mutex;

use super::lapic::{ApicHost, Destination, LocalApics};

/// The IOAPIC's guest-physical base.
pub const IOAPIC_BASE: u64 = 0xfec0_0000;
/// Input pins.
pub const IOAPIC_PINS: usize = 24;
/// Version register: version 0x11, maximum redirection entry 23.
const VERSION: u32 = 0x11 | ((IOAPIC_PINS as u32 - 1) << 16);
const IOREGSEL: u64 = 0x00;
const IOWIN: u64 = 0x10;
const REG_ID: u32 = 0x00;
const REG_VERSION: u32 = 0x01;
const REG_ARBITRATION: u32 = 0x02;
const REG_REDIRECTION: u32 = 0x10;
const ENTRY_MASKED: u64 = 1 << 16;
const ENTRY_LOGICAL: u64 = 1 << 11;
/// Read-only bits of an entry: delivery status (12) and remote IRR (14).
const ENTRY_READ_ONLY: u64 = (1 << 12) | (1 << 14);

struct IoApicState {
    select: u32,
    id: u32,
    entries: [u64; IOAPIC_PINS],
}

/// The IOAPIC, delivering to `apics`.
pub struct IoApic<H: ApicHost> {
    apics: Arc<LocalApics<H>>,
    state: Mutex<IoApicState>,
}

impl<H: ApicHost> IoApic<H> {
    /// An IOAPIC in its reset state (every pin masked) delivering to `apics`.
    pub fn new(apics: Arc<LocalApics<H>>) -> Self {
        Self {
            apics,
            state: Mutex::new(IoApicState {
                select: 0,
                id: 0,
                entries: [ENTRY_MASKED; IOAPIC_PINS],
            }),
        }
    }

    /// An edge on input `pin`: its vector goes to the APICs its entry names, unless it is
    /// masked. How many APICs accepted it.
    pub fn raise(&self, pin: usize) -> usize {
        let Some(entry) = self.state.lock().entries.get(pin).copied() else {
            return 0;
        };
        if entry & ENTRY_MASKED != 0 {
            return 0;
        }
        let mode = (entry >> 8) & 0b111;
        if mode > 1 {
            log::warn!("IOAPIC pin {pin}: delivery mode {mode:#b} is not modelled; dropped");
            return 0;
        }
        let destination = (entry >> 56) as u8;
        let destination = if entry & ENTRY_LOGICAL != 0 {
            Destination::Logical(destination)
        } else {
            Destination::Physical(destination)
        };
        self.apics.deliver(destination, entry as u8)
    }

    fn read_register(state: &IoApicState) -> u32 {
        match state.select {
            REG_ID => state.id,
            REG_VERSION => VERSION,
            REG_ARBITRATION => state.id,
            select => match redirection(select) {
                Some((pin, high)) => {
                    let entry = state.entries[pin];
                    if high {
                        (entry >> 32) as u32
                    } else {
                        entry as u32
                    }
                }
                None => 0,
            },
        }
    }

    fn write_register(state: &mut IoApicState, value: u32) {
        match state.select {
            REG_ID => state.id = value & 0x0f00_0000,
            select => {
                if let Some((pin, high)) = redirection(select) {
                    let entry = &mut state.entries[pin];
                    *entry = if high {
                        (*entry & 0xffff_ffff) | (u64::from(value) << 32)
                    } else {
                        let kept = *entry & (0xffff_ffff_0000_0000 | ENTRY_READ_ONLY);
                        kept | (u64::from(value) & !ENTRY_READ_ONLY)
                    };
                }
            }
        }
    }
}

/// The pin and half a redirection register select names.
fn redirection(select: u32) -> Option<(usize, bool)> {
    let index = select.checked_sub(REG_REDIRECTION)? as usize;
    (index < 2 * IOAPIC_PINS).then_some((index / 2, index % 2 == 1))
}

impl<H: ApicHost> BaseDeviceOps for IoApic<H> {
    fn name(&self) -> &str {
        "IOAPIC"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::InterruptController
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::mmio(IOAPIC_BASE, 0x20)]
    }

    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        let state = self.state.lock();
        let value = match at.offset {
            IOREGSEL => state.select,
            IOWIN => Self::read_register(&state),
            _ => 0,
        };
        Ok(width.truncate(u64::from(value)))
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let mut state = self.state.lock();
        match at.offset {
            IOREGSEL => state.select = value as u32 & 0xff,
            IOWIN => Self::write_register(&mut state, value as u32),
            _ => {}
        }
        Ok(WriteOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::devices::lapic::{reg, SVR_ENABLE};

    struct Host(AtomicUsize);

    impl ApicHost for Host {
        fn current_vcpu(&self) -> Option<usize> {
            Some(0)
        }
        fn now_nanos(&self) -> u64 {
            0
        }
        fn interrupt_pending(&self, _vcpu: usize) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn start_up(&self, _vcpu: usize, _vector: u8) {}
    }

    fn write(ioapic: &IoApic<Host>, register: u32, value: u32) {
        let w = AccessWidth::Dword;
        ioapic
            .handle_write(DeviceOffset::first(IOREGSEL), w, u64::from(register))
            .unwrap();
        ioapic
            .handle_write(DeviceOffset::first(IOWIN), w, u64::from(value))
            .unwrap();
    }

    fn read(ioapic: &IoApic<Host>, register: u32) -> u32 {
        let w = AccessWidth::Dword;
        ioapic
            .handle_write(DeviceOffset::first(IOREGSEL), w, u64::from(register))
            .unwrap();
        ioapic.handle_read(DeviceOffset::first(IOWIN), w).unwrap() as u32
    }

    fn setup() -> (IoApic<Host>, Arc<LocalApics<Host>>) {
        let apics = Arc::new(LocalApics::new(2, Host(AtomicUsize::new(0))));
        apics
            .handle_write(
                DeviceOffset::first(reg::SVR),
                AccessWidth::Dword,
                u64::from(SVR_ENABLE | 0xff),
            )
            .unwrap();
        (IoApic::new(apics.clone()), apics)
    }

    #[test]
    fn version_names_24_pins_and_pins_start_masked() {
        let (ioapic, apics) = setup();
        assert_eq!(read(&ioapic, REG_VERSION), 0x0017_0011);
        assert_eq!(read(&ioapic, 0x10 + 4), ENTRY_MASKED as u32);
        assert_eq!(ioapic.raise(2), 0);
        assert!(!apics.has_interrupt(0));
    }

    #[test]
    fn a_routed_pin_delivers_its_vector_to_the_named_apic() {
        let (ioapic, apics) = setup();
        write(&ioapic, 0x10 + 4, ENTRY_MASKED as u32);
        write(&ioapic, 0x10 + 5, 0);
        write(&ioapic, 0x10 + 4, 0x30);
        assert_eq!(read(&ioapic, 0x10 + 4), 0x30);
        assert_eq!(ioapic.raise(2), 1);
        assert_eq!(apics.take_interrupt(0), Some(0x30));
        assert_eq!(ioapic.raise(0), 0, "pin 0 stays masked");
        assert_eq!(ioapic.raise(99), 0, "no such pin");
    }
}
