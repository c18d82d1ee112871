//! virtio devices on the virtio-mmio transport (VIRTIO 1.x, register layout version 2).
//!
//! A virtio device is split the way the specification splits it:
//! - [`VirtioMmio`] is the transport: the registers the driver reads and writes on a vCPU
//!   thread (feature negotiation, queue addresses, status, interrupt acknowledgement). It is
//!   the [`BaseDeviceOps`](axvm::device::BaseDeviceOps) the VM's device manager sees.
//! - A [`VirtioDevice`] (block, network, console) is the device proper: its configuration
//!   space and what it does with the buffers the driver puts in its queues.
//! - The [`VirtioThread`] of a VM does that work, off the vCPU threads: a queue notification
//!   reaches it through an ioeventfd (KVM completes the guest's write to QueueNotify without
//!   leaving the kernel), and the device's interrupt leaves it through an irqfd. A slow disk
//!   therefore never stalls a vCPU.
//!
//! Nothing the driver writes is trusted: queue sizes and addresses are checked against guest
//! RAM before the device is activated ([`virtio_queue`] walks descriptor chains with the same
//! care), and a driver that breaks the rules gets `DEVICE_NEEDS_RESET`, never a panic.

mod block;
mod console;
mod interrupt;
mod mmio;
mod net;
mod setup;
#[cfg(test)]
mod tests;
mod thread;

pub use block::{Disk, VirtioBlock};
pub use interrupt::VirtioInterrupt;
pub use mmio::VirtioMmio;
pub use net::{
    FramePort, NetCounters, Switch, SwitchPort, Tap, VirtioNet, MAX_FRAME_LEN, NET_HDR_LEN,
    PORT_QUEUE_FRAMES,
};
pub use setup::{check_virtio_devices, is_virtio, virtio_devices};
pub use thread::VirtioThread;

use std::os::fd::RawFd;

use event_manager::EventSet;
use virtio_queue::{DescriptorChain, Queue};
use vm_memory::GuestMemoryMmap;

/// Guest RAM as devices reach it: every memory region of the VM, bounds-checked.
pub type GuestRam = GuestMemoryMmap;

/// The feature bit every device offers: the driver speaks VIRTIO 1.x (no legacy layout).
pub const VIRTIO_F_VERSION_1: u64 = 1 << virtio_bindings::virtio_config::VIRTIO_F_VERSION_1;

/// Why a device stopped serving its driver: the transport sets `DEVICE_NEEDS_RESET`, tells
/// the driver through a configuration-change interrupt, and logs this.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFault {
    /// The driver broke the virtio rules (a malformed request or descriptor chain).
    #[error("the driver {0}")]
    Driver(String),
    /// The host side failed (the disk file, the network).
    #[error("host: {0}")]
    Host(String),
}

/// The queues of an active device and the means to hand buffers back: what a
/// [`VirtioDevice`] works with.
pub struct QueueContext<'a> {
    /// The device's queues, in the order of [`VirtioDevice::queue_max_sizes`].
    pub queues: &'a mut [Queue],
    /// Guest RAM.
    pub ram: &'a GuestRam,
    /// The device's interrupt.
    pub interrupt: &'a VirtioInterrupt,
}

impl<'a> QueueContext<'a> {
    /// Returns the chain at `head` of queue `index` to the driver with `len` bytes written,
    /// and interrupts the driver when it asked to be told.
    pub fn add_used(&mut self, index: usize, head: u16, len: u32) -> Result<(), DeviceFault> {
        use virtio_queue::QueueT;
        let ram = self.ram;
        let queue = self.queue(index)?;
        queue
            .add_used(ram, head, len)
            .map_err(|err| DeviceFault::Driver(format!("gave a bad used ring: {err}")))?;
        let notify = queue.needs_notification(ram).unwrap_or(true);
        if notify {
            self.interrupt.signal_used();
        }
        Ok(())
    }

    /// The next descriptor chain the driver made available in queue `index`, if any.
    ///
    /// Use this rather than `pop_descriptor_chain`, which only logs a broken available
    /// ring and answers `None`: a driver whose available index runs more than a queue's
    /// worth ahead would then leave `enable_notification` reporting work forever, and the
    /// device would spin with its transport locked. Here that driver gets a fault.
    pub fn pop_chain(
        &mut self,
        index: usize,
    ) -> Result<Option<DescriptorChain<&'a GuestRam>>, DeviceFault> {
        use virtio_queue::QueueOwnedT;
        let ram = self.ram;
        let queue = self.queue(index)?;
        let mut chains = queue.iter(ram).map_err(|err| {
            DeviceFault::Driver(format!("gave queue {index} a bad available ring: {err}"))
        })?;
        Ok(chains.next())
    }

    /// Queue `index`, or a fault naming it when the device has no such queue.
    pub fn queue(&mut self, index: usize) -> Result<&mut Queue, DeviceFault> {
        self.queues
            .get_mut(index)
            .ok_or_else(|| DeviceFault::Host(format!("no queue {index}")))
    }
}

/// A host file descriptor whose readiness means work for a device (a tap with frames to
/// receive, console input), and the events that count.
#[derive(Clone, Copy, Debug)]
pub struct BackendEvent {
    /// The descriptor, owned by the device.
    pub fd: RawFd,
    /// What to wait for (readable, usually; edge-triggered where the device drains it).
    pub events: EventSet,
}

/// One kind of virtio device: what the transport offers the driver, and what the device
/// does with its queues. Called with the transport's lock held, so one call at a time.
pub trait VirtioDevice: Send {
    /// The virtio device ID (`VIRTIO_ID_BLOCK`, ...).
    fn device_type(&self) -> u32;

    /// The feature bits the device offers, besides [`VIRTIO_F_VERSION_1`], which the
    /// transport always offers and requires.
    fn features(&self) -> u64;

    /// The largest size of each queue; the slice's length is the number of queues.
    fn queue_max_sizes(&self) -> &[u16];

    /// Reads the device configuration space at `offset` into `data`; bytes past the end of
    /// the space read as zero.
    fn read_config(&self, offset: u64, data: &mut [u8]);

    /// Writes the device configuration space; devices whose space is read-only ignore it.
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}

    /// The driver set DRIVER_OK having accepted `features`: the queues are valid from now
    /// until the next [`reset`](Self::reset).
    fn activate(&mut self, _features: u64) -> Result<(), DeviceFault> {
        Ok(())
    }

    /// Processes the buffers the driver made available in queue `index`.
    fn process_queue(&mut self, index: usize, queues: QueueContext<'_>) -> Result<(), DeviceFault>;

    /// Host descriptors whose readiness means work (see [`BackendEvent`]); asked once,
    /// when the VM's [`VirtioThread`] starts.
    fn backend_events(&self) -> Vec<BackendEvent> {
        Vec::new()
    }

    /// Handles readiness of a [`backend_events`](Self::backend_events) descriptor while
    /// the device is active.
    fn process_backend(
        &mut self,
        _fd: RawFd,
        _queues: QueueContext<'_>,
    ) -> Result<(), DeviceFault> {
        Ok(())
    }

    /// The driver reset the device: forget what activation set up.
    fn reset(&mut self) {}
}
