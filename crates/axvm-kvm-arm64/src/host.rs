//! [`check_host`]: what this arm64 host's KVM offers a VM, for `axvm check`.

use axvm_virt::GicVersion;
use kvm_bindings::{
    kvm_create_device, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2,
    kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3,
};
use kvm_ioctls::{Cap, Kvm};

use crate::error::Arm64Error;

/// The arm64 KVM features axvm uses or reports.
///
/// ```no_run
/// # #[cfg(target_arch = "aarch64")] {
/// let report = axvm_kvm_arm64::check_host().unwrap();
/// assert!(report.psci_0_2, "axvm needs PSCI 0.2 in the kernel");
/// println!("guests get a GIC{:?}", report.gic);
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostReport {
    /// `KVM_GET_API_VERSION` (12 on every kernel since 2.6.22).
    pub api_version: i32,
    /// The largest guest-physical address size, in bits, a VM can have
    /// (`KVM_CAP_ARM_VM_IPA_SIZE`; 40 when the kernel cannot change it).
    pub ipa_bits: u32,
    /// The interrupt controller guests get: a GICv3 when the host can emulate one, else a
    /// GICv2; `None` when it can neither (no VM can run).
    pub gic: Option<GicVersion>,
    /// Whether the host's vGIC can also be a GICv2 (a GICv3 host with GICv2 compatibility).
    pub gic_v2_too: bool,
    /// PSCI 0.2 in the kernel (`CPU_ON`, `SYSTEM_OFF`, ...): required.
    pub psci_0_2: bool,
    /// A virtual PMU (`KVM_CAP_ARM_PMU_V3`), which axvm does not give guests yet.
    pub pmu_v3: bool,
    /// SVE for guests (`KVM_CAP_ARM_SVE`), which axvm does not enable yet.
    pub sve: bool,
    /// Pointer authentication for guests, which axvm does not enable yet.
    pub pointer_auth: bool,
    /// The largest number of vCPUs a VM can have (`KVM_CAP_MAX_VCPUS`).
    pub max_vcpus: usize,
}

/// Opens `/dev/kvm` and asks it what a VM would get.
pub fn check_host() -> Result<HostReport, Arm64Error> {
    let kvm = Kvm::new().map_err(|errno| Arm64Error::Open { errno })?;
    let v3 = can_create(&kvm, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V3)?;
    let v2 = can_create(&kvm, kvm_device_type_KVM_DEV_TYPE_ARM_VGIC_V2)?;
    let ipa = kvm.get_host_ipa_limit();
    Ok(HostReport {
        api_version: kvm.get_api_version(),
        ipa_bits: if ipa > 0 { ipa as u32 } else { 40 },
        gic: match (v3, v2) {
            (true, _) => Some(GicVersion::V3),
            (false, true) => Some(GicVersion::V2),
            (false, false) => None,
        },
        gic_v2_too: v3 && v2,
        psci_0_2: kvm.check_extension(Cap::ArmPsci02),
        pmu_v3: kvm.check_extension(Cap::ArmPmuV3),
        sve: kvm.check_extension(Cap::ArmSve),
        pointer_auth: kvm.check_extension(Cap::ArmPtrAuthAddress)
            && kvm.check_extension(Cap::ArmPtrAuthGeneric),
        max_vcpus: kvm.get_max_vcpus(),
    })
}

/// Whether KVM creates an in-kernel device of `kind`, tried in a VM of its own (a VM has
/// one vGIC). Not `KVM_CREATE_DEVICE_TEST`: kvm-ioctls would take the unset fd of a test
/// for a device's and close it.
fn can_create(kvm: &Kvm, kind: u32) -> Result<bool, Arm64Error> {
    let vm = kvm
        .create_vm()
        .map_err(Arm64Error::ioctl("KVM_CREATE_VM"))?;
    let mut device = kvm_create_device {
        type_: kind,
        fd: 0,
        flags: 0,
    };
    Ok(vm.create_device(&mut device).is_ok())
}
