//! The guest console shared by every device that prints to it (COM1, the 0xe9 debug port and
//! virtio consoles), buffered so that printing costs a vCPU a short lock, never a host write.
//!
//! Writing the host's stdout byte by byte on the vCPU thread made each console byte a
//! `write` syscall (a Linux boot spent about a fifth of its time there), and a stalled
//! stdout (a full pipe nobody reads, a suspended terminal) stalled the vCPU with it. Here
//! devices append to one in-memory buffer and return; a dedicated console thread
//! ([`ConsoleThread`]) takes whatever has accumulated and writes it. The thread wakes as
//! soon as bytes arrive, so an interactive terminal still sees each byte at once; batches
//! only form while a write is under way.
//!
//! - **Order.** Bytes reach the host in the order they entered the buffer, whichever device
//!   and vCPU sent them.
//! - **Bounded, and no sender ever waits.** At most [`CONSOLE_BUFFER_BYTES`] wait for the
//!   thread. A full buffer is back-pressure the guest sees, as on real hardware: COM1 reports
//!   its transmitter busy ([`SharedConsole::has_room`] behind its line status register) and
//!   raises its "transmitter empty" interrupt again when room appears
//!   ([`SharedConsole::on_room`]); a virtio console leaves transmit buffers in their queue
//!   until room appears ([`SharedConsole::send_some`]). What a guest sends regardless (port
//!   0xe9 has no status to look at, and a UART driver may ignore it) is dropped and counted
//!   ([`SharedConsole::send`], [`ConsoleEnd::dropped`]). So no vCPU, stop or watchdog ever
//!   waits on the host's stdout.
//! - **Nothing late, nothing hung.** [`SharedConsole::drain`] waits until every byte sent
//!   so far is written and flushed, as long as the writer keeps going: it gives up once the
//!   writer has taken nothing for [`DRAIN_PATIENCE`], saying how much is left.
//!   `KvmVm::run` drains before it returns; dropping the [`ConsoleThread`] drains the same
//!   way (at once when a drain already gave up and nothing was written since) and then
//!   leaves a thread still stuck in a write behind (the process's exit ends it).
//! - **Errors.** A failed write (EPIPE when stdout's reader went away) is logged once and
//!   remembered ([`SharedConsole::write_error`]); later output is dropped unwritten.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many bytes may wait for the console thread; a full buffer takes no more (see the
/// module documentation for what the devices do then).
///
/// Far more than a guest prints while one host write is under way (at one byte per port
/// exit, a microsecond or more each, 64 KiB is tens of milliseconds of nonstop printing
/// against a terminal write of well under one), so a healthy console is never full; and no
/// more than one default Linux pipe (also 64 KiB), so axvm hides at most a pipe's worth of
/// output from a reader that stalls, and a stalled stdout is felt soon.
pub const CONSOLE_BUFFER_BYTES: usize = 64 * 1024;

/// How long the console drain at the end of `KvmVm::run` waits for a writer that takes
/// nothing before it gives up. The console thread writes at most 4 KiB at a time, so any
/// host reader faster than a few KiB a second finishes the drain; one slower than that (a
/// pipe nobody reads) makes `run` return a second after the VM stopped, with a warning
/// saying how many bytes were not written.
pub const DRAIN_PATIENCE: Duration = Duration::from_secs(1);

/// The most the console thread writes (and flushes) at a time, so that `drain` sees
/// progress on a slow writer.
const WRITE_SLICE: usize = 4096;

/// How long the console thread, after writing a batch, goes on collecting bytes before it
/// sleeps until woken. A guest printing one byte per exit would otherwise find the thread
/// asleep for every byte and pay a cross-CPU wake-up each (on nested kvm_amd, most of a
/// byte's cost); lingering makes that one timed wake per batch. The first byte after a
/// pause still wakes the thread at once, and [`SharedConsole::drain`] cuts a linger short,
/// so nothing is late at a stop; a byte printed during a linger waits at most this long.
const LINGER: Duration = Duration::from_millis(2);

/// Told how many bytes a device just sent to the console, on the sending vCPU's thread (the
/// watchdog counts console output as the guest's progress when the guest prints it, not
/// when the host writes it; bytes dropped because the console was full count too: the guest
/// printed them).
pub type OutputObserver = Box<dyn Fn(usize) + Send + Sync>;

/// Called on the console thread when the buffer has room again after a device found it
/// full ([`SharedConsole::on_room`]). It must not send to the console itself.
pub type RoomListener = Box<dyn Fn() + Send + Sync>;

/// What [`SharedConsole::drain`] left behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsoleEnd {
    /// Bytes sent but not written, because the writer took nothing for [`DRAIN_PATIENCE`]
    /// (0 when everything was written, or dropped after a write error).
    pub unwritten: u64,
    /// Bytes dropped so far because the buffer was full when a device sent them.
    pub dropped: u64,
}

/// The buffer and the bookkeeping the devices, the console thread and `drain` share.
#[derive(Default)]
struct State {
    /// Bytes sent and not yet taken by the console thread.
    pending: Vec<u8>,
    /// Bytes ever taken into the buffer.
    sent: u64,
    /// Bytes ever written and flushed (or dropped after a write error).
    settled: u64,
    /// Bytes refused because the buffer was full.
    dropped: u64,
    /// A device found the buffer full: the room listeners are owed a call.
    room_wanted: bool,
    /// The console thread is waiting for bytes (so a sender must wake it).
    thread_idle: bool,
    /// Someone waits in `drain`: the console thread must not linger.
    draining: usize,
    /// A drain gave up on the writer, and it has written nothing since.
    stalled: bool,
    /// The owner asked the console thread to write what is left and end.
    closing: bool,
    /// The console thread ended: nothing will be written any more.
    thread_ended: bool,
    /// Threads waiting on `progress` (`drain`).
    progress_waiters: usize,
    /// The first write error.
    error: Option<String>,
}

impl State {
    /// How many more bytes the buffer takes now.
    fn room(&self, capacity: usize) -> usize {
        capacity.saturating_sub(self.pending.len())
    }
}

struct Shared {
    state: Mutex<State>,
    /// Bytes arrived, or closing: wakes the console thread.
    arrived: Condvar,
    /// The console thread finished a write: wakes `drain`.
    progress: Condvar,
    capacity: usize,
    /// See [`LINGER`].
    linger: Duration,
    observer: Option<OutputObserver>,
    room_listeners: Mutex<Vec<RoomListener>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock panics; a poisoned lock still holds consistent counts.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits on `progress` at most `timeout`, counted so that the console thread knows to
    /// notify.
    fn wait_for_progress<'a>(
        &self,
        mut state: MutexGuard<'a, State>,
        timeout: Duration,
    ) -> MutexGuard<'a, State> {
        state.progress_waiters += 1;
        let mut state = self
            .progress
            .wait_timeout(state, timeout)
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .0;
        state.progress_waiters -= 1;
        state
    }

    /// Releases `state`, then wakes the threads waiting on `progress`, if any. Notifying
    /// after the unlock spares the woken threads from blocking at once on the lock the
    /// notifier still holds.
    fn notify_progress(&self, state: MutexGuard<'_, State>) {
        let waiters = state.progress_waiters > 0;
        drop(state);
        if waiters {
            self.progress.notify_all();
        }
    }

    /// Appends as much of `bytes` as fits, wakes the console thread if it sleeps, and
    /// returns how many bytes went in. When not all did, the room listeners are owed a call
    /// and, if `drop_rest`, the rest counts as dropped.
    fn append(&self, bytes: &[u8], drop_rest: bool) -> io::Result<usize> {
        let mut state = self.state();
        if state.thread_ended {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the console thread has ended (its VM was dropped)",
            ));
        }
        let taken = bytes.len().min(state.room(self.capacity));
        let refused = (bytes.len() - taken) as u64;
        let mut first_drop = false;
        if refused > 0 {
            state.room_wanted = true;
            if drop_rest {
                first_drop = state.dropped == 0;
                state.dropped += refused;
            }
        }
        state.pending.extend_from_slice(&bytes[..taken]);
        state.sent += taken as u64;
        // Wake the console thread only when it sleeps: while it writes, bytes just pile up.
        let wake = taken > 0 && std::mem::replace(&mut state.thread_idle, false);
        // Woken after the unlock, the thread finds the lock free (see `notify_progress`).
        drop(state);
        if wake {
            self.arrived.notify_one();
        }
        if first_drop {
            log::warn!("the guest console's output is not being taken (a stalled stdout?): what the guest prints while its buffer is full is dropped");
        }
        let counted = if drop_rest { bytes.len() } else { taken };
        if let (Some(observer), true) = (&self.observer, counted > 0) {
            observer(counted);
        }
        Ok(taken)
    }

    /// Calls the room listeners (on the console thread, with no lock held).
    fn call_room_listeners(&self) {
        let listeners = self
            .room_listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for listener in listeners.iter() {
            listener();
        }
    }
}

/// A cloneable handle through which devices print to the VM's console.
#[derive(Clone)]
pub struct SharedConsole(Arc<Shared>);

impl SharedConsole {
    /// Appends `bytes` to the console, after everything sent before, and returns at once:
    /// what does not fit in a full buffer is dropped and counted ([`ConsoleEnd::dropped`]).
    /// For devices that cannot hold output back (port 0xe9). Fails only once the console
    /// thread has ended (its [`ConsoleThread`] was dropped).
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        self.0.append(bytes, true).map(|_| ())
    }

    /// Appends as much of `bytes` as the buffer takes now and returns how many bytes that
    /// was; the caller keeps the rest for later. When that is not all, the room listeners
    /// are called once room appears ([`on_room`](Self::on_room)).
    pub fn send_some(&self, bytes: &[u8]) -> io::Result<usize> {
        self.0.append(bytes, false)
    }

    /// How many bytes the guest sent to the console so far.
    pub fn sent_bytes(&self) -> u64 {
        self.0.state().sent
    }

    /// Whether the buffer takes `len` more bytes now. When it does not, the room listeners
    /// are called once room appears.
    pub fn has_room(&self, len: usize) -> bool {
        let mut state = self.0.state();
        // A buffer smaller than `len` (in tests) has room for `len` when it is empty.
        let room = state.room(self.0.capacity) >= len.min(self.0.capacity);
        if !room {
            state.room_wanted = true;
        }
        room
    }

    /// Calls `listener` (on the console thread) each time the buffer has room again after
    /// a device found it full ([`has_room`](Self::has_room) false, or a send cut short).
    pub fn on_room(&self, listener: RoomListener) {
        self.0
            .room_listeners
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(listener);
    }

    /// Waits until every byte sent before this call is written and flushed (or dropped after
    /// a write error), or the console thread has ended, or the writer took nothing for
    /// [`DRAIN_PATIENCE`]. Says what was left unwritten and how much was dropped.
    pub fn drain(&self) -> ConsoleEnd {
        self.drain_with_patience(DRAIN_PATIENCE)
    }

    pub(crate) fn drain_with_patience(&self, patience: Duration) -> ConsoleEnd {
        let shared = &*self.0;
        let mut state = shared.state();
        let target = state.sent;
        // A lingering console thread writes what it has now.
        state.draining += 1;
        shared.arrived.notify_one();
        let mut seen = state.settled;
        let mut since = Instant::now();
        while state.settled < target && !state.thread_ended {
            if state.settled != seen {
                (seen, since) = (state.settled, Instant::now());
            }
            let Some(left) = patience.checked_sub(since.elapsed()) else {
                state.stalled = true;
                break;
            };
            state = shared.wait_for_progress(state, left);
        }
        state.draining -= 1;
        ConsoleEnd {
            unwritten: target.saturating_sub(state.settled),
            dropped: state.dropped,
        }
    }

    /// The first error writing the console, if there was one (output since then was
    /// dropped). Only the tests read it: the VMM goes on without its console.
    #[cfg(test)]
    pub fn write_error(&self) -> Option<String> {
        self.0.state().error.clone()
    }
}

/// What vm-superio's UART calls for each transmitted byte: `write` appends, dropping what
/// a full buffer does not take (see [`SharedConsole::send`]; COM1 tells a driver that
/// looks when the buffer is full, so that one loses nothing); `flush` returns at once,
/// since the console thread flushes what it writes.
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
/// long as the VM (`KvmVm` holds it), across runs; dropping it drains the console (see
/// [`SharedConsole::drain`]) and ends the thread, or, when the writer is stuck, leaves the
/// thread to finish (or die with the process) on its own.
pub struct ConsoleThread {
    console: SharedConsole,
    thread: Option<JoinHandle<()>>,
}

impl ConsoleThread {
    /// Starts a thread writing to `out` what devices send through [`console`](Self::console),
    /// with a buffer of [`CONSOLE_BUFFER_BYTES`]; `observer`, if any, is told of every send.
    #[cfg(test)]
    pub fn spawn(out: Box<dyn Write + Send>, observer: Option<OutputObserver>) -> io::Result<Self> {
        Self::with_capacity(out, CONSOLE_BUFFER_BYTES, observer)
    }

    /// [`spawn`](Self::spawn), the thread confined to the console's system calls first when
    /// `sandboxed` (see [`crate::sandbox`]); returns once it is.
    pub(crate) fn spawn_sandboxed(
        out: Box<dyn Write + Send>,
        observer: Option<OutputObserver>,
        sandboxed: bool,
    ) -> io::Result<Self> {
        Self::start(out, CONSOLE_BUFFER_BYTES, LINGER, observer, sandboxed)
    }

    /// [`spawn`](Self::spawn) with a buffer of `capacity` bytes.
    #[cfg(test)]
    pub fn with_capacity(
        out: Box<dyn Write + Send>,
        capacity: usize,
        observer: Option<OutputObserver>,
    ) -> io::Result<Self> {
        Self::start(out, capacity, LINGER, observer, false)
    }

    /// The console thread with a buffer of `capacity` bytes that lingers `linger` after each
    /// write (tests make the linger long, so that what it gathers does not hang on timing).
    fn start(
        out: Box<dyn Write + Send>,
        capacity: usize,
        linger: Duration,
        observer: Option<OutputObserver>,
        sandboxed: bool,
    ) -> io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            arrived: Condvar::new(),
            progress: Condvar::new(),
            capacity,
            linger,
            observer,
            room_listeners: Mutex::default(),
        });
        let for_thread = shared.clone();
        let thread = crate::sandbox::spawn_confined(
            std::thread::Builder::new().name("axvm-console".into()),
            sandboxed.then_some(crate::sandbox::ThreadRole::ConsoleOutput),
            move || write_batches(&for_thread, out),
        )?;
        Ok(Self {
            console: SharedConsole(shared),
            thread: Some(thread),
        })
    }

    /// The handle devices print through.
    pub fn console(&self) -> SharedConsole {
        self.console.clone()
    }

    /// Waits until everything sent so far is written, within bounds (see
    /// [`SharedConsole::drain`]).
    pub fn drain(&self) -> ConsoleEnd {
        self.console.drain()
    }
}

impl Drop for ConsoleThread {
    fn drop(&mut self) {
        let shared = &*self.console.0;
        let stalled = {
            let mut state = shared.state();
            state.closing = true;
            // A drain (at the end of a run) gave up on the writer, which took nothing since:
            // waiting once more would only delay the end.
            state.stalled.then(|| state.sent - state.settled)
        };
        shared.arrived.notify_one();
        let unwritten = stalled.unwrap_or_else(|| self.console.drain().unwritten);
        let Some(thread) = self.thread.take() else {
            return;
        };
        if unwritten == 0 {
            // Everything is written: the thread is ending. It catches nothing: a writer
            // that panicked is reported by the panic hook.
            let _ = thread.join();
        } else {
            log::debug!("the console thread is stuck writing; left behind with {unwritten} bytes");
        }
    }
}

/// Marks the console thread ended however it ends (a panicking writer included), so that
/// `drain` never waits for it.
struct EndGuard<'a>(&'a Shared);

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        self.0.state().thread_ended = true;
        self.0.progress.notify_all();
    }
}

/// The console thread: takes every byte waiting and writes it, until closed.
fn write_batches(shared: &Shared, mut out: Box<dyn Write + Send>) {
    let _ended = EndGuard(shared);
    let mut batch = Vec::new();
    let mut failed = false;
    let mut wrote = false;
    while take_batch(shared, &mut batch, wrote) {
        wrote = true;
        for slice in batch.chunks(WRITE_SLICE) {
            if !failed {
                if let Err(err) = out.write_all(slice).and_then(|()| out.flush()) {
                    failed = true;
                    let reason = describe_write_error(&err);
                    log::error!("cannot write the guest console: {reason}; the guest's further console output is dropped");
                    shared.state().error = Some(reason);
                }
            }
            let mut state = shared.state();
            state.settled += slice.len() as u64;
            state.stalled = false;
            shared.notify_progress(state);
        }
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
/// lingering first when it `just_wrote`; false once closing with nothing left. Calls the
/// room listeners when a device found the buffer full, since it is empty again.
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
    let room_wanted = std::mem::replace(&mut state.room_wanted, false);
    drop(state);
    if room_wanted {
        shared.call_room_listeners();
    }
    true
}

#[cfg(test)]
pub(crate) mod tests;
