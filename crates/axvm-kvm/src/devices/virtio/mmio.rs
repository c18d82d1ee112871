//! The virtio-mmio transport, register layout version 2 ("modern"): what the driver reads and
//! writes to discover a device, negotiate features, place its queues and drive its status.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};
use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED, VIRTIO_CONFIG_S_FEATURES_OK,
    VIRTIO_CONFIG_S_NEEDS_RESET,
};
use virtio_bindings::virtio_mmio::*;
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::eventfd::EventFd;

use super::{
    DeviceFault, GuestRam, QueueContext, VirtioDevice, VirtioInterrupt, VIRTIO_F_VERSION_1,
};

/// "virt", little-endian: the first register of every virtio-mmio device.
const MAGIC: u32 = 0x7472_6976;
/// The register layout this transport implements (1 was the legacy layout).
const VERSION: u32 = 2;
/// The vendor ID the driver sees ("AXVM" would not fit the PCI convention; any value will
/// do for MMIO, drivers only print it).
const VENDOR_ID: u32 = 0x4158_564d;

/// A virtio device at a guest-physical window, as the VM's device manager sees it.
///
/// ```
/// use axvm::device::{BaseDeviceOps, DeviceOffset};
/// use axvm::{AccessWidth, EmulatedDeviceType};
/// use axvm_kvm::{VirtioInterrupt, VirtioMmio};
/// # use axvm_kvm::{QueueContext, DeviceFault, VirtioDevice};
/// # struct Nothing;
/// # impl VirtioDevice for Nothing {
/// #     fn device_type(&self) -> u32 { 42 }
/// #     fn features(&self) -> u64 { 0 }
/// #     fn queue_max_sizes(&self) -> &[u16] { &[8] }
/// #     fn read_config(&self, _offset: u64, data: &mut [u8]) { data.fill(0) }
/// #     fn process_queue(&mut self, _: usize, _: QueueContext<'_>) -> Result<(), DeviceFault> { Ok(()) }
/// # }
/// let device = VirtioMmio::new(
///     "vd0", EmulatedDeviceType::VirtioBlk, 0xd000_0000, 0x1000,
///     Box::new(Nothing), VirtioInterrupt::new(None),
/// )?;
/// // The driver's first look: the magic value, the version, the device ID.
/// let read = |offset| device.handle_read(DeviceOffset::first(offset), AccessWidth::Dword).unwrap();
/// assert_eq!((read(0x0), read(0x4), read(0x8)), (0x7472_6976, 2, 42));
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct VirtioMmio {
    name: String,
    emu_type: EmulatedDeviceType,
    range: DeviceRange,
    transport: Arc<Transport>,
}

impl VirtioMmio {
    /// `device` at `base..base + length` under the device manager's name `name` and the
    /// config's `emu_type`, interrupting through `interrupt`. Fails only when an eventfd
    /// for a queue notification cannot be made.
    pub fn new(
        name: &str,
        emu_type: EmulatedDeviceType,
        base: u64,
        length: u64,
        device: Box<dyn VirtioDevice>,
        interrupt: VirtioInterrupt,
    ) -> std::io::Result<Self> {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max| Queue::new(max).map_err(|e| std::io::Error::other(e.to_string())))
            .collect::<std::io::Result<Vec<_>>>()?;
        let notifiers = queues
            .iter()
            .map(|_| EventFd::new(libc::EFD_NONBLOCK))
            .collect::<std::io::Result<Vec<_>>>()?;
        let state = TransportState {
            queue_errors: vec![BTreeMap::new(); queues.len()],
            queues,
            device,
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            queue_sel: 0,
            status: 0,
            ram: None,
        };
        Ok(Self {
            name: name.into(),
            emu_type,
            range: DeviceRange::mmio(base, length),
            transport: Arc::new(Transport {
                name: name.into(),
                state: Mutex::new(state),
                interrupt,
                notifiers,
            }),
        })
    }

    /// Gives the device guest RAM, once the VM has it (before any vCPU runs).
    pub fn attach_ram(&self, ram: GuestRam) {
        self.transport.attach_ram(ram);
    }

    /// The transport, shared with the VM's [`VirtioThread`](super::VirtioThread).
    pub(crate) fn transport(&self) -> &Arc<Transport> {
        &self.transport
    }

    /// The guest-physical address of the QueueNotify register, where an ioeventfd catches
    /// the driver's notifications.
    pub fn queue_notify_address(&self) -> u64 {
        self.range.base + u64::from(VIRTIO_MMIO_QUEUE_NOTIFY)
    }

    /// The eventfd each queue's notification reaches, in queue order.
    pub fn queue_notifiers(&self) -> &[EventFd] {
        &self.transport.notifiers
    }
}

impl BaseDeviceOps for VirtioMmio {
    fn name(&self) -> &str {
        &self.name
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        self.emu_type
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![self.range]
    }

    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        let offset = at.offset;
        if offset == u64::from(VIRTIO_MMIO_INTERRUPT_STATUS) && width == AccessWidth::Dword {
            // Without the lock: the device thread may hold it through a slow disk request,
            // and a vCPU in its interrupt handler must not wait for that.
            return Ok(u64::from(self.transport.interrupt.status()));
        }
        let state = self.transport.lock();
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            let mut bytes = [0u8; 8];
            let len = width.size();
            state
                .device
                .read_config(offset - u64::from(VIRTIO_MMIO_CONFIG), &mut bytes[..len]);
            return Ok(u64::from_le_bytes(bytes));
        }
        if width != AccessWidth::Dword {
            log::debug!(
                "{}: {width:?} read of register {offset:#x}; registers are 32-bit",
                self.name
            );
            return Ok(0);
        }
        Ok(u64::from(
            state.read_register(offset as u32, &self.transport.interrupt),
        ))
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let offset = at.offset;
        if offset >= u64::from(VIRTIO_MMIO_CONFIG) {
            let bytes = value.to_le_bytes();
            let mut state = self.transport.lock();
            state.device.write_config(
                offset - u64::from(VIRTIO_MMIO_CONFIG),
                &bytes[..width.size()],
            );
            return Ok(WriteOutcome::Done);
        }
        if width != AccessWidth::Dword {
            log::debug!(
                "{}: {width:?} write of register {offset:#x} ignored; registers are 32-bit",
                self.name
            );
            return Ok(WriteOutcome::Done);
        }
        self.transport.write_register(offset as u32, value as u32);
        Ok(WriteOutcome::Done)
    }
}

/// The transport's state, shared by the vCPU threads (registers) and the VM's device thread
/// (queue work).
pub(crate) struct Transport {
    pub(crate) name: String,
    state: Mutex<TransportState>,
    pub(crate) interrupt: VirtioInterrupt,
    /// One per queue; written by KVM (ioeventfd) or by [`Transport::write_register`].
    pub(crate) notifiers: Vec<EventFd>,
}

struct TransportState {
    device: Box<dyn VirtioDevice>,
    queues: Vec<Queue>,
    /// Why a queue's configuration is unusable (a size that is not a power of two, a
    /// misaligned ring, ...), by the register whose last write was wrong: found when the
    /// driver wrote it, reported when it makes the queue live.
    queue_errors: Vec<BTreeMap<u32, String>>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    queue_sel: u32,
    status: u32,
    ram: Option<GuestRam>,
}

impl Transport {
    fn lock(&self) -> MutexGuard<'_, TransportState> {
        // A panic while holding the lock is a bug in axvm, not the guest's doing; the state
        // is still consistent enough to stop the VM cleanly.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Gives the transport guest RAM, once the VM has it (before any vCPU runs).
    pub(crate) fn attach_ram(&self, ram: GuestRam) {
        self.lock().ram = Some(ram);
    }

    /// The host descriptors the device waits on.
    pub(crate) fn backend_events(&self) -> Vec<super::BackendEvent> {
        self.lock().device.backend_events()
    }

    /// The driver notified queue `index` (through its eventfd).
    pub(crate) fn queue_notified(&self, index: usize) {
        let mut state = self.lock();
        let result = state.with_queues(Some(index), &self.interrupt, |device, ctx| {
            device.process_queue(index, ctx)
        });
        state.settle(result, &self.name, &self.interrupt, || {
            format!("queue {index}")
        });
    }

    /// A backend descriptor of the device is ready.
    pub(crate) fn backend_ready(&self, fd: std::os::fd::RawFd) {
        let mut state = self.lock();
        if state.status & VIRTIO_CONFIG_S_DRIVER_OK == 0 {
            // Not active yet: the device takes the data once the driver is ready.
            return;
        }
        let result = state.with_queues(None, &self.interrupt, |device, ctx| {
            device.process_backend(fd, ctx)
        });
        state.settle(result, &self.name, &self.interrupt, || "its backend".into());
    }

    /// A register write. QueueNotify and InterruptACK take no lock: the device thread may
    /// hold it through a slow request, and neither may make a vCPU wait for that.
    fn write_register(&self, offset: u32, value: u32) {
        match offset {
            // KVM's ioeventfd normally catches this write; a write of another width, or a
            // host without ioeventfd, ends up here.
            VIRTIO_MMIO_QUEUE_NOTIFY => self.notify(value as usize),
            VIRTIO_MMIO_INTERRUPT_ACK => self.interrupt.acknowledge(value),
            VIRTIO_MMIO_STATUS => self.lock().write_status(value, &self.interrupt, &self.name),
            _ => self
                .lock()
                .write_register(offset, value, &self.name, &self.interrupt),
        }
    }

    fn notify(&self, index: usize) {
        match self.notifiers.get(index) {
            Some(notifier) => {
                if let Err(err) = notifier.write(1) {
                    log::warn!("{}: notification of queue {index} lost: {err}", self.name);
                }
            }
            None => {
                let mut state = self.lock();
                let fault =
                    DeviceFault::Driver(format!("notified queue {index}, which does not exist"));
                state.settle(Err(fault), &self.name, &self.interrupt, || {
                    "QueueNotify".into()
                });
            }
        }
    }
}

impl TransportState {
    fn read_register(&self, offset: u32, interrupt: &VirtioInterrupt) -> u32 {
        let queue = self.queues.get(self.queue_sel as usize);
        match offset {
            VIRTIO_MMIO_MAGIC_VALUE => MAGIC,
            VIRTIO_MMIO_VERSION => VERSION,
            VIRTIO_MMIO_DEVICE_ID => self.device.device_type(),
            VIRTIO_MMIO_VENDOR_ID => VENDOR_ID,
            VIRTIO_MMIO_DEVICE_FEATURES => match self.device_features_sel {
                0 => self.offered_features() as u32,
                1 => (self.offered_features() >> 32) as u32,
                _ => 0,
            },
            VIRTIO_MMIO_QUEUE_NUM_MAX => queue.map_or(0, |q| u32::from(q.max_size())),
            VIRTIO_MMIO_QUEUE_READY => queue.map_or(0, |q| u32::from(q.ready())),
            VIRTIO_MMIO_INTERRUPT_STATUS => interrupt.status(),
            VIRTIO_MMIO_STATUS => self.status,
            VIRTIO_MMIO_QUEUE_DESC_LOW => queue.map_or(0, |q| q.desc_table() as u32),
            VIRTIO_MMIO_QUEUE_DESC_HIGH => queue.map_or(0, |q| (q.desc_table() >> 32) as u32),
            VIRTIO_MMIO_QUEUE_AVAIL_LOW => queue.map_or(0, |q| q.avail_ring() as u32),
            VIRTIO_MMIO_QUEUE_AVAIL_HIGH => queue.map_or(0, |q| (q.avail_ring() >> 32) as u32),
            VIRTIO_MMIO_QUEUE_USED_LOW => queue.map_or(0, |q| q.used_ring() as u32),
            VIRTIO_MMIO_QUEUE_USED_HIGH => queue.map_or(0, |q| (q.used_ring() >> 32) as u32),
            // The configuration never changes behind the driver's back.
            VIRTIO_MMIO_CONFIG_GENERATION => 0,
            // No shared memory regions: a length of all ones says so.
            VIRTIO_MMIO_SHM_LEN_LOW | VIRTIO_MMIO_SHM_LEN_HIGH => u32::MAX,
            _ => 0,
        }
    }

    fn offered_features(&self) -> u64 {
        self.device.features() | VIRTIO_F_VERSION_1
    }

    /// Registers that configure features and queues. Features are fixed once FEATURES_OK
    /// is set. A queue may be configured while it is not ready, even after DRIVER_OK (as
    /// QEMU allows: drivers such as virtio-drivers disable a queue by writing QueueReady 0
    /// and wait to read 0 back); a queue made ready after DRIVER_OK is checked at once.
    fn write_register(&mut self, offset: u32, value: u32, name: &str, interrupt: &VirtioInterrupt) {
        let active = self.status & VIRTIO_CONFIG_S_DRIVER_OK != 0;
        let selected_ready = self
            .queues
            .get(self.queue_sel as usize)
            .is_some_and(|queue| queue.ready());
        match offset {
            VIRTIO_MMIO_DEVICE_FEATURES_SEL => self.device_features_sel = value,
            VIRTIO_MMIO_DRIVER_FEATURES_SEL => self.driver_features_sel = value,
            VIRTIO_MMIO_QUEUE_SEL => self.queue_sel = value,
            VIRTIO_MMIO_DRIVER_FEATURES => self.write_driver_features(value),
            VIRTIO_MMIO_QUEUE_READY if value == 0 => self.write_queue_register(offset, value, name),
            _ if selected_ready => {
                log::debug!(
                    "{name}: write {value:#x} to register {offset:#x} of a ready queue ignored"
                );
            }
            VIRTIO_MMIO_QUEUE_READY if active => {
                self.write_queue_register(offset, value, name);
                let result = self.check_queue(self.queue_sel as usize);
                self.settle(result, name, interrupt, || "QueueReady".into());
            }
            _ => self.write_queue_register(offset, value, name),
        }
    }

    fn write_driver_features(&mut self, value: u32) {
        if self.status & VIRTIO_CONFIG_S_FEATURES_OK != 0 {
            return;
        }
        let value = u64::from(value);
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | value,
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (value << 32),
            _ => {}
        }
    }

    fn write_queue_register(&mut self, offset: u32, value: u32, name: &str) {
        let index = self.queue_sel as usize;
        let Some(queue) = self.queues.get_mut(index) else {
            log::debug!(
                "{name}: write to register {offset:#x} of queue {index}, which does not exist"
            );
            return;
        };
        match offset {
            VIRTIO_MMIO_QUEUE_NUM => {
                let fits = u16::try_from(value).is_ok_and(|size| queue.try_set_size(size).is_ok());
                let error = (!fits).then(|| {
                    format!(
                        "set queue {index}'s size to {value}, which is not a power of two of at most {}",
                        queue.max_size()
                    )
                });
                self.record_queue_error(index, offset, error);
            }
            VIRTIO_MMIO_QUEUE_READY => queue.set_ready(value == 1),
            VIRTIO_MMIO_QUEUE_DESC_LOW => {
                queue.set_desc_table_address(Some(value), None);
                let error = misaligned(index, "descriptor table", value, 16);
                self.record_queue_error(index, offset, error);
            }
            VIRTIO_MMIO_QUEUE_DESC_HIGH => queue.set_desc_table_address(None, Some(value)),
            VIRTIO_MMIO_QUEUE_AVAIL_LOW => {
                queue.set_avail_ring_address(Some(value), None);
                let error = misaligned(index, "available ring", value, 2);
                self.record_queue_error(index, offset, error);
            }
            VIRTIO_MMIO_QUEUE_AVAIL_HIGH => queue.set_avail_ring_address(None, Some(value)),
            VIRTIO_MMIO_QUEUE_USED_LOW => {
                queue.set_used_ring_address(Some(value), None);
                let error = misaligned(index, "used ring", value, 4);
                self.record_queue_error(index, offset, error);
            }
            VIRTIO_MMIO_QUEUE_USED_HIGH => queue.set_used_ring_address(None, Some(value)),
            _ => log::debug!("{name}: write {value:#x} to register {offset:#x} ignored"),
        }
    }

    /// Remembers (or, for `None`, forgets) what is wrong with the last write to queue
    /// `index`'s register `offset`.
    fn record_queue_error(&mut self, index: usize, offset: u32, error: Option<String>) {
        let errors = &mut self.queue_errors[index];
        match error {
            Some(error) => errors.insert(offset, error),
            None => errors.remove(&offset),
        };
    }

    /// The Status register: 0 resets the device; otherwise the driver adds bits as it goes
    /// (ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK).
    fn write_status(&mut self, value: u32, interrupt: &VirtioInterrupt, name: &str) {
        if value == 0 {
            self.reset(interrupt);
            return;
        }
        let added = value & !self.status;
        if value & self.status != self.status {
            log::debug!(
                "{name}: status {value:#x} clears bits of {:#x}; only a reset may",
                self.status
            );
            return;
        }
        if added & VIRTIO_CONFIG_S_FEATURES_OK != 0 && !self.features_acceptable() {
            // The driver reads FEATURES_OK back and gives up when it is not set.
            self.status |= added & !(VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK);
            return;
        }
        self.status |= added & !VIRTIO_CONFIG_S_DRIVER_OK;
        if added & VIRTIO_CONFIG_S_DRIVER_OK != 0 && added & VIRTIO_CONFIG_S_FAILED == 0 {
            let result = self.activate();
            self.status |= VIRTIO_CONFIG_S_DRIVER_OK;
            self.settle(result, name, interrupt, || "activation".into());
        }
    }

    /// Whether the driver accepted only offered features, VERSION_1 among them.
    fn features_acceptable(&self) -> bool {
        self.driver_features & !self.offered_features() == 0
            && self.driver_features & VIRTIO_F_VERSION_1 != 0
    }

    fn activate(&mut self) -> Result<(), DeviceFault> {
        if self.status & VIRTIO_CONFIG_S_FEATURES_OK == 0 {
            return Err(DeviceFault::Driver(
                "set DRIVER_OK without FEATURES_OK".into(),
            ));
        }
        for index in 0..self.queues.len() {
            self.check_queue(index)?;
        }
        let event_idx = 1 << virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
        for queue in &mut self.queues {
            queue.set_event_idx(self.driver_features & event_idx != 0);
        }
        self.device.activate(self.driver_features)
    }

    /// Refuses queue `index` when the driver configured it wrongly: a bad size, or (when it
    /// is ready) rings outside guest RAM or misaligned.
    fn check_queue(&self, index: usize) -> Result<(), DeviceFault> {
        if let Some(error) = self.queue_errors.get(index).and_then(|e| e.values().next()) {
            return Err(DeviceFault::Driver(error.clone()));
        }
        let ram = self
            .ram
            .as_ref()
            .ok_or_else(|| DeviceFault::Host("guest RAM is not attached".into()))?;
        match self.queues.get(index) {
            Some(queue) if queue.ready() && !queue.is_valid(ram) => Err(DeviceFault::Driver(format!(
                "placed queue {index} (size {}, descriptors {:#x}, available ring {:#x}, used ring {:#x}) outside guest RAM or misaligned",
                queue.size(),
                queue.desc_table(),
                queue.avail_ring(),
                queue.used_ring()
            ))),
            _ => Ok(()),
        }
    }

    fn reset(&mut self, interrupt: &VirtioInterrupt) {
        self.device.reset();
        for queue in &mut self.queues {
            queue.reset();
        }
        self.queue_errors.iter_mut().for_each(BTreeMap::clear);
        self.status = 0;
        self.driver_features = 0;
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.queue_sel = 0;
        interrupt.clear();
    }

    /// Runs `work` on the device with its queues, when the driver made the device active
    /// and it is not waiting for a reset, and `queue` (the one notified, if any) is ready.
    fn with_queues(
        &mut self,
        queue: Option<usize>,
        interrupt: &VirtioInterrupt,
        work: impl FnOnce(&mut dyn VirtioDevice, QueueContext<'_>) -> Result<(), DeviceFault>,
    ) -> Result<(), DeviceFault> {
        if self.status & VIRTIO_CONFIG_S_NEEDS_RESET != 0 {
            return Ok(());
        }
        if self.status & VIRTIO_CONFIG_S_DRIVER_OK == 0 {
            return Err(DeviceFault::Driver(
                "notified a queue before setting DRIVER_OK".into(),
            ));
        }
        let Some(ram) = self.ram.as_ref() else {
            return Err(DeviceFault::Host("guest RAM is not attached".into()));
        };
        if let Some(index) = queue {
            if !self.queues.get(index).is_some_and(|q| q.ready()) {
                log::debug!("notification of queue {index}, which is not ready, ignored");
                return Ok(());
            }
        }
        let ctx = QueueContext {
            queues: &mut self.queues,
            ram,
            interrupt,
        };
        work(self.device.as_mut(), ctx)
    }

    /// A fault puts the device in DEVICE_NEEDS_RESET and tells the driver: it stops serving
    /// until the driver resets it; the VM goes on.
    fn settle(
        &mut self,
        result: Result<(), DeviceFault>,
        name: &str,
        interrupt: &VirtioInterrupt,
        context: impl FnOnce() -> String,
    ) {
        if let Err(fault) = result {
            log::warn!(
                "virtio device `{name}` ({}): {fault}; it needs a reset",
                context()
            );
            self.status |= VIRTIO_CONFIG_S_NEEDS_RESET;
            interrupt.signal_config();
        }
    }
}

/// Why a ring of queue `index` whose address ends in `low` is misaligned, if it is: the
/// queue keeps its previous address then (`virtio-queue` refuses the write), so without this
/// the device would silently use rings the driver never placed.
fn misaligned(index: usize, ring: &str, low: u32, alignment: u32) -> Option<String> {
    (low % alignment != 0).then(|| {
        format!("placed queue {index}'s {ring} at {low:#x}, which is not {alignment}-byte aligned")
    })
}
