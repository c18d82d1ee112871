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

/// A pipe nobody reads: every write blocks until the test drops the sender.
pub(crate) struct Blocking(pub Receiver<()>);

impl Write for Blocking {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        let _ = self.0.recv();
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
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
    assert_eq!(thread.drain(), ConsoleEnd::default());
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

/// A console thread with a buffer of `capacity` whose writer blocks in its first write
/// until the returned sender is dropped; returns once that write has started (so the buffer
/// is empty again and fills from here), with the capture. `observer` is told of every send.
pub(crate) fn stalled_console(
    capacity: usize,
    observer: Option<OutputObserver>,
) -> (Sender<()>, ConsoleThread, Captured) {
    let captured = Captured::default();
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let gated = Gated {
        out: captured.clone(),
        started: started_tx,
        release: release_rx,
    };
    let thread = ConsoleThread::with_capacity(Box::new(gated), capacity, observer).unwrap();
    thread.console().send(b"0").unwrap();
    started.recv().unwrap();
    (release, thread, captured)
}

#[test]
fn a_full_buffer_drops_and_counts_what_send_gives_it_and_never_waits() {
    let counted = Arc::new(AtomicUsize::new(0));
    let observer: OutputObserver = {
        let counted = counted.clone();
        Box::new(move |bytes| {
            counted.fetch_add(bytes, Ordering::SeqCst);
        })
    };
    // The release is declared before the thread, so it is dropped after it: the drop below
    // must not wait for a writer that is stuck.
    let (release, thread, captured) = stalled_console(8, Some(observer));
    let console = thread.console();
    // The thread blocks writing "0"; the 8-byte buffer takes 8 bytes, the 9th is dropped.
    console.send(b"12345678").unwrap();
    console.send(b"9").unwrap();
    // Bytes count as printed when the guest sends them, dropped ones too.
    assert_eq!(counted.load(Ordering::SeqCst), 10);
    assert!(!console.has_room(1));
    let end = console.drain_with_patience(Duration::from_millis(50));
    assert_eq!(
        end,
        ConsoleEnd {
            unwritten: 9,
            dropped: 1
        }
    );
    assert!(captured.bytes().is_empty());
    drop(release);
    assert_eq!(thread.drain().unwritten, 0);
    assert_eq!(captured.bytes(), b"012345678");
    assert!(console.has_room(8));
}

#[test]
fn send_some_keeps_what_does_not_fit_and_room_listeners_hear_of_room() {
    let (release, thread, captured) = stalled_console(4, None);
    let console = thread.console();
    let (room_tx, room) = mpsc::channel();
    let room_tx = Mutex::new(room_tx);
    console.on_room(Box::new(move || {
        let _ = room_tx.lock().unwrap().send(());
    }));
    assert_eq!(console.send_some(b"abcdef").unwrap(), 4);
    assert_eq!(console.send_some(b"ef").unwrap(), 0);
    assert!(room.try_recv().is_err(), "room announced while full");
    drop(release);
    // The thread takes the four bytes and announces the room: a generous bound, only so
    // that a missing call fails instead of hanging.
    room.recv_timeout(Duration::from_secs(30))
        .expect("no room announced");
    assert_eq!(console.send_some(b"ef").unwrap(), 2);
    assert_eq!(thread.drain(), ConsoleEnd::default());
    assert_eq!(captured.bytes(), b"0abcdef");
}

#[test]
fn a_writer_that_takes_nothing_is_given_up_and_left_behind_on_drop() {
    let (release, thread, captured) = stalled_console(8, None);
    let console = thread.console();
    console.send(b"lost").unwrap();
    let end = console.drain_with_patience(Duration::from_millis(20));
    assert_eq!(end.unwritten, 5);
    // A drain that already gave up, with nothing written since, does not wait again: the
    // drop (which drains with the full patience) returns without joining the thread.
    drop(thread);
    assert!(captured.bytes().is_empty());
    drop(release);
}

#[test]
fn a_write_error_is_remembered_and_later_output_dropped_without_waiting() {
    let broken = Broken::default();
    // A buffer of 4 bytes: were output dropped after the error not settled, the sends below
    // would be refused and the drains would wait for the patience to run out.
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
fn a_send_larger_than_the_buffer_keeps_what_fits() {
    let captured = Captured::default();
    let thread = ConsoleThread::with_capacity(Box::new(captured.clone()), 4, None).unwrap();
    thread.console().send(b"0123456789").unwrap();
    assert_eq!(thread.drain().dropped, 6);
    assert_eq!(captured.bytes(), b"0123");
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
    let thread = ConsoleThread::start(
        Box::new(writer.clone()),
        CONSOLE_BUFFER_BYTES,
        linger,
        None,
        false,
    )
    .unwrap();
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
