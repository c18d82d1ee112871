//! Which pass-through ranges this host can give a guest. A Linux process cannot map
//! host-physical memory, so what it honours are pass-throughs of the PC's standard platform
//! devices, which mean "give the guest that device": the interrupt controller pages KVM's
//! in-kernel irqchip emulates at the same addresses, and the HPET's page, which axvm's
//! emulated HPET (`devices/hpet.rs`) serves. ArceOS hypervisor configs for x86 list all
//! three (local APIC, IOAPIC, HPET), and they keep working. `KvmHal::map_passthrough`,
//! `axvm check` and the platform's device list all ask here, so they cannot disagree.

use axvm::{AxVMConfig, GuestPhysAddr, HostPhysAddr};
use kvm_ioctls::{Cap, Kvm};

use crate::error::KvmError;
use crate::platform::pc::layout::{
    APIC_PAGE_SIZE, HPET_ADDRESS, HPET_PAGE_SIZE, IOAPIC_ADDRESS, LOCAL_APIC_ADDRESS,
};

/// A platform device page this host serves, and by what.
struct ServedPage {
    address: u64,
    size: u64,
    /// Whether it needs KVM's in-kernel irqchip.
    needs_irqchip: bool,
    /// "device (served by)", as `axvm check` prints it.
    label: &'static str,
}

/// The platform device pages a pass-through may name.
const SERVED_PAGES: [ServedPage; 3] = [
    ServedPage {
        address: LOCAL_APIC_ADDRESS as u64,
        size: APIC_PAGE_SIZE,
        needs_irqchip: true,
        label: "local APIC (KVM's in-kernel irqchip)",
    },
    ServedPage {
        address: IOAPIC_ADDRESS as u64,
        size: APIC_PAGE_SIZE,
        needs_irqchip: true,
        label: "IOAPIC (KVM's in-kernel irqchip)",
    },
    ServedPage {
        address: HPET_ADDRESS,
        size: HPET_PAGE_SIZE,
        needs_irqchip: false,
        label: "HPET (emulated)",
    },
];

/// `Ok(what serves it)` when this host can give the guest `size` bytes of host-physical
/// `hpa` at `gpa`, with an in-kernel irqchip when `irqchip`; otherwise why not, with the fix.
pub fn pass_through_plan(
    gpa: GuestPhysAddr,
    hpa: HostPhysAddr,
    size: u64,
    irqchip: bool,
) -> Result<&'static str, KvmError> {
    SERVED_PAGES
        .iter()
        .find(|page| {
            (irqchip || !page.needs_irqchip)
                && gpa.as_u64() == page.address
                && hpa.as_u64() == page.address
                && size <= page.size
        })
        .map(|page| page.label)
        .ok_or(KvmError::NoHostPhysicalMemory)
}

/// Whether the VM `config` describes gets the emulated HPET: when it passes the HPET's page
/// through, as ArceOS hypervisor configs do. VMs that do not ask keep the platform they had
/// (no HPET table, no timer thread), so a kernel's clock choice never changes behind a
/// config's back; QEMU's PC, which always has one, is what such a config reproduces.
pub fn emulated_hpet(config: &AxVMConfig) -> bool {
    // The same rule as [`pass_through_plan`]'s HPET page, written once for every host.
    axvm_pc::config_devices::has_hpet(config)
}

/// Whether KVM here has the in-kernel irqchip (false when /dev/kvm cannot be opened:
/// `axvm check` reports that separately).
pub fn has_in_kernel_irqchip() -> bool {
    Kvm::new().is_ok_and(|kvm| kvm.check_extension(Cap::Irqchip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(addr: u64) -> (GuestPhysAddr, HostPhysAddr) {
        (GuestPhysAddr::new(addr), HostPhysAddr::new(addr))
    }

    #[test]
    fn the_irqchip_pages_are_served_by_the_irqchip() {
        let (gpa, hpa) = page(0xfee0_0000);
        assert_eq!(
            pass_through_plan(gpa, hpa, 0x1000, true),
            Ok("local APIC (KVM's in-kernel irqchip)")
        );
        assert!(pass_through_plan(gpa, hpa, 0x1000, false).is_err());
        let (gpa, _) = page(0xfec0_0000);
        assert!(pass_through_plan(gpa, HostPhysAddr::new(0xfec0_1000), 0x1000, true).is_err());
    }

    #[test]
    fn the_hpet_page_is_served_by_emulation_with_or_without_irqchip() {
        let (gpa, hpa) = page(0xfed0_0000);
        for irqchip in [true, false] {
            assert_eq!(
                pass_through_plan(gpa, hpa, 0x1000, irqchip),
                Ok("HPET (emulated)")
            );
            assert_eq!(
                pass_through_plan(gpa, hpa, 0x400, irqchip),
                Ok("HPET (emulated)")
            );
        }
        // More than its page, elsewhere, or another host page: host memory, refused.
        assert!(pass_through_plan(gpa, hpa, 0x2000, true).is_err());
        let (other, _) = page(0xfed0_1000);
        assert!(pass_through_plan(other, hpa, 0x1000, true).is_err());
        assert!(
            pass_through_plan(gpa, HostPhysAddr::new(0xfed0_1000), 0x1000, true)
                .unwrap_err()
                .to_string()
                .contains("remove the entry")
        );
    }

    #[test]
    fn the_hpet_is_emulated_when_the_config_passes_it_through() {
        let mut config = AxVMConfig::new("hpet", 1);
        assert!(!emulated_hpet(&config));
        let row = |name: &str, addr: u64| axvm::PassThroughDeviceConfig {
            name: name.into(),
            base_gpa: GuestPhysAddr::new(addr),
            base_hpa: HostPhysAddr::new(addr),
            length: 0x1000,
            irq_id: 1,
        };
        config
            .pass_through_devices
            .push(row("IO APIC", 0xfec0_0000));
        assert!(!emulated_hpet(&config));
        config.pass_through_devices.push(row("HPET", 0xfed0_0000));
        assert!(emulated_hpet(&config));
        config.pass_through_devices[1].base_hpa = HostPhysAddr::new(0xfed0_2000);
        assert!(!emulated_hpet(&config));
    }
}
