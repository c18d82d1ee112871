//! Console input: what the host writes reaches the guest through COM1's receive FIFO.
//!
//! A reader (the CLI's stdin, a test's bytes) may block for as long as it likes, so it gets
//! its own thread ([`ConsoleInput`]) and never runs on a vCPU. The thread reads a chunk and
//! pushes as much as fits into the UART's 64-byte receive FIFO ([`ReceiveFifo::receive`]:
//! a short lock on the UART, which sets "data ready" and raises the receive interrupt when
//! the guest enabled it). What does not fit waits until the guest has read the FIFO empty
//! ([`FifoRoom`], told by the UART), so input is never dropped and never busy-waits. The
//! reader's end of file ends input; dropping the [`ConsoleInput`] (with its VM) ends the
//! thread after the read it is blocked in, if any, returns.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use vm_superio::serial::SerialEvents;

/// How long the input thread waits for FIFO room before it looks again whether its VM is
/// gone (room normally wakes it at once).
const ROOM_RECHECK: Duration = Duration::from_millis(50);

/// The guest's receive side of a UART: takes bytes the guest will read.
pub trait ReceiveFifo: Send + Sync {
    /// Queues as many of `bytes` as the FIFO has room for and returns how many that was
    /// (0 when it is full).
    fn receive(&self, bytes: &[u8]) -> usize;

    /// The signal that the guest has emptied the FIFO.
    fn room(&self) -> FifoRoom;
}

/// Counts the times the guest read a UART's receive FIFO empty (or otherwise made room in a
/// receiver, see [`made_room`](Self::made_room)), and wakes whoever waits for that: the UART
/// reports it as a vm-superio [`SerialEvents::in_buffer_empty`] event.
#[derive(Clone, Default)]
pub struct FifoRoom(Arc<(Mutex<u64>, Condvar)>);

impl FifoRoom {
    /// How many times the FIFO was emptied so far.
    pub fn emptied(&self) -> u64 {
        *self.0 .0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until the FIFO was emptied more than `seen` times, or `timeout` passed.
    pub fn wait_past(&self, seen: u64, timeout: Duration) {
        let (count, changed) = &*self.0;
        let guard = count.lock().unwrap_or_else(|p| p.into_inner());
        let _ = changed
            .wait_timeout_while(guard, timeout, |count| *count <= seen)
            .unwrap_or_else(|p| p.into_inner());
    }

    /// Tells the input thread that the receiver has room again before it is empty: a
    /// virtio console frees room each time the driver takes bytes into a buffer.
    pub fn made_room(&self) {
        self.notify();
    }

    fn notify(&self) {
        let (count, changed) = &*self.0;
        *count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        changed.notify_all();
    }
}

impl SerialEvents for FifoRoom {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        self.notify();
    }
}

/// The thread feeding a reader's bytes to a UART; ends it when dropped.
pub struct ConsoleInput {
    closed: Arc<AtomicBool>,
    room: FifoRoom,
}

impl ConsoleInput {
    /// Starts a thread that copies `input` into `fifo` until `input` ends.
    #[cfg(test)]
    pub fn spawn(input: Box<dyn Read + Send>, fifo: Arc<dyn ReceiveFifo>) -> io::Result<Self> {
        Self::spawn_sandboxed(input, fifo, false)
    }

    /// [`spawn`](Self::spawn), the thread confined to console input's system calls first
    /// when `sandboxed` (see [`crate::sandbox`]); returns once it is.
    pub(crate) fn spawn_sandboxed(
        input: Box<dyn Read + Send>,
        fifo: Arc<dyn ReceiveFifo>,
        sandboxed: bool,
    ) -> io::Result<Self> {
        let closed = Arc::new(AtomicBool::new(false));
        let room = fifo.room();
        let thread_closed = Arc::clone(&closed);
        crate::sandbox::spawn_confined(
            std::thread::Builder::new().name("console-input".into()),
            sandboxed.then_some(crate::sandbox::ThreadRole::ConsoleInput),
            move || feed(input, &*fifo, &thread_closed),
        )?;
        Ok(Self { closed, room })
    }
}

impl Drop for ConsoleInput {
    fn drop(&mut self) {
        self.closed.store(true, Ordering::SeqCst);
        self.room.notify();
    }
}

/// The input thread: reads `input` and queues each chunk in `fifo`, waiting for room.
fn feed(mut input: Box<dyn Read + Send>, fifo: &dyn ReceiveFifo, closed: &AtomicBool) {
    let room = fifo.room();
    let mut chunk = [0u8; 256];
    loop {
        let len = match input.read(&mut chunk) {
            Ok(0) => return,
            Ok(len) => len,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => {
                log::warn!("console input ends: cannot read it: {err}");
                return;
            }
        };
        let mut rest = &chunk[..len];
        while !rest.is_empty() {
            if closed.load(Ordering::SeqCst) {
                return;
            }
            // Read the count first: an emptying between `receive` and the wait is not missed.
            let seen = room.emptied();
            let taken = fifo.receive(rest);
            rest = rest.get(taken..).unwrap_or_default();
            if !rest.is_empty() {
                room.wait_past(seen, ROOM_RECHECK);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A FIFO of `capacity` bytes that the test empties by hand.
    struct TestFifo {
        queued: Mutex<Vec<u8>>,
        received: Mutex<Vec<u8>>,
        capacity: usize,
        room: FifoRoom,
    }

    impl TestFifo {
        /// What the "guest" read so far, after reading the FIFO empty.
        fn read_all(&self) -> Vec<u8> {
            let drained: Vec<u8> = self.queued.lock().unwrap().drain(..).collect();
            let mut received = self.received.lock().unwrap();
            received.extend(drained);
            self.room.in_buffer_empty();
            received.clone()
        }
    }

    impl ReceiveFifo for TestFifo {
        fn receive(&self, bytes: &[u8]) -> usize {
            let mut queued = self.queued.lock().unwrap();
            let taken = bytes.len().min(self.capacity - queued.len());
            queued.extend_from_slice(&bytes[..taken]);
            taken
        }

        fn room(&self) -> FifoRoom {
            self.room.clone()
        }
    }

    #[test]
    fn input_larger_than_the_fifo_arrives_whole_and_in_order() {
        let fifo = Arc::new(TestFifo {
            queued: Mutex::default(),
            received: Mutex::default(),
            capacity: 8,
            room: FifoRoom::default(),
        });
        let input: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let _thread = ConsoleInput::spawn(Box::new(io::Cursor::new(input.clone())), fifo.clone())
            .expect("the thread starts");
        // Only a bound on a hang: the thread normally needs a few milliseconds.
        let give_up = std::time::Instant::now() + Duration::from_secs(30);
        let mut received = fifo.read_all();
        while received.len() < input.len() && std::time::Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(1));
            received = fifo.read_all();
        }
        assert_eq!(received, input);
    }
}
