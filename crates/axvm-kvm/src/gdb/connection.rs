//! One GDB session over TCP: the connection, and the loop that waits for either GDB's
//! next byte or a vCPU's stop while the guest runs.

use std::io::{Read, Write};
use std::marker::PhantomData;
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::Duration;

use axvm::VMStatus;
use gdbstub::common::Signal;
use gdbstub::conn::{Connection, ConnectionExt};
use gdbstub::stub::run_blocking::{BlockingEventLoop, Event, WaitForStopReasonError};
use gdbstub::stub::{DisconnectReason, GdbStub, MultiThreadStopReason};

use super::control::Control;
use super::target::{tid_of, VmTarget};

/// How long one wait for GDB's bytes lasts before the VM is looked at again.
const POLL_SLICE: Duration = Duration::from_millis(10);

/// GDB's TCP connection, buffered both ways (gdbstub reads and writes a byte at a time),
/// whose reads give up once the VM has ended.
pub(crate) struct GdbConnection<'a> {
    stream: TcpStream,
    control: &'a Control,
    incoming: Vec<u8>,
    next: usize,
    outgoing: Vec<u8>,
}

impl<'a> GdbConnection<'a> {
    pub(crate) fn new(stream: TcpStream, control: &'a Control) -> Self {
        Self {
            stream,
            control,
            incoming: Vec::new(),
            next: 0,
            outgoing: Vec::new(),
        }
    }

    /// Waits up to `timeout` for GDB's next byte; `None` if none came.
    fn byte_within(&mut self, timeout: Duration) -> std::io::Result<Option<u8>> {
        if self.next < self.incoming.len() {
            self.next += 1;
            return Ok(Some(self.incoming[self.next - 1]));
        }
        let mut poll = libc::pollfd {
            fd: self.stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = timeout.as_millis().try_into().unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd, for the duration of the call.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        if ready < 0 {
            let err = std::io::Error::last_os_error();
            return match err.kind() {
                std::io::ErrorKind::Interrupted => Ok(None),
                _ => Err(err),
            };
        }
        if ready == 0 {
            return Ok(None);
        }
        self.incoming.resize(4096, 0);
        let read = Read::read(&mut self.stream, &mut self.incoming)?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.incoming.truncate(read);
        self.next = 1;
        Ok(Some(self.incoming[0]))
    }
}

impl Connection for GdbConnection<'_> {
    type Error = std::io::Error;

    fn write(&mut self, byte: u8) -> std::io::Result<()> {
        self.outgoing.push(byte);
        Ok(())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.outgoing.extend_from_slice(buf);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Write::write_all(&mut self.stream, &self.outgoing)?;
        self.outgoing.clear();
        Ok(())
    }
}

impl ConnectionExt for GdbConnection<'_> {
    /// Blocks for GDB's next byte, unless the VM ends first (then an error ends the session).
    fn read(&mut self) -> std::io::Result<u8> {
        loop {
            if let Some(byte) = self.byte_within(POLL_SLICE * 5)? {
                return Ok(byte);
            }
            if self.control.all_ended() {
                return Err(std::io::Error::other("the VM ended"));
            }
        }
    }

    fn peek(&mut self) -> std::io::Result<Option<u8>> {
        let byte = self.byte_within(Duration::ZERO)?;
        if byte.is_some() {
            self.next -= 1;
        }
        Ok(byte)
    }
}

/// The event loop of a session (`gdbstub`'s blocking one).
struct EventLoop<'a>(PhantomData<&'a ()>);

type StopReason = MultiThreadStopReason<u64>;

impl<'a> BlockingEventLoop for EventLoop<'a> {
    type Target = VmTarget<'a>;
    type Connection = GdbConnection<'a>;
    type StopReason = StopReason;

    /// While the guest runs: the first vCPU to stop for the debugger (all others are then
    /// paused), the VM's end, or a byte from GDB (Ctrl-C, or a packet).
    fn wait_for_stop_reason(
        target: &mut VmTarget<'a>,
        conn: &mut GdbConnection<'a>,
    ) -> Result<Event<StopReason>, WaitForStopReasonError<String, std::io::Error>> {
        loop {
            if let Some((vcpu_id, stop)) = target.control.next_stop() {
                target.control.pause_all(target.vm);
                return Ok(Event::TargetStopped(target.stop_reason(vcpu_id, stop)));
            }
            if target.control.all_ended() {
                return Ok(Event::TargetStopped(vm_end(target)));
            }
            if let Some(byte) = conn
                .byte_within(POLL_SLICE)
                .map_err(WaitForStopReasonError::Connection)?
            {
                return Ok(Event::IncomingData(byte));
            }
        }
    }

    /// Ctrl-C: every vCPU pauses; GDB sees SIGINT on the first.
    fn on_interrupt(target: &mut VmTarget<'a>) -> Result<Option<StopReason>, String> {
        if !target.control.pause_all(target.vm) {
            return Ok(Some(vm_end(target)));
        }
        let first = target.control.live_vcpus().first().copied().unwrap_or(0);
        Ok(Some(MultiThreadStopReason::SignalWithThread {
            tid: tid_of(first),
            signal: Signal::SIGINT,
        }))
    }
}

/// How the VM ended, for GDB: its exit status, or SIGKILL when it had none (a reset, a
/// stop by the host).
fn vm_end(target: &VmTarget<'_>) -> StopReason {
    match target.vm.exit_status() {
        Some(status) => MultiThreadStopReason::Exited(status),
        None => MultiThreadStopReason::Terminated(Signal::SIGKILL),
    }
}

/// How a session ended.
pub(crate) enum SessionEnd {
    /// GDB detached or went away: the VM runs on, and another GDB may connect.
    Detached,
    /// GDB killed the VM.
    Killed,
    /// The VM ended.
    VmEnded,
}

/// Serves one GDB connection with every vCPU paused; returns with the guest's breakpoints
/// removed (the caller lets the vCPUs run on).
pub(crate) fn serve_session(target: &mut VmTarget<'_>, stream: TcpStream) -> SessionEnd {
    let _ = stream.set_nodelay(true);
    let connection = GdbConnection::new(stream, target.control);
    let result = GdbStub::new(connection).run_blocking::<EventLoop<'_>>(target);
    target.remove_all_breakpoints();
    match result {
        Ok(DisconnectReason::Disconnect) => SessionEnd::Detached,
        Ok(DisconnectReason::Kill) => SessionEnd::Killed,
        Ok(DisconnectReason::TargetExited(_) | DisconnectReason::TargetTerminated(_)) => {
            SessionEnd::VmEnded
        }
        Err(err) if target.vm.status() != VMStatus::Running => {
            log::debug!("gdb: session over with the VM: {err}");
            SessionEnd::VmEnded
        }
        Err(err) => {
            log::warn!("gdb: the session ended: {err}; the VM runs on");
            SessionEnd::Detached
        }
    }
}
