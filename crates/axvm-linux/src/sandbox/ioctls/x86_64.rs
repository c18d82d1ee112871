//! The KVM `ioctl`s axvm's x86 threads issue (`axvm-kvm`).

use vmm_sys_util::{ioctl_io_nr, ioctl_ior_nr, ioctl_iow_nr, ioctl_iowr_nr};

ioctl_io_nr!(KVM_RUN, kvm_bindings::KVMIO, 0x80);
ioctl_ior_nr!(
    KVM_GET_REGS,
    kvm_bindings::KVMIO,
    0x81,
    kvm_bindings::kvm_regs
);
ioctl_iow_nr!(
    KVM_SET_REGS,
    kvm_bindings::KVMIO,
    0x82,
    kvm_bindings::kvm_regs
);
ioctl_ior_nr!(
    KVM_GET_SREGS,
    kvm_bindings::KVMIO,
    0x83,
    kvm_bindings::kvm_sregs
);
ioctl_iow_nr!(
    KVM_SET_SREGS,
    kvm_bindings::KVMIO,
    0x84,
    kvm_bindings::kvm_sregs
);
ioctl_iowr_nr!(
    KVM_TRANSLATE,
    kvm_bindings::KVMIO,
    0x85,
    kvm_bindings::kvm_translation
);
ioctl_ior_nr!(
    KVM_GET_FPU,
    kvm_bindings::KVMIO,
    0x8c,
    kvm_bindings::kvm_fpu
);
ioctl_iow_nr!(
    KVM_SET_FPU,
    kvm_bindings::KVMIO,
    0x8d,
    kvm_bindings::kvm_fpu
);
ioctl_ior_nr!(
    KVM_GET_MP_STATE,
    kvm_bindings::KVMIO,
    0x98,
    kvm_bindings::kvm_mp_state
);
ioctl_iow_nr!(
    KVM_SET_MP_STATE,
    kvm_bindings::KVMIO,
    0x99,
    kvm_bindings::kvm_mp_state
);
ioctl_iow_nr!(
    KVM_SIGNAL_MSI,
    kvm_bindings::KVMIO,
    0xa5,
    kvm_bindings::kvm_msi
);
ioctl_iow_nr!(
    KVM_SET_GUEST_DEBUG,
    kvm_bindings::KVMIO,
    0x9b,
    kvm_bindings::kvm_guest_debug
);
ioctl_iow_nr!(
    KVM_IRQ_LINE,
    kvm_bindings::KVMIO,
    0x61,
    kvm_bindings::kvm_irq_level
);
ioctl_ior_nr!(
    KVM_GET_PIT2,
    kvm_bindings::KVMIO,
    0x9f,
    kvm_bindings::kvm_pit_state2
);
ioctl_iow_nr!(
    KVM_SET_PIT2,
    kvm_bindings::KVMIO,
    0xa0,
    kvm_bindings::kvm_pit_state2
);
ioctl_io_nr!(KVM_REINJECT_CONTROL, kvm_bindings::KVMIO, 0x71);

/// The only `ioctl`s of a vCPU thread, the same on every KVM (kvm_intel, kvm_amd, kvm_pvm):
/// running the vCPU; its registers and run state (boot state, string I/O, MMIO reads, the
/// watchdog's snapshot, an emulation failure's report); translating the guest's RIP for
/// disassembly; raising interrupts (MSIs; lines: the HPET's level-triggered interrupts drop
/// when the guest clears them); the PIT's state, which the HPET's legacy replacement
/// switches (`KVM_PIT_FLAGS_HPET_LEGACY`, and `KVM_REINJECT_CONTROL` to drop the ticks KVM
/// holds back); and arming a debugger's breakpoints and steps
/// (`--gdb`).
pub(in crate::sandbox) fn vcpu_ioctls() -> Vec<u64> {
    [
        KVM_RUN(),
        KVM_GET_REGS(),
        KVM_SET_REGS(),
        KVM_GET_SREGS(),
        KVM_SET_SREGS(),
        KVM_TRANSLATE(),
        KVM_GET_FPU(),
        KVM_SET_FPU(),
        KVM_GET_MP_STATE(),
        KVM_SET_MP_STATE(),
        KVM_SIGNAL_MSI(),
        KVM_IRQ_LINE(),
        KVM_GET_PIT2(),
        KVM_SET_PIT2(),
        KVM_REINJECT_CONTROL(),
        KVM_SET_GUEST_DEBUG(),
    ]
    .map(u64::from)
    .to_vec()
}

/// The only `ioctl` of the HPET's timer thread: raising and lowering a GSI.
pub(in crate::sandbox) fn timer_ioctls() -> Vec<u64> {
    vec![KVM_IRQ_LINE()]
}

/// The console-input thread issues no `ioctl` on x86: COM1's interrupt goes through an
/// irqfd, which it writes.
pub(in crate::sandbox) fn console_input_ioctls() -> Vec<u64> {
    Vec::new()
}

/// The watcher issues no `ioctl` on x86: it reads the vCPUs' statistics files.
pub(in crate::sandbox) fn watcher_ioctls() -> Vec<u64> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_ioctl_numbers_are_the_kernel_ones() {
        // From <linux/kvm.h> on x86_64.
        assert_eq!(KVM_RUN(), 0xae80);
        assert_eq!(KVM_GET_REGS(), 0x8090_ae81);
        assert_eq!(KVM_SET_SREGS(), 0x4138_ae84);
        assert_eq!(KVM_SIGNAL_MSI(), 0x4020_aea5);
        assert_eq!(KVM_IRQ_LINE(), 0x4008_ae61);
        assert_eq!(KVM_GET_PIT2(), 0x8070_ae9f);
        assert_eq!(KVM_SET_PIT2(), 0x4070_aea0);
        assert_eq!(KVM_SET_GUEST_DEBUG(), 0x4048_ae9b);
    }
}
