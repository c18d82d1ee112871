//! virtio-net: an Ethernet interface whose frames go to a host tap or an in-process switch.
//!
//! Queue 0 receives (frames to the guest), queue 1 transmits. Every frame in either queue
//! is preceded by the 12-byte `virtio_net_hdr_v1`; no offload is offered, so on transmit
//! the device drops the header, and on receive it writes a zeroed one with `num_buffers` 1
//! (each frame fits one buffer chain: `VIRTIO_NET_F_MRG_RXBUF` is not offered either). The
//! device offers `VIRTIO_NET_F_MAC` (the configured address, or [`VirtioNet::default_mac`]),
//! `VIRTIO_NET_F_STATUS` (link always up) and event indices.
//!
//! Nothing the driver does can make the device overflow a buffer: a frame longer than the
//! receive chain at hand is dropped and counted, the chain kept for the next frame; a
//! transmit chain shorter than the header or longer than the header plus 64 KiB is returned
//! unsent and counted.
//!
//! Receiving is driven from two sides: the backend's descriptor ([`FramePort::event`])
//! says frames are waiting, and the driver's notification of queue 0 says it added
//! buffers. Either drains the backend until it is empty or the buffers run out; a frame
//! that found no buffer waits in the device for the next notification.

mod switch;
mod tap;
#[cfg(test)]
mod tests;

use std::io::{Read, Write};

use axvm::config::MacAddress;
use event_manager::EventSet;
use virtio_bindings::virtio_ids::VIRTIO_ID_NET;
use virtio_bindings::virtio_net::{VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS, VIRTIO_NET_S_LINK_UP};
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::{QueueOwnedT, QueueT, Reader, Writer};

pub use switch::{Switch, SwitchPort, PORT_QUEUE_FRAMES};
pub use tap::Tap;

use super::block::copy_config;
use super::{BackendEvent, DeviceFault, QueueContext, VirtioDevice};

/// The receive queue.
const RX: usize = 0;
/// The transmit queue.
const TX: usize = 1;
/// The size of both queues.
const QUEUE_SIZE: u16 = 256;
/// The length of `virtio_net_hdr_v1`, which precedes every frame in the queues.
pub const NET_HDR_LEN: usize = 12;
/// The longest frame the device sends or receives: 64 KiB and an Ethernet header, so the
/// largest a tap gives (its MTU at the maximum, 65535, and the header) is never cut short.
pub const MAX_FRAME_LEN: usize = 64 * 1024 + 14;

/// Where a virtio-net device's frames go and come from: a [`Tap`], a [`SwitchPort`], or
/// a test's fake.
pub trait FramePort: Send {
    /// The next frame waiting for the guest, if any.
    fn receive(&mut self) -> std::io::Result<Option<Vec<u8>>>;

    /// Sends one frame from the guest; `Ok(false)` when the network dropped it.
    fn send(&mut self, frame: &[u8]) -> std::io::Result<bool>;

    /// The descriptor that becomes readable when frames wait, if there is one.
    fn event(&self) -> Option<BackendEvent>;

    /// Called when [`event`](Self::event) fired, before the device drains the port: a port
    /// whose descriptor is an eventfd clears it here.
    fn clear_event(&mut self) {}
}

impl FramePort for SwitchPort {
    fn receive(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        Ok(SwitchPort::receive(self))
    }

    fn send(&mut self, frame: &[u8]) -> std::io::Result<bool> {
        SwitchPort::send(self, frame);
        Ok(true)
    }

    fn event(&self) -> Option<BackendEvent> {
        use std::os::fd::AsRawFd;
        Some(BackendEvent {
            fd: SwitchPort::event(self).as_raw_fd(),
            // Edge-triggered: every frame's write is an edge, and readiness the device
            // cannot act on yet (no receive buffers) must not wake the thread again.
            events: EventSet::IN | EventSet::EDGE_TRIGGERED,
        })
    }

    fn clear_event(&mut self) {
        // Nonblocking: an error means it was clear already.
        let _ = SwitchPort::event(self).read();
    }
}

impl FramePort for Tap {
    fn receive(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.receive_frame(MAX_FRAME_LEN)
    }

    fn send(&mut self, frame: &[u8]) -> std::io::Result<bool> {
        Tap::send(self, frame)
    }

    fn event(&self) -> Option<BackendEvent> {
        Some(BackendEvent {
            fd: self.fd(),
            events: EventSet::IN | EventSet::EDGE_TRIGGERED,
        })
    }
}

/// What the device has done, for tests and diagnostics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetCounters {
    /// Frames given to the driver.
    pub rx_frames: u64,
    /// Frames dropped because they did not fit the driver's receive buffer chain.
    pub rx_too_big: u64,
    /// Frames sent to the backend.
    pub tx_frames: u64,
    /// Frames the backend dropped or failed to send.
    pub tx_dropped: u64,
    /// Transmit chains refused: shorter than the header or longer than the header plus
    /// [`MAX_FRAME_LEN`].
    pub tx_malformed: u64,
}

/// A virtio network device on a [`FramePort`].
///
/// ```
/// use axvm::config::MacAddress;
/// use axvm_kvm::{Switch, VirtioDevice, VirtioNet};
/// let port = Switch::named("doc-net").connect()?;
/// let mac = VirtioNet::default_mac(1, 2);
/// assert_eq!(mac.to_string(), "52:54:00:00:01:02");
/// let device = VirtioNet::new(mac, Box::new(port));
/// let mut config = [0u8; 8];
/// device.read_config(0, &mut config);
/// assert_eq!(config, [0x52, 0x54, 0, 0, 1, 2, 1, 0]); // the MAC, then "link up"
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct VirtioNet {
    port: Box<dyn FramePort>,
    /// `mac` then `status`, as the driver reads them.
    config: [u8; 8],
    /// A frame taken from the port that found no receive buffer yet.
    pending: Option<Vec<u8>>,
    counters: NetCounters,
}

impl VirtioNet {
    /// The device with address `mac` on `port`.
    pub fn new(mac: MacAddress, port: Box<dyn FramePort>) -> Self {
        let mut config = [0u8; 8];
        config[..6].copy_from_slice(&mac.octets());
        config[6..].copy_from_slice(&(VIRTIO_NET_S_LINK_UP as u16).to_le_bytes());
        Self {
            port,
            config,
            pending: None,
            counters: NetCounters::default(),
        }
    }

    /// The address of device `index` (its `emu_devices` row) of the VM with `vm_id`, when
    /// its config gives none: `52:54:00:II:II:DD`, `II` the VM id's low 16 bits and `DD`
    /// the index's low byte. Locally administered (0x52 has bit 1 set) and unicast, the
    /// same on every run, and different for VMs whose ids differ below 65536.
    ///
    /// ```
    /// use axvm_kvm::VirtioNet;
    /// assert_eq!(VirtioNet::default_mac(0x0102, 3).to_string(), "52:54:00:01:02:03");
    /// assert_ne!(VirtioNet::default_mac(1, 0), VirtioNet::default_mac(2, 0));
    /// ```
    pub fn default_mac(vm_id: usize, index: usize) -> MacAddress {
        let [id_high, id_low] = (vm_id as u16).to_be_bytes();
        MacAddress::new([0x52, 0x54, 0x00, id_high, id_low, index as u8])
    }

    /// The device's address.
    pub fn mac(&self) -> MacAddress {
        let mut octets = [0u8; 6];
        octets.copy_from_slice(&self.config[..6]);
        MacAddress::new(octets)
    }

    /// What the device has done so far.
    pub fn counters(&self) -> NetCounters {
        self.counters
    }

    /// Gives the driver waiting frames until the port is empty or the receive buffers run
    /// out (a frame then waits for the driver's next notification of queue 0).
    fn receive_frames(&mut self, ctx: &mut QueueContext<'_>) -> Result<(), DeviceFault> {
        let ram = ctx.ram;
        loop {
            let frame = match self.pending.take() {
                Some(frame) => frame,
                None => match self.port.receive() {
                    Ok(Some(frame)) => frame,
                    Ok(None) => return Ok(()),
                    Err(err) => return Err(DeviceFault::Host(format!("receiving: {err}"))),
                },
            };
            let Some(chain) = ctx.pop_chain(RX)? else {
                self.pending = Some(frame);
                // Ask to be told when buffers come; some may have come meanwhile.
                if ctx.queue(RX)?.enable_notification(ram).map_err(rings)? {
                    continue;
                }
                return Ok(());
            };
            let head = chain.head_index();
            let mut writer = Writer::new(ram, chain).map_err(|e| {
                DeviceFault::Driver(format!(
                    "gave receive buffer {head} that is not in RAM: {e}"
                ))
            })?;
            if writer.available_bytes() < NET_HDR_LEN + frame.len() {
                log::debug!(
                    "virtio-net: a {}-byte frame does not fit receive buffer {head} ({} bytes); dropped",
                    frame.len(),
                    writer.available_bytes()
                );
                self.counters.rx_too_big += 1;
                ctx.queue(RX)?.go_to_previous_position();
                continue;
            }
            write_received(&mut writer, &frame).map_err(|e| {
                DeviceFault::Driver(format!(
                    "gave receive buffer {head} that cannot be written: {e}"
                ))
            })?;
            self.counters.rx_frames += 1;
            ctx.add_used(RX, head, (NET_HDR_LEN + frame.len()) as u32)?;
        }
    }

    /// Sends every frame the driver queued, and returns their buffers.
    fn transmit_frames(&mut self, ctx: &mut QueueContext<'_>) -> Result<(), DeviceFault> {
        let ram = ctx.ram;
        loop {
            ctx.queue(TX)?.disable_notification(ram).map_err(rings)?;
            while let Some(chain) = ctx.pop_chain(TX)? {
                let head = chain.head_index();
                let reader = Reader::new(ram, chain).map_err(|e| {
                    DeviceFault::Driver(format!("sent frame {head} from outside RAM: {e}"))
                })?;
                self.transmit(head, reader)?;
                ctx.add_used(TX, head, 0)?;
            }
            if !ctx.queue(TX)?.enable_notification(ram).map_err(rings)? {
                return Ok(());
            }
        }
    }

    /// Sends the frame in transmit chain `head`, unless it is malformed.
    fn transmit(&mut self, head: u16, mut reader: Reader<'_>) -> Result<(), DeviceFault> {
        let len = reader.available_bytes();
        if !(NET_HDR_LEN..=NET_HDR_LEN + MAX_FRAME_LEN).contains(&len) {
            log::debug!(
                "virtio-net: transmit chain {head} holds {len} bytes, not a header and a frame of at most {MAX_FRAME_LEN}; not sent"
            );
            self.counters.tx_malformed += 1;
            return Ok(());
        }
        let mut bytes = vec![0u8; len];
        reader.read_exact(&mut bytes).map_err(|e| {
            DeviceFault::Driver(format!("sent frame {head} that cannot be read: {e}"))
        })?;
        match self.port.send(&bytes[NET_HDR_LEN..]) {
            Ok(true) => self.counters.tx_frames += 1,
            Ok(false) => self.counters.tx_dropped += 1,
            Err(err) => {
                log::debug!("virtio-net: frame not sent: {err}");
                self.counters.tx_dropped += 1;
            }
        }
        Ok(())
    }
}

/// Writes the header of a received frame (no offloads: zeros, but `num_buffers` 1), then
/// the frame.
fn write_received(writer: &mut Writer<'_>, frame: &[u8]) -> std::io::Result<()> {
    let mut header = [0u8; NET_HDR_LEN];
    header[10..12].copy_from_slice(&1u16.to_le_bytes());
    writer.write_all(&header)?;
    writer.write_all(frame)
}

fn rings(err: virtio_queue::Error) -> DeviceFault {
    DeviceFault::Driver(format!("placed its rings badly: {err}"))
}

impl VirtioDevice for VirtioNet {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_NET
    }

    fn features(&self) -> u64 {
        1 << VIRTIO_NET_F_MAC | 1 << VIRTIO_NET_F_STATUS | 1 << VIRTIO_RING_F_EVENT_IDX
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        copy_config(&self.config, offset, data);
    }

    fn process_queue(
        &mut self,
        index: usize,
        mut ctx: QueueContext<'_>,
    ) -> Result<(), DeviceFault> {
        match index {
            RX => self.receive_frames(&mut ctx),
            TX => self.transmit_frames(&mut ctx),
            _ => Err(DeviceFault::Driver(format!(
                "notified queue {index}; virtio-net has 2"
            ))),
        }
    }

    fn backend_events(&self) -> Vec<BackendEvent> {
        self.port.event().into_iter().collect()
    }

    fn process_backend(
        &mut self,
        _fd: std::os::fd::RawFd,
        mut ctx: QueueContext<'_>,
    ) -> Result<(), DeviceFault> {
        self.port.clear_event();
        if ctx.queue(RX)?.ready() {
            self.receive_frames(&mut ctx)
        } else {
            Ok(())
        }
    }

    fn reset(&mut self) {
        self.pending = None;
    }
}
