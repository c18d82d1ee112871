//! The thread that does a VM's virtio work: one per VM, waiting (epoll, through
//! `event-manager`) on every queue's notification eventfd and every backend descriptor.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use event_manager::{EventManager, EventOps, EventSet, Events, MutEventSubscriber, SubscriberOps};
use vmm_sys_util::eventfd::EventFd;

use super::mmio::Transport;
use super::{BackendEvent, VirtioMmio};
use crate::sandbox::ThreadRole;

/// Event data of backend descriptors: above every queue index.
const BACKEND_TAG: u32 = 1 << 31;

/// The device thread of one VM's virtio devices. Dropping it stops and joins the thread,
/// which must happen before the VM's memory goes: the VM's owner holds it for that reason.
///
/// ```no_run
/// # use axvm_kvm::{VirtioMmio, VirtioThread};
/// # fn devices() -> Vec<std::sync::Arc<VirtioMmio>> { Vec::new() }
/// let thread = VirtioThread::spawn("vm0", &devices())?;
/// drop(thread); // stops it
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct VirtioThread {
    stop: EventFd,
    handle: Option<JoinHandle<()>>,
}

impl VirtioThread {
    /// Starts the thread serving `devices` (whose transports have guest RAM attached).
    pub fn spawn(vm_name: &str, devices: &[Arc<VirtioMmio>]) -> std::io::Result<Self> {
        Self::spawn_sandboxed(vm_name, devices, false)
    }

    /// [`spawn`](Self::spawn), the thread confined to the device thread's system calls once
    /// its event loop is set up, when `sandboxed` (see [`crate::sandbox`]); returns once it
    /// is.
    pub(crate) fn spawn_sandboxed(
        vm_name: &str,
        devices: &[Arc<VirtioMmio>],
        sandboxed: bool,
    ) -> std::io::Result<Self> {
        let stop = EventFd::new(libc::EFD_NONBLOCK)?;
        let subscribers: Vec<DeviceSubscriber> = devices
            .iter()
            .map(|device| DeviceSubscriber::new(device.transport().clone()))
            .collect();
        let stop_clone = stop.try_clone()?;
        let (ready_tx, ready_rx) = mpsc::sync_channel(1);
        let handle = std::thread::Builder::new()
            .name(format!("{vm_name}-virtio"))
            .spawn(move || match EventLoop::new(subscribers, stop_clone) {
                Ok(mut event_loop) => {
                    let confined = crate::sandbox::confine_if(sandboxed, ThreadRole::Devices)
                        .map_err(std::io::Error::other);
                    let go = confined.is_ok();
                    let _ = ready_tx.send(confined);
                    if go {
                        event_loop.run();
                    }
                }
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                }
            })?;
        ready_rx
            .recv()
            .map_err(|_| std::io::Error::other("the virtio thread ended at its start"))??;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for VirtioThread {
    fn drop(&mut self) {
        if let Err(err) = self.stop.write(1) {
            log::warn!("cannot stop the virtio thread: {err}");
            return;
        }
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                log::error!("the virtio thread panicked");
            }
        }
    }
}

struct EventLoop {
    manager: EventManager<Box<dyn MutEventSubscriber + Send>>,
    stopped: Arc<AtomicBool>,
}

impl EventLoop {
    fn new(subscribers: Vec<DeviceSubscriber>, stop: EventFd) -> std::io::Result<Self> {
        let to_io = |err: event_manager::Error| std::io::Error::other(format!("{err:?}"));
        let mut manager =
            EventManager::<Box<dyn MutEventSubscriber + Send>>::new().map_err(to_io)?;
        let stopped = Arc::new(AtomicBool::new(false));
        manager.add_subscriber(Box::new(StopSubscriber {
            event: stop,
            stopped: stopped.clone(),
        }));
        for subscriber in subscribers {
            manager.add_subscriber(Box::new(subscriber));
        }
        Ok(Self { manager, stopped })
    }

    fn run(&mut self) {
        while !self.stopped.load(Ordering::SeqCst) {
            if let Err(err) = self.manager.run() {
                log::error!("virtio thread: {err:?}; its devices stop");
                return;
            }
        }
    }
}

struct StopSubscriber {
    event: EventFd,
    stopped: Arc<AtomicBool>,
}

impl MutEventSubscriber for StopSubscriber {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        let _ = self.event.read();
        self.stopped.store(true, Ordering::SeqCst);
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(err) = ops.add(Events::new(&self.event, EventSet::IN)) {
            log::error!("virtio thread cannot wait for its stop: {err:?}");
        }
    }
}

/// One device's descriptors: its queues' notifiers and its backend's.
struct DeviceSubscriber {
    transport: Arc<Transport>,
    backend: Vec<BackendEvent>,
}

impl DeviceSubscriber {
    fn new(transport: Arc<Transport>) -> Self {
        let backend = transport.backend_events();
        Self { transport, backend }
    }
}

impl MutEventSubscriber for DeviceSubscriber {
    fn process(&mut self, events: Events, _ops: &mut EventOps) {
        let data = events.data();
        if data & BACKEND_TAG != 0 {
            self.transport.backend_ready(events.fd());
            return;
        }
        let index = data as usize;
        if let Some(notifier) = self.transport.notifiers.get(index) {
            // Read to clear it; several notifications coalesce into one pass over the queue.
            let _ = notifier.read();
            self.transport.queue_notified(index);
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        for (index, notifier) in self.transport.notifiers.iter().enumerate() {
            let events = Events::with_data(notifier, index as u32, EventSet::IN);
            if let Err(err) = ops.add(events) {
                log::error!(
                    "{}: queue {index} cannot be served: {err:?}",
                    self.transport.name
                );
            }
        }
        for (index, backend) in self.backend.iter().enumerate() {
            let events =
                Events::with_data_raw(backend.fd, BACKEND_TAG | index as u32, backend.events);
            if let Err(err) = ops.add(events) {
                log::error!("{}: backend cannot be served: {err:?}", self.transport.name);
            }
        }
    }
}
