//! The HPET's wires into KVM: GSI levels through `KVM_IRQ_LINE` (a level-triggered
//! interrupt must be held high and lowered, which an irqfd cannot do), and the in-kernel
//! PIT's IRQ 0 output, which legacy replacement switches off with the PIT's
//! `KVM_PIT_FLAGS_HPET_LEGACY` flag, as QEMU does with KVM's PIT.
//!
//! The lines own a duplicate of the VM's descriptor, so the device (and its timer thread)
//! needs no reference to the [`KvmHal`](super::KvmHal), which the VM owns.

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use kvm_bindings::KVM_PIT_FLAGS_HPET_LEGACY;
use kvm_ioctls::{Kvm, VmFd};

use crate::devices::HpetLines;
use crate::error::KvmError;

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
    }
}
