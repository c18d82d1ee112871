//! The bytes of console input on their way to a virtio console's driver: a bounded buffer
//! between the input thread (which fills it) and the VM's virtio thread (which empties it
//! into the receive buffers the driver posts).

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard};

use vmm_sys_util::eventfd::EventFd;

use crate::devices::console_input::{FifoRoom, ReceiveFifo};

/// How many bytes of console input may wait for the driver's receive buffers before the
/// input thread waits for room: a few of Linux's page-sized receive buffers, far more than a
/// user types ahead, and small enough that a guest that never reads holds little.
pub const INBOX_BYTES: usize = 16 * 1024;

/// Console input waiting for the driver.
///
/// The input thread ([`ConsoleInput`](crate::devices::ConsoleInput)) puts bytes in through
/// [`ReceiveFifo::receive`], which takes only what fits and signals [`arrived`]; it then
/// waits on [`FifoRoom`] for the rest, so back-pressure reaches the reader and nothing is
/// dropped. The virtio thread wakes on [`arrived`] (or on the driver's notification of new
/// receive buffers), takes bytes with [`take`](Self::take) and tells the input thread of the
/// room it made.
///
/// [`arrived`]: Self::arrived
pub struct ConsoleInbox {
    bytes: Mutex<VecDeque<u8>>,
    capacity: usize,
    arrived: EventFd,
    room: FifoRoom,
}

impl ConsoleInbox {
    /// An empty inbox holding at most `capacity` bytes. Fails only when the eventfd cannot
    /// be made.
    pub fn new(capacity: usize) -> std::io::Result<Self> {
        Ok(Self {
            bytes: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
            arrived: EventFd::new(libc::EFD_NONBLOCK)?,
            room: FifoRoom::default(),
        })
    }

    /// Signalled each time bytes arrive; the virtio thread waits on it (edge-triggered).
    pub fn arrived(&self) -> &EventFd {
        &self.arrived
    }

    /// Clears [`arrived`](Self::arrived) before the bytes are looked at, so bytes that
    /// arrive afterwards signal it again and are not missed.
    pub fn clear_arrived(&self) {
        // EAGAIN (nothing signalled) is fine: this only resets the counter.
        let _ = self.arrived.read();
    }

    /// Lets `fill` take bytes from the front of the inbox: it gets the waiting bytes (in at
    /// most two slices, in order) and returns how many it took. Wakes the input thread when
    /// that made room.
    pub fn take<E>(&self, fill: impl FnOnce(&[u8], &[u8]) -> Result<usize, E>) -> Result<usize, E> {
        let mut bytes = self.lock();
        let (front, back) = bytes.as_slices();
        let taken = fill(front, back)?.min(bytes.len());
        bytes.drain(..taken);
        drop(bytes);
        if taken > 0 {
            self.room.made_room();
        }
        Ok(taken)
    }

    /// How many bytes wait.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no byte waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<u8>> {
        // Nothing under this lock panics; a poisoned lock still holds whole bytes.
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ReceiveFifo for ConsoleInbox {
    fn receive(&self, bytes: &[u8]) -> usize {
        let mut waiting = self.lock();
        let taken = bytes.len().min(self.capacity - waiting.len());
        waiting.extend(&bytes[..taken]);
        drop(waiting);
        if taken > 0 {
            if let Err(err) = self.arrived.write(1) {
                log::warn!("virtio console: input not signalled: {err}");
            }
        }
        taken
    }

    fn room(&self) -> FifoRoom {
        self.room.clone()
    }
}
