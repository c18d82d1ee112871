//! Tests of the buffered console: order, draining, the bound and write errors, each with a
//! writer that shows the console thread's behaviour (one that sleeps, one that blocks until
//! released, one that fails).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use super::*;

/// A writer whose bytes a test can read back.
#[derive(Clone, Default)]
pub(crate) struct Captured(pub Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub(crate) fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A console thread writing to a [`Captured`], and the capture.
pub(crate) fn captured_console() -> (ConsoleThread, Captured) {
    let captured = Captured::default();
    let thread = ConsoleThread::spawn(Box::new(captured.clone()), None).unwrap();
    (thread, captured)
}

/// A slow terminal: every write sleeps first.
struct Sleepy(Captured);

impl Write for Sleepy {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::thread::sleep(Duration::from_millis(20));
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A stalled pipe: each write says it started, then blocks until the test releases it
/// (drops the sender of `release`).
struct Gated {
    out: Captured,
    started: Sender<()>,
    release: Receiver<()>,
}

impl Write for Gated {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let _ = self.started.send(());
        let _ = self.release.recv();
        self.out.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A stdout whose reader went away: every write fails, and the writes are counted.
#[derive(Clone, Default)]
struct Broken(Arc<AtomicUsize>);

impl Write for Broken {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn clones_write_to_one_console_in_order() {
    let (thread, captured) = captured_console();
    let console = thread.console();
    let mut other = console.clone();
    console.send(b"ab").unwrap();
    other.write_all(b"c").unwrap();
    console.send(b"d").unwrap();
    thread.drain();
    assert_eq!(captured.bytes(), b"abcd");
}

#[test]
fn two_vcpus_taking_turns_are_written_in_the_order_they_sent() {
    // Two threads send alternately (a turn counter orders them), to a slow writer so that
    // bytes of both pile up into shared batches.
    let captured = Captured::default();
    let thread = ConsoleThread::spawn(Box::new(Sleepy(captured.clone())), None).unwrap();
    let turn = Arc::new((Mutex::new(0usize), Condvar::new()));
    const ROUNDS: usize = 200;
    let senders: Vec<_> = [(0, b'a'), (1, b'b')]
        .into_iter()
        .map(|(me, byte)| {
            let (console, turn) = (thread.console(), turn.clone());
            std::thread::spawn(move || {
                let (count, changed) = &*turn;
                for _ in 0..ROUNDS {
                    let mut count = changed
                        .wait_while(count.lock().unwrap(), |c| *c % 2 != me)
                        .unwrap();
                    console.send(&[byte]).unwrap();
                    *count += 1;
                    changed.notify_all();
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    thread.drain();
    assert_eq!(captured.bytes(), b"ab".repeat(ROUNDS));
}

#[test]
fn two_free_running_writers_lose_nothing_and_keep_their_own_order() {
    let (thread, captured) = captured_console();
    const EACH: u8 = 250;
    let senders: Vec<_> = [0u8, 1]
        .into_iter()
        .map(|writer| {
            let console = thread.console();
            std::thread::spawn(move || {
                for n in 0..EACH {
                    // High bit: which writer; the rest: its sequence number (mod 128).
                    console.send(&[writer << 7 | (n & 0x7f)]).unwrap();
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    thread.drain();
    let bytes = captured.bytes();
    assert_eq!(bytes.len(), 2 * usize::from(EACH));
    for writer in [0u8, 1] {
        let own: Vec<u8> = bytes
            .iter()
            .filter(|&&b| b >> 7 == writer)
            .map(|&b| b & 0x7f)
            .collect();
        let expected: Vec<u8> = (0..EACH).map(|n| n & 0x7f).collect();
        assert_eq!(own, expected, "writer {writer}'s bytes out of order");
    }
}

#[test]
fn drain_waits_for_a_slow_writer_to_get_every_byte() {
    let captured = Captured::default();
    let thread = ConsoleThread::spawn(Box::new(Sleepy(captured.clone())), None).unwrap();
    let console = thread.console();
    for byte in b"the last line before the stop\n" {
        console.send(&[*byte]).unwrap();
    }
    thread.drain();
    assert_eq!(captured.bytes(), b"the last line before the stop\n");
}

#[test]
fn dropping_the_thread_writes_what_is_left() {
    let captured = Captured::default();
    let thread = ConsoleThread::spawn(Box::new(Sleepy(captured.clone())), None).unwrap();
    let console = thread.console();
    console.send(b"one ").unwrap();
    console.send(b"two").unwrap();
    drop(thread);
    assert_eq!(captured.bytes(), b"one two");
    // Nothing writes any more: a late send fails instead of waiting forever.
    assert!(console.send(b"late").is_err());
    console.drain();
}

#[test]
fn a_full_buffer_makes_the_sender_wait_and_loses_nothing() {
    let captured = Captured::default();
    let (started_tx, started) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let gated = Gated {
        out: captured.clone(),
        started: started_tx,
        release: release_rx,
    };
    let counted = Arc::new(AtomicUsize::new(0));
    let observer: OutputObserver = {
        let counted = counted.clone();
        Box::new(move |bytes| {
            counted.fetch_add(bytes, Ordering::SeqCst);
        })
    };
    let thread = ConsoleThread::with_capacity(Box::new(gated), 8, Some(observer)).unwrap();
    // Declared after the thread, so a failing assertion releases the writer before the
    // thread is joined instead of hanging.
    let release = release_tx;
    let console = thread.console();
    // The thread takes the first byte and blocks writing it.
    console.send(b"0").unwrap();
    started.recv().unwrap();
    // A vCPU fills the 8-byte buffer, then must wait for room for the tenth byte.
    let sender = {
        let console = console.clone();
        std::thread::spawn(move || {
            for byte in b"123456789" {
                console.send(&[*byte]).unwrap();
            }
        })
    };
    while console.waiting_for_room() == 0 && !sender.is_finished() {
        std::thread::yield_now();
    }
    assert_eq!(
        console.waiting_for_room(),
        1,
        "the sender did not wait for room"
    );
    assert!(!sender.is_finished());
    // Bytes count as printed when the guest sends them, not when they are written.
    assert_eq!(counted.load(Ordering::SeqCst), 9);
    assert!(captured.bytes().is_empty());
    drop(release);
    sender.join().unwrap();
    thread.drain();
    assert_eq!(captured.bytes(), b"0123456789");
    assert_eq!(counted.load(Ordering::SeqCst), 10);
}

#[test]
fn a_write_error_is_remembered_and_later_output_dropped_without_waiting() {
    let broken = Broken::default();
    // A buffer of 4 bytes: were dropped output not settled, the sends below would wait.
    let thread = ConsoleThread::with_capacity(Box::new(broken.clone()), 4, None).unwrap();
    let console = thread.console();
    console.send(b"x").unwrap();
    thread.drain();
    let error = console.write_error().expect("the error is remembered");
    assert_eq!(error, "its reader went away (broken pipe)");
    for _ in 0..64 {
        console.send(b"more").unwrap();
    }
    thread.drain();
    assert_eq!(
        broken.0.load(Ordering::SeqCst),
        1,
        "wrote again after the error"
    );
    drop(thread);
}

#[test]
fn a_send_larger_than_the_buffer_goes_in_whole() {
    let captured = Captured::default();
    let thread = ConsoleThread::with_capacity(Box::new(captured.clone()), 4, None).unwrap();
    thread.console().send(b"0123456789").unwrap();
    thread.drain();
    assert_eq!(captured.bytes(), b"0123456789");
}

/// Counts the writes it is given, and keeps their bytes.
#[derive(Clone, Default)]
struct CountingWrites(Arc<AtomicUsize>, Captured);

impl Write for CountingWrites {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn bytes_sent_one_at_a_time_are_written_in_few_batches() {
    let writer = CountingWrites::default();
    // A linger far longer than the sends take, however slow the host: `drain` ends it.
    let linger = Duration::from_secs(30);
    let thread =
        ConsoleThread::start(Box::new(writer.clone()), CONSOLE_BUFFER_BYTES, linger, None).unwrap();
    let console = thread.console();
    // The first byte wakes the thread; then, 100 µs apart (slower than a write to memory,
    // as a guest's exits are on nested KVM), each would find it asleep again without the
    // linger and be a write of its own.
    console.send(&[0]).unwrap();
    while writer.0.load(Ordering::SeqCst) == 0 {
        std::thread::sleep(Duration::from_micros(100));
    }
    for byte in 1..200u8 {
        console.send(&[byte]).unwrap();
        std::thread::sleep(Duration::from_micros(100));
    }
    thread.drain();
    let written: Vec<u8> = (0..200u8).collect();
    assert_eq!(*writer.1 .0.lock().unwrap(), written);
    assert_eq!(
        writer.0.load(Ordering::SeqCst),
        2,
        "the first byte, then one batch"
    );
}
