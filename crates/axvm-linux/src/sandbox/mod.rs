//! The sandbox: a seccomp filter on every thread of a running VM, so that a guest that took
//! over a device model or a vCPU thread still cannot open files, start programs, make
//! sockets or map executable memory (Firecracker's threat model: the guest is malicious).
//!
//! Each kind of thread ([`ThreadRole`]) has its own list of allowed system calls, built with
//! the rust-vmm `seccompiler` crate; a vCPU thread may issue only the few KVM `ioctl`s it
//! needs. A thread installs its own filter ([`confine_current_thread`]) at its start, after
//! `PR_SET_NO_NEW_PRIVS`: filters are per thread and inherited by the threads it starts, so
//! the thread that starts the vCPUs confines itself only once they run. Anything else a
//! confined thread calls is trapped: the process writes
//! `axvm: blocked system call N (name) on thread T; ...` on stderr and exits with status
//! [`BLOCKED_SYSCALL_STATUS`] (128 + `SIGSYS`), since a process killed by the kernel could
//! not say why.
//!
//! Both Linux hosts use it (`axvm_kvm::VmOptions::sandbox`,
//! `axvm_kvm_arm64::Arm64VmOptions::sandbox` turn it on for a VM): the `axvm` command does,
//! unless given `--no-seccomp`. The system calls are the same on both; the KVM `ioctl`s a
//! thread may issue are each architecture's (`ioctls/`).

mod gate;
mod ioctls;
mod rules;
mod sigsys;

use std::cell::Cell;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

pub use gate::StartGate;
pub use sigsys::BLOCKED_SYSCALL_STATUS;

/// The kinds of threads axvm runs, each with its own filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadRole {
    /// Runs one vCPU (`KVM_RUN`) and the device models its exits reach.
    Vcpu,
    /// The virtio device thread: queues, disk images, tap devices.
    Devices,
    /// Writes the guest's console to the host.
    ConsoleOutput,
    /// Reads the host's input for the guest's console.
    ConsoleInput,
    /// Raises an emulated timer's interrupts on time (the HPET's thread).
    Timer,
    /// Watches a running VM for halted vCPUs and, with the watchdog, lack of progress.
    Watcher,
    /// Runs VMs and waits for them once their threads run: stops them (a signal), prints
    /// their reports, drops them, exits. It can start no thread and open nothing.
    Supervisor,
    /// Serves GDB (`--gdb`): accepts a connection on its listener, talks over it, reads and
    /// writes guest memory. It never issues an `ioctl`: the vCPU threads do that for it.
    Gdb,
}

impl ThreadRole {
    /// Every role.
    pub const ALL: [Self; 8] = [
        Self::Vcpu,
        Self::Devices,
        Self::ConsoleOutput,
        Self::ConsoleInput,
        Self::Timer,
        Self::Watcher,
        Self::Supervisor,
        Self::Gdb,
    ];
}

/// Why a thread could not be confined.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The filter could not be built (a bug in its rules).
    #[error("cannot build the {role:?} seccomp filter: {message}")]
    Build {
        /// Whose filter.
        role: ThreadRole,
        /// seccompiler's reason.
        message: String,
    },
    /// The kernel refused it (no seccomp filter support?).
    #[error("cannot install the {role:?} seccomp filter: {message} (a kernel without CONFIG_SECCOMP_FILTER? run with --no-seccomp)")]
    Install {
        /// Whose filter.
        role: ThreadRole,
        /// The kernel's reason.
        message: String,
    },
}

thread_local! {
    /// Whether this thread is confined already (filters cannot be removed).
    static CONFINED: Cell<bool> = const { Cell::new(false) };
}

/// Whether the calling thread runs under a filter of [`confine_current_thread`].
pub fn current_thread_is_confined() -> bool {
    CONFINED.with(Cell::get)
}

/// Confines the calling thread, for the rest of its life, to the system calls of `role`
/// (see the module doc); a call outside them ends the process with a message. Sets
/// `PR_SET_NO_NEW_PRIVS` first, which the kernel requires of an unprivileged filter.
///
/// ```no_run
/// use axvm_linux::sandbox::{confine_current_thread, ThreadRole};
///
/// std::thread::spawn(|| {
///     confine_current_thread(ThreadRole::Watcher)?;
///     // From here on, opening a file would end the process.
///     Ok::<(), axvm_linux::sandbox::SandboxError>(())
/// });
/// ```
pub fn confine_current_thread(role: ThreadRole) -> Result<(), SandboxError> {
    let program = program(role)?;
    let install = |err: &dyn std::fmt::Display| SandboxError::Install {
        role,
        message: err.to_string(),
    };
    sigsys::install_handler().map_err(|err| install(&err))?;
    sigsys::remember_thread_name(&format!("{role:?}"));
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(install(&std::io::Error::last_os_error()));
    }
    seccompiler::apply_filter(&program).map_err(|err| install(&err))?;
    CONFINED.with(|confined| confined.set(true));
    log::debug!("thread {role:?} confined");
    Ok(())
}

/// [`confine_current_thread`] when `sandboxed`.
pub fn confine_if(sandboxed: bool, role: ThreadRole) -> Result<(), SandboxError> {
    match sandboxed {
        true => confine_current_thread(role),
        false => Ok(()),
    }
}

/// Spawns `body` on a thread built by `builder`, confined as `role` first (when there is
/// one); returns once the thread is confined, or with the reason it could not be (the thread
/// then ends without running `body`).
pub fn spawn_confined(
    builder: std::thread::Builder,
    role: Option<ThreadRole>,
    body: impl FnOnce() + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (confined_tx, confined) = std::sync::mpsc::sync_channel(1);
    let handle = builder.spawn(move || {
        let result = role.map_or(Ok(()), confine_current_thread);
        let go = result.is_ok();
        let _ = confined_tx.send(result);
        if go {
            body();
        }
    })?;
    match confined.recv() {
        Ok(Ok(())) => Ok(handle),
        Ok(Err(err)) => Err(std::io::Error::other(err)),
        Err(_) => Err(std::io::Error::other("the thread ended at its start")),
    }
}

/// The compiled filter of `role`: its rules allow, anything else traps.
/// The architecture the filters are built for: this process's.
#[cfg(target_arch = "x86_64")]
const TARGET_ARCH: TargetArch = TargetArch::x86_64;
#[cfg(target_arch = "aarch64")]
const TARGET_ARCH: TargetArch = TargetArch::aarch64;

fn program(role: ThreadRole) -> Result<BpfProgram, SandboxError> {
    let build = |err: &dyn std::fmt::Display| SandboxError::Build {
        role,
        message: err.to_string(),
    };
    let rules = rules::rules(role, std::process::id()).map_err(|err| build(&err))?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Trap,
        SeccompAction::Allow,
        TARGET_ARCH,
    )
    .map_err(|err| build(&err))?;
    filter
        .try_into()
        .map_err(|err: seccompiler::BackendError| build(&err))
}

/// Test hook: when the environment has `AXVM_TEST_BLOCKED_SYSCALL=1`, a confined vCPU thread
/// makes a system call outside its list (`getppid`) before the guest's first instruction, so
/// a test can see the sandbox end the process with its message. Never set it otherwise.
pub const BLOCKED_SYSCALL_TEST_HOOK: &str = "AXVM_TEST_BLOCKED_SYSCALL";

/// Makes a system call no filter allows (see [`BLOCKED_SYSCALL_TEST_HOOK`]).
pub fn make_a_blocked_syscall() {
    // SAFETY: getppid takes no arguments and cannot fail.
    unsafe { libc::getppid() };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_compiles() {
        for role in ThreadRole::ALL {
            let program = program(role).unwrap();
            assert!(!program.is_empty(), "{role:?}");
        }
    }

    #[test]
    fn a_confined_thread_runs_its_calls() {
        let outcome = std::thread::spawn(|| {
            confine_current_thread(ThreadRole::Watcher)?;
            // Allocation, a lock and a write to stderr stay allowed.
            let text = vec![b'.'; 1 << 20];
            let lock = std::sync::Mutex::new(text.len());
            let len = *lock.lock().unwrap();
            eprint!("");
            Ok::<_, SandboxError>((len, current_thread_is_confined()))
        })
        .join()
        .unwrap();
        assert_eq!(outcome.unwrap(), (1 << 20, true));
        assert!(!current_thread_is_confined());
    }
}
