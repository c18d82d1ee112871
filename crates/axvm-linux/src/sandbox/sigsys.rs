//! What a blocked system call does: the filters answer `SECCOMP_RET_TRAP`, the kernel sends
//! the thread `SIGSYS`, and this handler says which call on which thread, then ends the
//! process. A filter that killed the process outright (`SECCOMP_RET_KILL_PROCESS`) would
//! leave no word of why; this one says it and still lets nothing through.
//!
//! Everything here is async-signal-safe: the message is built in a stack buffer, the thread's
//! name comes from a constant-initialized thread local, the call's name from a static table
//! ([`syscalls::Sysno`]), and the only system calls are `write(2)` and `_exit(2)`, which
//! every filter allows.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use libc::{c_int, c_void, siginfo_t};
use syscalls::Sysno;

/// The status of a process ended by a blocked system call: 128 + `SIGSYS`, what a shell
/// reports for a process `SIGSYS` killed.
pub const BLOCKED_SYSCALL_STATUS: i32 = 128 + libc::SIGSYS;

/// Longest thread name kept (Linux's own limit is 15 bytes).
const NAME_LEN: usize = 16;

thread_local! {
    /// The confined thread's name, as the handler prints it. Constant-initialized and
    /// without a destructor, so the handler reads it without allocating or locking.
    static THREAD_NAME: Cell<([u8; NAME_LEN], usize)> = const { Cell::new(([0; NAME_LEN], 0)) };
}

/// Records the calling thread's name for the message (`role` when it has none).
pub(super) fn remember_thread_name(role: &str) {
    let current = std::thread::current();
    let name = current.name().unwrap_or(role).as_bytes();
    let len = name.len().min(NAME_LEN);
    let mut bytes = [0; NAME_LEN];
    bytes[..len].copy_from_slice(&name[..len]);
    THREAD_NAME.with(|cell| cell.set((bytes, len)));
}

/// Installs the `SIGSYS` handler, once per process.
pub(super) fn install_handler() -> std::io::Result<()> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        // SAFETY: a zeroed sigaction is valid; the handler is an `extern "C"` function of
        // the SA_SIGINFO shape, and the mask is filled before use.
        result = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(c_int, *mut siginfo_t, *mut c_void) = on_sigsys;
            action.sa_sigaction = handler as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigfillset(&mut action.sa_mask);
            match libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error()),
            }
        };
    });
    result
}

/// The number of the system call that raised `SIGSYS`: `si_syscall`, which the kernel puts
/// after `si_signo`, `si_errno`, `si_code` (padded to 16 bytes) and `si_call_addr` on
/// x86_64 and aarch64 alike. The `libc` crate's `siginfo_t` has no accessor for it.
///
/// # Safety
/// `info` must be the `siginfo_t` the kernel passed with a seccomp `SIGSYS`.
unsafe fn blocked_syscall(info: *const siginfo_t) -> i32 {
    const SI_SYSCALL_OFFSET: usize = 24;
    info.cast::<u8>()
        .add(SI_SYSCALL_OFFSET)
        .cast::<i32>()
        .read_unaligned()
}

extern "C" fn on_sigsys(_: c_int, info: *mut siginfo_t, _: *mut c_void) {
    // Threads trapped at once (every vCPU making the same call) say it once.
    static SAID: AtomicBool = AtomicBool::new(false);
    if SAID.swap(true, Ordering::SeqCst) {
        // SAFETY: ends the process; async-signal-safe and allowed by every filter.
        unsafe { libc::_exit(BLOCKED_SYSCALL_STATUS) };
    }
    // SAFETY: the kernel passes the seccomp siginfo with SA_SIGINFO.
    let number = unsafe { blocked_syscall(info) };
    let mut message = Message::default();
    message.push(b"axvm: blocked system call ");
    message.push_number(number);
    message.push(b" (");
    let name = usize::try_from(number)
        .ok()
        .and_then(Sysno::new)
        .map_or("unknown", |sysno| sysno.name());
    message.push(name.as_bytes());
    message.push(b") on thread ");
    let (thread, len) = THREAD_NAME.with(Cell::get);
    message.push(if len == 0 { b"?" } else { &thread[..len] });
    message.push(
        b"; this is a bug in axvm's seccomp filter, run with --no-seccomp to debug \
          (VmOptions::sandbox = false in the library)\n",
    );
    // SAFETY: writes a live stack buffer to stderr, then ends the process; both are
    // async-signal-safe and allowed by every filter.
    unsafe {
        let _ = libc::write(2, message.bytes.as_ptr().cast(), message.len);
        libc::_exit(BLOCKED_SYSCALL_STATUS);
    }
}

/// A fixed buffer the handler builds its line in, truncating what does not fit.
struct Message {
    bytes: [u8; 320],
    len: usize,
}

impl Default for Message {
    fn default() -> Self {
        Self {
            bytes: [0; 320],
            len: 0,
        }
    }
}

impl Message {
    fn push(&mut self, text: &[u8]) {
        let room = self.bytes.len() - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text[..take]);
        self.len += take;
    }

    fn push_number(&mut self, number: i32) {
        if number < 0 {
            self.push(b"-");
        }
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut rest = number.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_truncation() {
        let mut message = Message::default();
        message.push_number(0);
        message.push(b" ");
        message.push_number(439);
        message.push(b" ");
        message.push_number(-7);
        assert_eq!(&message.bytes[..message.len], b"0 439 -7");
        message.push(&[b'x'; 400]);
        assert_eq!(message.len, message.bytes.len());
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn syscall_names_come_from_the_table() {
        assert_eq!(Sysno::new(39).map(|s| s.name()), Some("getpid"));
        assert_eq!(Sysno::new(16).map(|s| s.name()), Some("ioctl"));
    }

    #[test]
    #[cfg(target_arch = "aarch64")]
    fn syscall_names_come_from_the_table() {
        assert_eq!(Sysno::new(172).map(|s| s.name()), Some("getpid"));
        assert_eq!(Sysno::new(29).map(|s| s.name()), Some("ioctl"));
    }
}
