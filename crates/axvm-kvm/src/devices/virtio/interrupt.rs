//! A virtio-mmio device's interrupt: the InterruptStatus bits the driver reads and
//! acknowledges, and the line that tells it to look.

use std::sync::atomic::{AtomicU32, Ordering};

use virtio_bindings::virtio_mmio::{VIRTIO_MMIO_INT_CONFIG, VIRTIO_MMIO_INT_VRING};
use vmm_sys_util::eventfd::EventFd;

/// The interrupt of one virtio-mmio device.
///
/// The status bits are atomic so the device thread raises them while a vCPU reads or
/// acknowledges them without a lock. The line is an irqfd (a pulse on the device's GSI,
/// without a trip through a vCPU thread); without an interrupt controller there is none,
/// and the driver polls.
///
/// ```
/// use axvm_kvm::VirtioInterrupt;
/// let interrupt = VirtioInterrupt::new(None);
/// interrupt.signal_used();
/// assert_eq!(interrupt.status(), 1);
/// interrupt.acknowledge(1);
/// assert_eq!(interrupt.status(), 0);
/// ```
#[derive(Debug)]
pub struct VirtioInterrupt {
    status: AtomicU32,
    line: Option<EventFd>,
}

impl VirtioInterrupt {
    /// An interrupt raised through `line` (an irqfd), or only through its status bits.
    pub fn new(line: Option<EventFd>) -> Self {
        Self {
            status: AtomicU32::new(0),
            line,
        }
    }

    /// The device used buffers of a queue.
    pub fn signal_used(&self) {
        self.raise(VIRTIO_MMIO_INT_VRING);
    }

    /// The device's configuration (or its status: `DEVICE_NEEDS_RESET`) changed.
    pub fn signal_config(&self) {
        self.raise(VIRTIO_MMIO_INT_CONFIG);
    }

    fn raise(&self, bit: u32) {
        self.status.fetch_or(bit, Ordering::SeqCst);
        if let Some(line) = &self.line {
            if let Err(err) = line.write(1) {
                log::warn!("virtio interrupt not delivered: {err}");
            }
        }
    }

    /// The InterruptStatus register.
    pub fn status(&self) -> u32 {
        self.status.load(Ordering::SeqCst)
    }

    /// The driver's write to InterruptACK: clears the bits it handled.
    pub fn acknowledge(&self, bits: u32) {
        self.status.fetch_and(!bits, Ordering::SeqCst);
    }

    /// A device reset clears every bit.
    pub fn clear(&self) {
        self.status.store(0, Ordering::SeqCst);
    }
}
