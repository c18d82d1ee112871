//! The KVM `ioctl`s axvm's arm64 threads issue (`axvm-kvm-arm64`).

use vmm_sys_util::{ioctl_io_nr, ioctl_iow_nr};

ioctl_io_nr!(KVM_RUN, kvm_bindings::KVMIO, 0x80);
ioctl_iow_nr!(
    KVM_IRQ_LINE,
    kvm_bindings::KVMIO,
    0x61,
    kvm_bindings::kvm_irq_level
);
ioctl_iow_nr!(
    KVM_GET_ONE_REG,
    kvm_bindings::KVMIO,
    0xab,
    kvm_bindings::kvm_one_reg
);
ioctl_iow_nr!(
    KVM_SET_ONE_REG,
    kvm_bindings::KVMIO,
    0xac,
    kvm_bindings::kvm_one_reg
);

/// The only `ioctl`s of an arm64 vCPU thread: running the vCPU; its registers one by one
/// (the entry, x0, the PC for `--trace-exits` and reports, SCTLR_EL1 for whether the MMU
/// is on); and the PL011's interrupt line, which a guest's UART access raises or lowers.
pub(in crate::sandbox) fn vcpu_ioctls() -> Vec<u64> {
    [
        KVM_RUN(),
        KVM_GET_ONE_REG(),
        KVM_SET_ONE_REG(),
        KVM_IRQ_LINE(),
    ]
    .map(u64::from)
    .to_vec()
}

/// No arm64 thread raises timer interrupts: the arch timer is KVM's.
pub(in crate::sandbox) fn timer_ioctls() -> Vec<u64> {
    Vec::new()
}

/// The console-input thread raises the PL011's receive interrupt when it queues input.
pub(in crate::sandbox) fn console_input_ioctls() -> Vec<u64> {
    vec![KVM_IRQ_LINE()]
}

/// The watchdog reads each stopped vCPU's PC, registers and SCTLR_EL1 for its report.
pub(in crate::sandbox) fn watcher_ioctls() -> Vec<u64> {
    vec![KVM_GET_ONE_REG()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_ioctl_numbers_are_the_kernel_ones() {
        // From <linux/kvm.h> on aarch64.
        assert_eq!(KVM_RUN(), 0xae80);
        assert_eq!(KVM_IRQ_LINE(), 0x4008_ae61);
        assert_eq!(KVM_GET_ONE_REG(), 0x4010_aeab);
        assert_eq!(KVM_SET_ONE_REG(), 0x4010_aeac);
    }
}
