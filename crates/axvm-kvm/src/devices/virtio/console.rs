//! virtio-console: one port (`hvc0` in a Linux guest), its output on the VM's console beside
//! COM1's, its input from the VM's console input.
//!
//! The device has the two queues of port 0 and no more: receiveq (0), where the driver posts
//! empty buffers for input, and transmitq (1), where it posts its output. `MULTIPORT` is not
//! offered, so there is no control queue. It offers:
//! - `VIRTIO_CONSOLE_F_SIZE`: the configuration space says 80 columns by 25 rows;
//! - `VIRTIO_CONSOLE_F_EMERG_WRITE`: a byte written to `emerg_wr` is printed at once (early
//!   output before the queues are set up);
//! - indirect descriptors and event indices, which `virtio-queue` handles.
//!
//! **Output.** The bytes of each transmit chain go to the same [`SharedConsole`] COM1 and the
//! 0xe9 port print to, in chain order, so `hvc0` output appears on axvm's console (stdout
//! for `axvm run`) and counts as the guest's progress for the watchdog. They are sent from
//! the VM's virtio thread, which never waits for the console: while its buffer is full (a
//! stalled stdout) the device stops taking transmit chains, which stay in the queue (a
//! chain cut short is taken again later, resuming where it stopped), until the console
//! has room again and wakes the device through a [`BackendEvent`] of its own.
//!
//! **Input.** Console input reaches the driver through a [`ConsoleInbox`]: the input thread
//! fills it and signals its eventfd (a [`BackendEvent`] of this device, so the virtio thread
//! wakes); the device copies waiting bytes into the receive buffers the driver posted. With
//! no buffer posted the bytes wait, and when the inbox is full the input thread waits for
//! room: nothing is dropped and no vCPU ever waits for input. When the driver posts buffers
//! (a receiveq notification) the waiting bytes are delivered. The end of input is no event:
//! nothing more arrives.
//!
//! In a config, a row of type 0xE3 with no backend:
//!
//! ```toml
//! emu_devices = [
//!     # [name, base_gpa, length, irq_id, emu_type, cfg_list]
//!     ["hvc0", 0xd000_2000, 0x1000, 7, 0xE3, []],   # virtio-console
//! ]
//! ```
//!
//! and `console=hvc0` on the kernel command line puts a Linux guest's console there.

mod inbox;

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use event_manager::EventSet;
use virtio_bindings::virtio_ids::VIRTIO_ID_CONSOLE;
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_queue::{QueueOwnedT, QueueT, Reader, Writer};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

pub use inbox::{ConsoleInbox, INBOX_BYTES};

use super::block::copy_config;
use super::{BackendEvent, DeviceFault, QueueContext, VirtioDevice};
use crate::devices::SharedConsole;

/// The configuration space has `cols` and `rows` (virtio 1.x, 5.3.3).
pub const VIRTIO_CONSOLE_F_SIZE: u64 = 1 << 0;
/// The driver may write a byte to `emerg_wr` before the queues are set up (5.3.3).
pub const VIRTIO_CONSOLE_F_EMERG_WRITE: u64 = 1 << 2;

/// Port 0's receive queue: the driver's empty buffers for input.
const RECEIVEQ: usize = 0;
/// Port 0's transmit queue: the driver's output.
const TRANSMITQ: usize = 1;
/// The size of each queue.
const QUEUE_SIZE: u16 = 64;
/// The console size the configuration space reports.
const COLUMNS: u16 = 80;
const ROWS: u16 = 25;
/// Where `emerg_wr` lies in the configuration space (after cols, rows and max_nr_ports).
const EMERG_WR_OFFSET: u64 = 8;
/// How much of a transmit chain is read at a time: a chain's length is the driver's to
/// choose, so it is never allocated whole.
const TX_CHUNK: usize = 4096;

/// A virtio console with one port.
pub struct VirtioConsole {
    output: SharedConsole,
    input: Arc<ConsoleInbox>,
    config: [u8; 12],
    /// Signalled by the console when it has room again after a transmit stopped on it.
    room: Arc<EventFd>,
    /// The transmit chain the console was too full to take whole: its head and how many of
    /// its bytes were printed.
    tx_resume: Option<(u16, usize)>,
}

impl VirtioConsole {
    /// The device printing to `output`, with an empty inbox of [`INBOX_BYTES`] for input.
    /// Fails only when the inbox's eventfd cannot be made.
    pub fn new(output: SharedConsole) -> std::io::Result<Self> {
        Self::with_inbox(output, Arc::new(ConsoleInbox::new(INBOX_BYTES)?))
    }

    /// The device printing to `output` and taking input from `input`.
    pub fn with_inbox(output: SharedConsole, input: Arc<ConsoleInbox>) -> std::io::Result<Self> {
        let mut config = [0u8; 12];
        config[0..2].copy_from_slice(&COLUMNS.to_le_bytes());
        config[2..4].copy_from_slice(&ROWS.to_le_bytes());
        // max_nr_ports means something only with MULTIPORT; one port is the truth anyway.
        config[4..8].copy_from_slice(&1u32.to_le_bytes());
        let room = Arc::new(EventFd::new(EFD_NONBLOCK)?);
        let signal = room.clone();
        output.on_room(Box::new(move || {
            if let Err(err) = signal.write(1) {
                log::warn!("virtio console: cannot signal console room: {err}");
            }
        }));
        Ok(Self {
            output,
            input,
            config,
            room,
            tx_resume: None,
        })
    }

    /// Where console input for this device goes (a [`ReceiveFifo`] for a
    /// [`ConsoleInput`](crate::devices::ConsoleInput) thread).
    ///
    /// [`ReceiveFifo`]: crate::devices::ReceiveFifo
    pub fn inbox(&self) -> Arc<ConsoleInbox> {
        self.input.clone()
    }

    /// Copies waiting input into the receive buffers the driver posted, one chain after the
    /// other, until the input or the buffers run out. While input waits for buffers, the
    /// driver is asked to notify when it posts more.
    fn deliver(&mut self, ctx: &mut QueueContext<'_>) -> Result<(), DeviceFault> {
        let ram = ctx.ram;
        loop {
            while !self.input.is_empty() {
                let Some(chain) = ctx.pop_chain(RECEIVEQ)? else {
                    break;
                };
                let head = chain.head_index();
                let mut writer = Writer::new(ram, chain).map_err(|e| {
                    DeviceFault::Driver(format!("posted receive buffer {head} badly: {e}"))
                })?;
                if writer.available_bytes() == 0 {
                    return Err(DeviceFault::Driver(format!(
                        "posted receive buffer {head} with no writable descriptor"
                    )));
                }
                let written = self
                    .input
                    .take(|front, back| fill(&mut writer, front, back))?;
                ctx.add_used(RECEIVEQ, head, written as u32)?;
            }
            let more = ctx
                .queue(RECEIVEQ)?
                .enable_notification(ram)
                .map_err(|e| DeviceFault::Driver(format!("placed its rings badly: {e}")))?;
            if !more || self.input.is_empty() {
                return Ok(());
            }
        }
    }

    /// Prints the bytes of every chain in the transmit queue and returns the chains, until
    /// the console is full: then the chain it stopped in goes back to the queue, with how
    /// much of it was printed, and the rest wait for the console's room signal.
    fn transmit(&mut self, ctx: &mut QueueContext<'_>) -> Result<(), DeviceFault> {
        let ram = ctx.ram;
        loop {
            ctx.queue(TRANSMITQ)?
                .disable_notification(ram)
                .map_err(|e| DeviceFault::Driver(format!("placed its rings badly: {e}")))?;
            while let Some(chain) = ctx.pop_chain(TRANSMITQ)? {
                let head = chain.head_index();
                let bad = |e: &dyn std::fmt::Display| {
                    DeviceFault::Driver(format!("sent output {head} in a bad buffer: {e}"))
                };
                let mut reader = Reader::new(ram, chain).map_err(|e| bad(&e))?;
                let done = match self.tx_resume.take() {
                    Some((resumed, done)) if resumed == head => done,
                    _ => 0,
                };
                if done > 0 {
                    // The printed part stays behind in the reader split off here.
                    reader = reader.split_at(done).map_err(|e| bad(&e))?;
                }
                let printed = self.print(reader).map_err(|e| bad(&e))?;
                if let Some(printed) = printed {
                    ctx.queue(TRANSMITQ)?.go_to_previous_position();
                    self.tx_resume = Some((head, done + printed));
                    return Ok(());
                }
                ctx.add_used(TRANSMITQ, head, 0)?;
            }
            let more = ctx
                .queue(TRANSMITQ)?
                .enable_notification(ram)
                .map_err(|e| DeviceFault::Driver(format!("placed its rings badly: {e}")))?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Sends what `reader` holds to the console, a chunk at a time: `None` when all of it
    /// went, or how many bytes did before the console was full.
    fn print(&self, mut reader: impl Read) -> std::io::Result<Option<usize>> {
        let mut chunk = [0u8; TX_CHUNK];
        let mut printed = 0;
        loop {
            let len = reader.read(&mut chunk)?;
            if len == 0 {
                return Ok(None);
            }
            // Fails only once the console thread has ended, when the VM is being dropped.
            let taken = self.output.send_some(&chunk[..len]).unwrap_or(len);
            printed += taken;
            if taken < len {
                return Ok(Some(printed));
            }
        }
    }

    fn send(&self, bytes: &[u8]) {
        // Fails only once the console thread has ended, when the VM is being dropped.
        if let Err(err) = self.output.send(bytes) {
            log::debug!("virtio console output dropped: {err}");
        }
    }
}

/// Writes `front` then `back` into `writer` as far as it has room; returns how many bytes.
fn fill(writer: &mut impl Write, front: &[u8], back: &[u8]) -> Result<usize, DeviceFault> {
    let mut written = 0;
    for part in [front, back] {
        let len = write_some(writer, part)
            .map_err(|e| DeviceFault::Driver(format!("posted a receive buffer badly: {e}")))?;
        written += len;
        if len < part.len() {
            break;
        }
    }
    Ok(written)
}

/// Writes as much of `bytes` as `writer` takes.
fn write_some(writer: &mut impl Write, bytes: &[u8]) -> std::io::Result<usize> {
    let mut done = 0;
    while done < bytes.len() {
        match writer.write(&bytes[done..])? {
            0 => break,
            len => done += len,
        }
    }
    Ok(done)
}

impl VirtioDevice for VirtioConsole {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_CONSOLE
    }

    fn features(&self) -> u64 {
        VIRTIO_CONSOLE_F_SIZE
            | VIRTIO_CONSOLE_F_EMERG_WRITE
            | 1 << VIRTIO_RING_F_EVENT_IDX
            | 1 << VIRTIO_RING_F_INDIRECT_DESC
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        copy_config(&self.config, offset, data);
    }

    /// `emerg_wr`: the low byte of what the driver writes there is printed.
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        if offset == EMERG_WR_OFFSET {
            if let Some(&byte) = data.first() {
                self.send(&[byte]);
            }
        }
    }

    fn process_queue(
        &mut self,
        index: usize,
        mut ctx: QueueContext<'_>,
    ) -> Result<(), DeviceFault> {
        match index {
            RECEIVEQ => self.deliver(&mut ctx),
            TRANSMITQ => self.transmit(&mut ctx),
            _ => Err(DeviceFault::Driver(format!(
                "notified queue {index}; a console without MULTIPORT has two"
            ))),
        }
    }

    /// Console input arrived, and the console has room again.
    fn backend_events(&self) -> Vec<BackendEvent> {
        // Edge-triggered: while the driver is not ready the transport leaves the events
        // unread, and level-triggered ones would wake the thread over and over.
        let events = EventSet::IN | EventSet::EDGE_TRIGGERED;
        vec![
            BackendEvent {
                fd: self.input.arrived().as_raw_fd(),
                events,
            },
            BackendEvent {
                fd: self.room.as_raw_fd(),
                events,
            },
        ]
    }

    fn process_backend(&mut self, fd: RawFd, mut ctx: QueueContext<'_>) -> Result<(), DeviceFault> {
        if fd == self.room.as_raw_fd() {
            // Reset the counter; an empty one (EAGAIN) is fine.
            let _ = self.room.read();
            return self.transmit(&mut ctx);
        }
        self.input.clear_arrived();
        self.deliver(&mut ctx)
    }

    fn reset(&mut self) {
        self.tx_resume = None;
    }
}

#[cfg(test)]
mod tests;
