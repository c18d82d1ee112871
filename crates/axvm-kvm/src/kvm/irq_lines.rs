//! The HPET's wires into KVM: GSI levels through `KVM_IRQ_LINE` (a level-triggered
//! interrupt must be held high and lowered, which an irqfd cannot do), and the in-kernel
//! PIT's IRQ 0 output, which legacy replacement switches off with the PIT's
//! `KVM_PIT_FLAGS_HPET_LEGACY` flag, as QEMU does with KVM's PIT, dropping the ticks KVM
//! still holds for reinjection.
//!
//! The lines own a duplicate of the VM's descriptor, so the device (and its timer thread)
//! needs no reference to the [`KvmHal`](super::KvmHal), which the VM owns.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use kvm_bindings::{kvm_reinject_control, KVMIO, KVM_PIT_FLAGS_HPET_LEGACY};
use kvm_ioctls::{Kvm, VmFd};
use vmm_sys_util::errno;
use vmm_sys_util::ioctl::ioctl_with_ref;
use vmm_sys_util::ioctl_io_nr;

use crate::devices::HpetLines;
use crate::error::KvmError;

// KVM_REINJECT_CONTROL: `_IO(KVMIO, 0x71)`, taking a `kvm_reinject_control`.
ioctl_io_nr!(KVM_REINJECT_CONTROL, KVMIO, 0x71);

/// [`HpetLines`] on a KVM VM with an in-kernel irqchip and PIT.
pub struct KvmHpetLines {
    vm: VmFd,
    /// Whether a failed ioctl was logged already (one warning, not one per tick).
    warned: AtomicBool,
}

impl KvmHpetLines {
    /// Lines into the VM `vm`.
    pub(crate) fn new(vm: &VmFd) -> Result<Self, KvmError> {
        let kvm = Kvm::new().map_err(|errno| KvmError::Open { errno })?;
        // SAFETY: dup of a descriptor this process owns; the result is owned by the VmFd.
        let fd = unsafe { libc::dup(vm.as_raw_fd()) };
        if fd < 0 {
            return Err(KvmError::IrqLine {
                gsi: 0,
                operation: "dup of the VM descriptor for the HPET",
                errno: vmm_sys_util::errno::Error::last(),
            });
        }
        // SAFETY: `fd` is a fresh duplicate of a KVM VM descriptor, owned from here on.
        let vm =
            unsafe { kvm.create_vmfd_from_rawfd(fd) }.map_err(|errno| KvmError::Open { errno })?;
        Ok(Self {
            vm,
            warned: AtomicBool::new(false),
        })
    }

    /// Drops the PIT ticks KVM holds for reinjection. In its default mode KVM counts the
    /// ticks a busy guest did not take and delivers one at each later EOI of IRQ 0, which
    /// under legacy replacement is the HPET's timer 0: they would come as early timer
    /// interrupts. Turning reinjection off resets nothing; turning it on again does.
    fn drop_pending_pit_ticks(&self) -> Result<(), errno::Error> {
        for pit_reinject in [0, 1] {
            let control = kvm_reinject_control {
                pit_reinject,
                ..Default::default()
            };
            // SAFETY: KVM_REINJECT_CONTROL reads one `kvm_reinject_control`, which lives
            // through the call; the descriptor is this VM's.
            let result = unsafe { ioctl_with_ref(&self.vm, KVM_REINJECT_CONTROL(), &control) };
            if result < 0 {
                return Err(errno::Error::last());
            }
        }
        Ok(())
    }

    fn warn_once(&self, what: &str, err: &dyn std::fmt::Display) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            log::warn!("HPET: {what} failed: {err}; its interrupts may be lost");
        }
    }
}

impl HpetLines for KvmHpetLines {
    fn set_level(&self, gsi: u32, high: bool) {
        if let Err(err) = self.vm.set_irq_line(gsi, high) {
            self.warn_once(&format!("KVM_IRQ_LINE of GSI {gsi}"), &err);
        }
    }

    fn pit_output(&self, enabled: bool) {
        let result = self.vm.get_pit2().and_then(|mut state| {
            state.flags = if enabled {
                state.flags & !KVM_PIT_FLAGS_HPET_LEGACY
            } else {
                state.flags | KVM_PIT_FLAGS_HPET_LEGACY
            };
            self.vm.set_pit2(&state)
        });
        match result {
            Ok(()) => log::debug!(
                "HPET legacy replacement {}: the PIT's IRQ 0 is {}",
                if enabled { "off" } else { "on" },
                if enabled { "back" } else { "silenced" }
            ),
            Err(err) => self.warn_once("switching the PIT's output (KVM_SET_PIT2)", &err),
        }
        if !enabled {
            if let Err(err) = self.drop_pending_pit_ticks() {
                self.warn_once(
                    "dropping the PIT's pending ticks (KVM_REINJECT_CONTROL)",
                    &err,
                );
            }
        }
    }
}
