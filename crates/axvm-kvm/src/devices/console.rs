//! The guest console shared by every device that prints to it (COM1 and the 0xe9 debug
//! port), buffered so that printing costs a vCPU a short lock, not a host write.
//!
//! Writing the host's stdout byte by byte on the vCPU thread made each console byte a
//! `write` syscall (a Linux boot spent about a fifth of its time there). Here devices append
//! to one in-memory buffer ([`SharedConsole::send`]) and return; a dedicated console thread
//! ([`ConsoleThread`]) takes whatever has accumulated and writes it with one `write_all` +
//! `flush` per batch. The thread wakes as soon as bytes arrive, so an interactive terminal
//! still sees each byte at once; batches only form while a write is under way.
//!
//! - **Order.** Bytes reach the host in the order they entered the buffer, whichever device
//!   and vCPU sent them; one `send` is never split.
//! - **Bounded, never lossy.** When [`CONSOLE_BUFFER_BYTES`] are waiting, a sending vCPU
//!   waits for room. So a stalled stdout (a full pipe nobody reads, a suspended terminal)
//!   still stalls a guest that keeps printing, as it did without the buffer, only 64 KiB
//!   later. Turning that into UART back-pressure (the THR-empty bit) is left for later.
//! - **Nothing late.** [`ConsoleThread::drain`] waits until every byte sent so far is
//!   written and flushed; `KvmVm::run` calls it before it returns, and dropping the
//!   [`ConsoleThread`] writes what is left before the thread ends.
//! - **Errors.** A failed write (EPIPE when stdout's reader went away) is logged once and
//!   remembered ([`SharedConsole::write_error`]); later output is dropped, so no vCPU waits
//!   for room that will never come.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How many bytes may wait for the console thread before a sending vCPU waits for room.
///
/// Far more than a guest prints while one host write is under way (at one byte per port
/// exit, a microsecond or more each, 64 KiB is tens of milliseconds of nonstop printing
/// against a terminal write of well under one), so a healthy console never makes a vCPU
/// wait; and no more than one default Linux pipe (also 64 KiB), so axvm hides at most a
/// pipe's worth of output from a reader that stalls, and a stalled stdout is felt soon.
pub const CONSOLE_BUFFER_BYTES: usize = 64 * 1024;

/// How long the console thread, after writing a batch, goes on collecting bytes before it
/// sleeps until woken. A guest printing one byte per exit would otherwise find the thread
/// asleep for every byte and pay a cross-CPU wake-up each (on nested kvm_amd, most of a
/// byte's cost); lingering makes that one timed wake per batch. The first byte after a
/// pause still wakes the thread at once, and [`SharedConsole::drain`] cuts a linger short,
/// so nothing is late at a stop; a byte printed during a linger waits at most this long.
const LINGER: Duration = Duration::from_millis(2);

/// Told how many bytes a device just sent to the console, on the sending vCPU's thread (the
/// watchdog counts console output as the guest's progress when the guest prints it, not
/// when the host writes it).
pub type OutputObserver = Box<dyn Fn(usize) + Send + Sync>;

/// The buffer and the bookkeeping the devices, the console thread and `drain` share.
#[derive(Default)]
struct State {
    /// Bytes sent and not yet taken by the console thread.
    pending: Vec<u8>,
    /// Bytes ever sent.
    sent: u64,
    /// Bytes ever written and flushed (or dropped after a write error).
    settled: u64,
    /// The console thread is waiting for bytes (so a sender must wake it).
    thread_idle: bool,
    /// Someone waits in `drain`: the console thread must not linger.
    draining: usize,
    /// The owner asked the console thread to write what is left and end.
    closing: bool,
    /// The console thread ended: nothing will be written any more.
    thread_ended: bool,
    /// Threads waiting on `progress` (senders for room, `drain` for the bytes it waits for).
    progress_waiters: usize,
    /// Senders waiting for room (tests use it to see that the bound holds).
    waiting_for_room: usize,
    /// The first write error.
    error: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    /// Bytes arrived, or closing: wakes the console thread.
    arrived: Condvar,
    /// The console thread took a batch or finished one: wakes senders and `drain`.
    progress: Condvar,
    capacity: usize,
    /// See [`LINGER`].
    linger: Duration,
    observer: Option<OutputObserver>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock panics; a poisoned lock still holds consistent counts.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits on `progress`, counted so that the console thread knows to notify.
    fn wait_for_progress<'a>(&self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        state.progress_waiters += 1;
        let mut state = self
            .progress
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.progress_waiters -= 1;
        state
    }

    /// Releases `state`, then wakes the threads waiting on `progress`, if any. Notifying
    /// after the unlock spares the woken threads from blocking at once on the lock the
    /// notifier still holds (and the notifier a second wake-up when it lets go).
    fn notify_progress(&self, state: MutexGuard<'_, State>) {
        let waiters = state.progress_waiters > 0;
        drop(state);
        if waiters {
            self.progress.notify_all();
        }
    }
}

/// A cloneable handle through which devices print to the VM's console.
#[derive(Clone)]
pub struct SharedConsole(Arc<Shared>);

impl SharedConsole {
    /// Appends `bytes` to the console, after everything sent before, and returns; the
    /// console thread writes them. Waits while the buffer is full. Fails only once the
    /// console thread has ended (its [`ConsoleThread`] was dropped).
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let shared = &*self.0;
        let mut state = shared.state();
        loop {
            if state.thread_ended {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the console thread has ended (its VM was dropped)",
                ));
            }
            // One send larger than the whole buffer still goes in whole, into an empty one.
            if state.pending.is_empty() || state.pending.len() + bytes.len() <= shared.capacity {
                break;
            }
            state.waiting_for_room += 1;
            state = shared.wait_for_progress(state);
            state.waiting_for_room -= 1;
        }
        state.pending.extend_from_slice(bytes);
        state.sent += bytes.len() as u64;
        // Wake the console thread only when it sleeps: while it writes, bytes just pile up.
        let wake = std::mem::replace(&mut state.thread_idle, false);
        // Woken after the unlock, the thread finds the lock free (see `notify_progress`).
        drop(state);
        if wake {
            shared.arrived.notify_one();
        }
        if let Some(observer) = &shared.observer {
            observer(bytes.len());
        }
        Ok(())
    }

    /// Waits until every byte sent before this call is written and flushed, or dropped
    /// after a write error, or the console thread has ended.
    pub fn drain(&self) {
        let shared = &*self.0;
        let mut state = shared.state();
        let target = state.sent;
        if state.settled >= target {
            return;
        }
        // A lingering console thread writes what it has now.
        state.draining += 1;
        shared.arrived.notify_one();
        while state.settled < target && !state.thread_ended {
            state = shared.wait_for_progress(state);
        }
        state.draining -= 1;
    }

    /// The first error writing the console, if there was one (output since then was
    /// dropped). Only the tests read it: the VMM goes on without its console.
    #[cfg(test)]
    pub fn write_error(&self) -> Option<String> {
        self.0.state().error.clone()
    }

    /// How many senders wait for room in the buffer right now.
    #[cfg(test)]
    fn waiting_for_room(&self) -> usize {
        self.0.state().waiting_for_room
    }
}

/// What vm-superio's UART calls for each transmitted byte: `write` appends (see
/// [`SharedConsole::send`]); `flush` returns at once, since the console thread flushes
/// every batch it writes (wait for output with [`SharedConsole::drain`]).
impl Write for SharedConsole {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The thread writing a VM's console to the host, and the owner of its output. It lives as
/// long as the VM (`KvmVm` holds it), across runs; dropping it writes what is left and ends
/// the thread (so with a stalled stdout, the drop waits as long as the stall, as the vCPU
/// writing the byte itself used to).
pub struct ConsoleThread {
    console: SharedConsole,
    thread: Option<JoinHandle<()>>,
}

impl ConsoleThread {
    /// Starts a thread writing to `out` what devices send through [`console`](Self::console),
    /// with a buffer of [`CONSOLE_BUFFER_BYTES`]; `observer`, if any, is told of every send.
    pub fn spawn(out: Box<dyn Write + Send>, observer: Option<OutputObserver>) -> io::Result<Self> {
        Self::with_capacity(out, CONSOLE_BUFFER_BYTES, observer)
    }

    /// [`spawn`](Self::spawn) with a buffer of `capacity` bytes.
    pub fn with_capacity(
        out: Box<dyn Write + Send>,
        capacity: usize,
        observer: Option<OutputObserver>,
    ) -> io::Result<Self> {
        Self::start(out, capacity, LINGER, observer)
    }

    /// The console thread with a buffer of `capacity` bytes that lingers `linger` after each
    /// write (tests make the linger long, so that what it gathers does not hang on timing).
    fn start(
        out: Box<dyn Write + Send>,
        capacity: usize,
        linger: Duration,
        observer: Option<OutputObserver>,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            progress: Condvar::new(),
            capacity,
            linger,
            observer,
        });
        let for_thread = shared.clone();
        let thread = std::thread::Builder::new()
            .name("axvm-console".into())
            .spawn(move || write_batches(&for_thread, out))?;
        Ok(Self {
            console: SharedConsole(shared),
            thread: Some(thread),
        })
    }

    /// The handle devices print through.
    pub fn console(&self) -> SharedConsole {
        self.console.clone()
    }

    /// Waits until everything sent so far is written (see [`SharedConsole::drain`]).
    pub fn drain(&self) {
        self.console.drain();
    }
}

impl Drop for ConsoleThread {
    fn drop(&mut self) {
        let shared = &*self.console.0;
        shared.state().closing = true;
        shared.arrived.notify_one();
        if let Some(thread) = self.thread.take() {
            // The thread catches nothing: a writer that panicked is reported by the guard.
            let _ = thread.join();
        }
    }
}

/// Marks the console thread ended however it ends (a panicking writer included), so that
/// senders and `drain` never wait for it.
struct EndGuard<'a>(&'a Shared);

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        self.0.state().thread_ended = true;
        self.0.progress.notify_all();
    }
}

/// The console thread: takes every byte waiting and writes it as one batch, until closed.
fn write_batches(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let _ended = EndGuard(shared);
    let mut batch = Vec::new();
    let mut failed = false;
    let mut wrote = false;
    while take_batch(shared, &mut batch, wrote) {
        wrote = true;
        if !failed {
            if let Err(err) = out.write_all(&batch).and_then(|()| out.flush()) {
                failed = true;
                let reason = describe_write_error(&err);
                log::error!("cannot write the guest console: {reason}; the guest's further console output is dropped");
                shared.state().error = Some(reason);
            }
        }
        let mut state = shared.state();
        state.settled += batch.len() as u64;
        shared.notify_progress(state);
    }
}

/// Why writing the console failed, in words: "its reader went away (broken pipe)" for EPIPE
/// (the usual case: `axvm run | head`), else the error without Rust's "(os error N)".
pub fn describe_write_error(err: &io::Error) -> String {
    if err.kind() == io::ErrorKind::BrokenPipe {
        return "its reader went away (broken pipe)".to_string();
    }
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Waits for bytes and swaps them into `batch` (whose old allocation the buffer reuses),
/// lingering first when it `just_wrote`; false once closing with nothing left.
fn take_batch(shared: &Shared, batch: &mut Vec<u8>, just_wrote: bool) -> bool {
    let mut state = shared.state();
    if just_wrote && state.pending.is_empty() && !state.closing && state.draining == 0 {
        // Linger (see LINGER): senders do not wake the thread meanwhile; `drain` and
        // closing do.
        state = shared
            .arrived
            .wait_timeout(state, shared.linger)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
    }
    while state.pending.is_empty() && !state.closing {
        state.thread_idle = true;
        state = shared
            .arrived
            .wait(state)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    state.thread_idle = false;
    if state.pending.is_empty() {
        return false;
    }
    batch.clear();
    std::mem::swap(batch, &mut state.pending);
    // The buffer is empty again: senders waiting for room go on.
    shared.notify_progress(state);
    true
}

#[cfg(test)]
pub(crate) mod tests;
