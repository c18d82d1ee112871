//! How interrupt lines (GSIs) reach the in-kernel interrupt controllers: wired as on a PC.
//!
//! Why axvm replaces KVM's default routing is said once, in `platform::pc::layout` (its
//! "Interrupt wiring"): the timer's IRQ 0 must reach IOAPIC pin 2, which the ACPI and MP
//! tables declare. The table here: ISA IRQs 0-15 reach both 8259 PICs and the IOAPIC (IRQ 0
//! on [`TIMER_IOAPIC_PIN`], IRQ 2 being the cascade), and GSIs 16-23 reach IOAPIC pins
//! 16-23.

use kvm_bindings::{
    kvm_irq_routing_entry, KvmIrqRouting, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KVM_IRQ_ROUTING_IRQCHIP,
};
use kvm_ioctls::VmFd;

use crate::error::KvmError;
use crate::platform::pc::layout::{
    CASCADE_IRQ, IOAPIC_PINS, ISA_IRQS, TIMER_IOAPIC_PIN, TIMER_IRQ,
};

fn entry(gsi: u32, irqchip: u32, pin: u32) -> kvm_irq_routing_entry {
    let mut entry = kvm_irq_routing_entry {
        gsi,
        type_: KVM_IRQ_ROUTING_IRQCHIP,
        ..Default::default()
    };
    entry.u.irqchip.irqchip = irqchip;
    entry.u.irqchip.pin = pin;
    entry
}

/// The PC routing table (see the module documentation).
fn pc_routing() -> Vec<kvm_irq_routing_entry> {
    let mut entries = Vec::new();
    for irq in (0..ISA_IRQS).filter(|&irq| irq != CASCADE_IRQ) {
        let pic = if irq < 8 {
            KVM_IRQCHIP_PIC_MASTER
        } else {
            KVM_IRQCHIP_PIC_SLAVE
        };
        entries.push(entry(irq.into(), pic, u32::from(irq % 8)));
    }
    for gsi in (0..IOAPIC_PINS).filter(|&gsi| gsi != CASCADE_IRQ) {
        let pin = if gsi == TIMER_IRQ {
            TIMER_IOAPIC_PIN
        } else {
            gsi
        };
        entries.push(entry(gsi.into(), KVM_IRQCHIP_IOAPIC, pin.into()));
    }
    entries
}

/// Installs the PC routing on `vm` (which has an in-kernel irqchip).
pub(crate) fn set_pc_routing(vm: &VmFd) -> Result<(), KvmError> {
    let routing = KvmIrqRouting::from_entries(&pc_routing()).map_err(KvmError::RoutingTable)?;
    vm.set_gsi_routing(&routing)
        .map_err(KvmError::ioctl("KVM_SET_GSI_ROUTING"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes_of(gsi: u32) -> Vec<(u32, u32)> {
        pc_routing()
            .iter()
            .filter(|e| e.gsi == gsi)
            // SAFETY: every entry is of type IRQCHIP, so `irqchip` is the active member.
            .map(|e| unsafe { (e.u.irqchip.irqchip, e.u.irqchip.pin) })
            .collect()
    }

    #[test]
    fn the_timer_reaches_pic_irq_0_and_ioapic_pin_2() {
        assert_eq!(
            routes_of(0),
            vec![(KVM_IRQCHIP_PIC_MASTER, 0), (KVM_IRQCHIP_IOAPIC, 2)]
        );
    }

    #[test]
    fn isa_lines_reach_both_controllers_and_nothing_drives_ioapic_pin_0() {
        assert_eq!(
            routes_of(4),
            vec![(KVM_IRQCHIP_PIC_MASTER, 4), (KVM_IRQCHIP_IOAPIC, 4)]
        );
        assert_eq!(
            routes_of(9),
            vec![(KVM_IRQCHIP_PIC_SLAVE, 1), (KVM_IRQCHIP_IOAPIC, 9)]
        );
        assert_eq!(routes_of(20), vec![(KVM_IRQCHIP_IOAPIC, 20)]);
        assert!(routes_of(2).is_empty());
        let drives_pin_0 = pc_routing()
            .iter()
            .any(|e| unsafe { e.u.irqchip.irqchip == KVM_IRQCHIP_IOAPIC && e.u.irqchip.pin == 0 });
        assert!(!drives_pin_0);
    }
}
