//! Which pass-through ranges this host can give a guest. A Linux process cannot map
//! host-physical memory, so the only "pass-through" it can honour is of the interrupt
//! controller pages KVM's in-kernel irqchip emulates at the same addresses: ArceOS
//! hypervisor configs list the local APIC and IOAPIC as pass-through devices, and they keep
//! working. `KvmHal::map_passthrough` and `axvm check` both ask here, so they cannot disagree.

use axvm::{GuestPhysAddr, HostPhysAddr};
use kvm_ioctls::{Cap, Kvm};

use crate::error::KvmError;
use crate::platform::pc::layout::{APIC_PAGE_SIZE, IOAPIC_ADDRESS, LOCAL_APIC_ADDRESS};

/// Register pages KVM's in-kernel irqchip emulates.
const IRQCHIP_PAGES: [(u32, &str); 2] = [
    (LOCAL_APIC_ADDRESS, "local APIC"),
    (IOAPIC_ADDRESS, "IOAPIC"),
];

/// `Ok(what serves it)` when this host can give the guest `size` bytes of host-physical
/// `hpa` at `gpa`, with an in-kernel irqchip when `irqchip`; otherwise why not, with the fix.
pub fn pass_through_plan(
    gpa: GuestPhysAddr,
    hpa: HostPhysAddr,
    size: u64,
    irqchip: bool,
) -> Result<&'static str, KvmError> {
    let served = IRQCHIP_PAGES.iter().find(|(page, _)| {
        let page = u64::from(*page);
        irqchip && gpa.as_u64() == page && hpa.as_u64() == page && size <= APIC_PAGE_SIZE
    });
    match served {
        Some((_, name)) => Ok(name),
        None => Err(KvmError::NoHostPhysicalMemory),
    }
}

/// Whether KVM here has the in-kernel irqchip (false when /dev/kvm cannot be opened:
/// `axvm check` reports that separately).
pub fn has_in_kernel_irqchip() -> bool {
    Kvm::new().is_ok_and(|kvm| kvm.check_extension(Cap::Irqchip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_irqchip_pages_are_served() {
        let page = |addr| (GuestPhysAddr::new(addr), HostPhysAddr::new(addr));
        let (gpa, hpa) = page(0xfee0_0000);
        assert_eq!(pass_through_plan(gpa, hpa, 0x1000, true), Ok("local APIC"));
        assert!(pass_through_plan(gpa, hpa, 0x1000, false).is_err());
        let (gpa, hpa) = page(0xfed0_0000);
        assert!(pass_through_plan(gpa, hpa, 0x1000, true)
            .unwrap_err()
            .to_string()
            .contains("remove the entry"));
        let (gpa, _) = page(0xfec0_0000);
        assert!(pass_through_plan(gpa, HostPhysAddr::new(0xfec0_1000), 0x1000, true).is_err());
    }
}
