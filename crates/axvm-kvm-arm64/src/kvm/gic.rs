//! The in-kernel vGIC: KVM emulates the distributor and redistributors (or the GICv2 CPU
//! interface) itself, so guests program their interrupt controller without exits, and the
//! arch timer's interrupts reach them without the VMM.

use axvm_virt::layout::{GICV2_CPU_BASE, GIC_DIST_BASE, GIC_REDIST_BASE, SPI_BASE_INTID};
use axvm_virt::GicVersion;
use kvm_bindings::{
    kvm_create_device, kvm_device_attr, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2,
    kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3, KVM_DEV_ARM_VGIC_CTRL_INIT,
    KVM_DEV_ARM_VGIC_GRP_ADDR, KVM_DEV_ARM_VGIC_GRP_CTRL, KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
    KVM_VGIC_V2_ADDR_TYPE_CPU, KVM_VGIC_V2_ADDR_TYPE_DIST, KVM_VGIC_V3_ADDR_TYPE_DIST,
    KVM_VGIC_V3_ADDR_TYPE_REDIST,
};
use kvm_ioctls::{DeviceFd, VmFd};

use crate::error::Arm64Error;

/// Interrupt ids the vGIC has: the 32 private ones and 96 SPIs (the PL011 uses SPI 1; the
/// rest are for devices to come). A multiple of 32, as KVM requires.
const NR_IRQS: u32 = SPI_BASE_INTID + 96;

/// The VM's in-kernel GIC.
pub(crate) struct Vgic {
    device: DeviceFd,
    version: GicVersion,
}

impl Vgic {
    /// Creates the vGIC, a GICv3 if the host has one, else a GICv2, and places it at the
    /// board's addresses. Call after every vCPU is created and before any runs, then
    /// [`finish`](Self::finish).
    pub(crate) fn create(vm: &VmFd) -> Result<Self, Arm64Error> {
        let v3 = match create_device(vm, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3) {
            Ok(device) => {
                return Self::placed(device, GicVersion::V3);
            }
            Err(errno) => errno,
        };
        match create_device(vm, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2) {
            Ok(device) => Self::placed(device, GicVersion::V2),
            Err(v2) => Err(Arm64Error::NoVgic { v3, v2 }),
        }
    }

    fn placed(device: DeviceFd, version: GicVersion) -> Result<Self, Arm64Error> {
        let gic = Self { device, version };
        match version {
            GicVersion::V3 => {
                gic.set_address(KVM_VGIC_V3_ADDR_TYPE_DIST, GIC_DIST_BASE)?;
                gic.set_address(KVM_VGIC_V3_ADDR_TYPE_REDIST, GIC_REDIST_BASE)?;
            }
            GicVersion::V2 => {
                gic.set_address(KVM_VGIC_V2_ADDR_TYPE_DIST, GIC_DIST_BASE)?;
                gic.set_address(KVM_VGIC_V2_ADDR_TYPE_CPU, GICV2_CPU_BASE)?;
            }
        }
        let nr_irqs = NR_IRQS;
        gic.set_attr(
            KVM_DEV_ARM_VGIC_GRP_NR_IRQS,
            0,
            &nr_irqs as *const u32 as u64,
            "setting the vGIC's number of interrupts",
        )?;
        Ok(gic)
    }

    /// Initializes the vGIC; after this no vCPU can be added.
    pub(crate) fn finish(&self) -> Result<(), Arm64Error> {
        self.set_attr(
            KVM_DEV_ARM_VGIC_GRP_CTRL,
            u64::from(KVM_DEV_ARM_VGIC_CTRL_INIT),
            0,
            "initializing the vGIC (KVM_DEV_ARM_VGIC_CTRL_INIT)",
        )
    }

    /// Which GIC the guest has.
    pub(crate) fn version(&self) -> GicVersion {
        self.version
    }

    fn set_address(&self, kind: u32, address: u64) -> Result<(), Arm64Error> {
        self.set_attr(
            KVM_DEV_ARM_VGIC_GRP_ADDR,
            u64::from(kind),
            &address as *const u64 as u64,
            "placing the vGIC (KVM_DEV_ARM_VGIC_GRP_ADDR)",
        )
    }

    fn set_attr(
        &self,
        group: u32,
        attr: u64,
        addr: u64,
        operation: &'static str,
    ) -> Result<(), Arm64Error> {
        let attribute = kvm_device_attr {
            group,
            attr,
            addr,
            flags: 0,
        };
        self.device
            .set_device_attr(&attribute)
            .map_err(Arm64Error::ioctl(operation))
    }
}

fn create_device(vm: &VmFd, kind: u32) -> Result<DeviceFd, vmm_sys_util::errno::Error> {
    let mut device = kvm_create_device {
        type_: kind,
        fd: 0,
        flags: 0,
    };
    vm.create_device(&mut device)
}
