//! The MADT ("APIC"): the table kernels enumerate CPUs and find the IOAPIC from, and that
//! tells them which ISA IRQs reach another IOAPIC pin, or another trigger mode, than ISA's.

use alloc::vec::Vec;

use super::sdt::{finish_sdt, sdt_header};
use super::{ioapic_id, PutLe};
use crate::layout::{IOAPIC_ADDRESS, LOCAL_APIC_ADDRESS, SCI_IRQ, TIMER_IOAPIC_PIN, TIMER_IRQ};

/// MADT flags: PCAT_COMPAT, the machine also has dual 8259 PICs, which kernels then mask.
const MADT_PCAT_COMPAT: u32 = 1;
/// MPS INTI flags of the SCI: active high (bits 0-1 = 01), level-triggered (bits 2-3 = 11),
/// as PC firmware declares it (the ACPI default for the SCI is level, active low).
const LEVEL_ACTIVE_HIGH: u16 = 0b1101;

/// The MADT for `cpu_count` vCPUs.
pub(super) fn madt(cpu_count: u8) -> Vec<u8> {
    let mut table = sdt_header(b"APIC", 4);
    table.put_u32(LOCAL_APIC_ADDRESS).put_u32(MADT_PCAT_COMPAT);
    for id in 0..cpu_count {
        // Processor Local APIC: type 0, length 8, ACPI processor UID, APIC ID, enabled.
        table.put_u8(0).put_u8(8).put_u8(id).put_u8(id).put_u32(1);
    }
    // I/O APIC: type 1, length 12, id, reserved, address, first GSI.
    table
        .put_u8(1)
        .put_u8(12)
        .put_u8(ioapic_id(cpu_count.into()))
        .put_u8(0)
        .put_u32(IOAPIC_ADDRESS)
        .put_u32(0);
    // Interrupt source overrides: type 2, length 10, bus 0 (ISA), IRQ, GSI, INTI flags. The
    // PIT's IRQ 0 is on GSI 2 (flags 0: ISA's edge, active high; see the PC layout for why
    // axvm routes it there); the SCI is level, high.
    for (irq, gsi, flags) in [
        (TIMER_IRQ, TIMER_IOAPIC_PIN, 0),
        (SCI_IRQ, SCI_IRQ, LEVEL_ACTIVE_HIGH),
    ] {
        table.put_u8(2).put_u8(10).put_u8(0).put_u8(irq);
        table.put_u32(gsi.into()).put_u16(flags);
    }
    // Local APIC NMI: type 4, length 6, every processor (0xff), flags 0, LINT1.
    table.put_u8(4).put_u8(6).put_u8(0xff).put_u16(0).put_u8(1);
    finish_sdt(table)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{le, sum};
    use super::*;
    use axvm::config::MAX_CPU_NUM;

    #[test]
    fn madt_lists_one_local_apic_per_vcpu() {
        for cpus in [1, 2, 4, MAX_CPU_NUM] {
            let madt = madt(cpus as u8);
            assert_eq!(sum(&madt), 0);
            let apics: Vec<_> = madt[44..].chunks(8).take_while(|e| e[0] == 0).collect();
            assert_eq!(apics.len(), cpus);
            assert!(apics
                .iter()
                .enumerate()
                .all(|(i, e)| e[2..4] == [i as u8; 2]));
            assert_eq!(madt[44 + 8 * cpus + 2], cpus as u8, "IOAPIC id");
        }
    }

    #[test]
    fn the_sci_is_overridden_as_level_triggered_active_high() {
        let madt = madt(2);
        let overrides = &madt[44 + 8 * 2 + 12..];
        let sci = overrides
            .chunks(10)
            .take_while(|e| e[0] == 2)
            .find(|e| e[3] == SCI_IRQ)
            .expect("an override for the SCI");
        assert_eq!((le::<4>(sci, 4), le::<2>(sci, 8)), (9, 0b1101));
    }
}
