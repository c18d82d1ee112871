//! The system calls each kind of axvm thread may make, as seccomp rules.
//!
//! The lists come from running the real workloads under `strace -f -ff` (one trace per
//! thread, named by its `PR_SET_NAME`): the demo, the virtio guest with a disk, the in-process
//! switch and a virtio console, several VMs at once, `--stats`, `--trace-exits`,
//! `--watchdog`, and a stop by SIGTERM; then from the CLI test suite, which runs with the
//! sandbox on. Each entry says why a thread needs it. Calls a thread makes only while it
//! starts (naming itself, its signal stack, pinning a vCPU) come before its filter and are
//! not listed.
//!
//! Every thread may map memory, but never executable memory: the allocator and thread stacks
//! need `mmap`/`mprotect`, a guest exploit would need `PROT_EXEC`.

use std::collections::BTreeMap;

use seccompiler::{SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompRule};

use super::ioctls::{console_input_ioctls, timer_ioctls, vcpu_ioctls, watcher_ioctls};
use super::ThreadRole;

/// A syscall number with the rules of which one must match (none: any arguments).
pub(super) type Rules = BTreeMap<i64, Vec<SeccompRule>>;

/// What every thread does: allocate, lock, sleep, log to stderr, kick a vCPU (a stop comes
/// from any thread), drop a descriptor, end, and report a blocked call (`write`, `_exit`).
const EVERY_THREAD: &[i64] = &[
    libc::SYS_brk,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_madvise,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_getrandom,
    libc::SYS_write,
    libc::SYS_close,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_rt_sigprocmask,
    // The kick handler returns through it.
    libc::SYS_rt_sigreturn,
    libc::SYS_restart_syscall,
    // A thread's end: its signal stack goes, then the thread.
    libc::SYS_sigaltstack,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// The vCPU's own calls beside `ioctl`: device models read their eventfds.
const VCPU: &[i64] = &[libc::SYS_read];

/// The virtio device thread: epoll, eventfds, disk images (positioned reads and writes,
/// flushes) and tap devices.
const DEVICES: &[i64] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_epoll_wait,
    libc::SYS_epoll_pwait,
    libc::SYS_epoll_ctl,
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_writev,
    libc::SYS_pread64,
    libc::SYS_preadv,
    libc::SYS_pwrite64,
    libc::SYS_pwritev,
    libc::SYS_fdatasync,
    libc::SYS_fsync,
];

/// The console thread writes the guest's output.
const CONSOLE_OUTPUT: &[i64] = &[libc::SYS_writev];

/// The console-input thread reads the host's input.
const CONSOLE_INPUT: &[i64] = &[
    libc::SYS_read,
    libc::SYS_readv,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    libc::SYS_ppoll,
];

/// The HPET's timer thread sleeps (futex, clocks) and raises lines: nothing but
/// `ioctl(KVM_IRQ_LINE)` (see [`timer_ioctls`]).
const TIMER: &[i64] = &[];

/// The watcher reads each vCPU's `blocking` statistic.
const WATCHER: &[i64] = &[libc::SYS_pread64];

/// A thread that runs VMs and waits for them: it prints reports, takes signals from a
/// self-pipe, polls stderr, writes the exit trace, and drops the VMs.
const SUPERVISOR: &[i64] = &[
    libc::SYS_read,
    libc::SYS_recvfrom,
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_writev,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
];

/// The GDB thread: waits for and accepts a connection on its listener (made non-blocking
/// before), then polls, reads and writes it.
const GDB: &[i64] = &[
    #[cfg(target_arch = "x86_64")]
    libc::SYS_poll,
    libc::SYS_ppoll,
    libc::SYS_accept,
    libc::SYS_accept4,
    libc::SYS_read,
    libc::SYS_recvfrom,
    libc::SYS_getpeername,
];

/// The rules of a thread of `role` in process `pid`.
pub(super) fn rules(role: ThreadRole, pid: u32) -> Result<Rules, seccompiler::Error> {
    let mut rules = Rules::new();
    let own = match role {
        ThreadRole::Vcpu => VCPU,
        ThreadRole::Devices => DEVICES,
        ThreadRole::ConsoleOutput => CONSOLE_OUTPUT,
        ThreadRole::ConsoleInput => CONSOLE_INPUT,
        ThreadRole::Timer => TIMER,
        ThreadRole::Watcher => WATCHER,
        ThreadRole::Supervisor => SUPERVISOR,
        ThreadRole::Gdb => GDB,
    };
    for &syscall in EVERY_THREAD.iter().chain(own) {
        rules.insert(syscall, Vec::new());
    }
    for syscall in [libc::SYS_mmap, libc::SYS_mprotect] {
        rules.insert(syscall, vec![not_executable()?]);
    }
    rules.insert(libc::SYS_fcntl, fcntl_queries()?);
    // A process-directed signal (SIGINT, SIGTERM) runs its handler on whichever thread the
    // kernel picks; the `axvm` command's handler (signal-hook's) wakes its signal thread
    // with `send(self_pipe, "X", 1, MSG_DONTWAIT)`: no address, nothing else.
    rules.insert(
        libc::SYS_sendto,
        vec![rule(vec![
            arg(3, SeccompCmpOp::Eq, libc::MSG_DONTWAIT as u64)?,
            SeccompCondition::new(4, SeccompCmpArgLen::Qword, SeccompCmpOp::Eq, 0)?,
        ])?],
    );
    // Signals go to this process's threads only (vCPU kicks, a raised SIGPIPE).
    rules.insert(
        libc::SYS_tgkill,
        vec![rule(vec![arg(0, SeccompCmpOp::Eq, u64::from(pid))?])?],
    );
    if role == ThreadRole::Gdb {
        gdb_socket_rules(&mut rules)?;
    }
    let ioctls = match role {
        ThreadRole::Vcpu => vcpu_ioctls(),
        ThreadRole::Timer => timer_ioctls(),
        ThreadRole::Watcher => watcher_ioctls(),
        ThreadRole::ConsoleInput => console_input_ioctls(),
        _ => Vec::new(),
    };
    if !ioctls.is_empty() {
        let ioctls = ioctls
            .iter()
            .map(|&request| rule(vec![arg(1, SeccompCmpOp::Eq, request)?]))
            .collect::<Result<_, _>>()?;
        rules.insert(libc::SYS_ioctl, ioctls);
    }
    if role == ThreadRole::Supervisor {
        // A closed stdout ends axvm as SIGPIPE would: the default action is restored and
        // the signal raised (`signal_hook::low_level::emulate_default_handler`).
        let sigpipe = arg(0, SeccompCmpOp::Eq, libc::SIGPIPE as u64)?;
        rules.insert(libc::SYS_rt_sigaction, vec![rule(vec![sigpipe])?]);
    }
    Ok(rules)
}

/// The GDB thread's socket calls with arguments: sends on its connected socket (no
/// address), and `TCP_NODELAY` on it (GDB's packets are small and answered one by one).
fn gdb_socket_rules(rules: &mut Rules) -> Result<(), seccompiler::Error> {
    rules.insert(
        libc::SYS_sendto,
        vec![rule(vec![SeccompCondition::new(
            4,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::Eq,
            0,
        )?])?],
    );
    rules.insert(
        libc::SYS_setsockopt,
        vec![rule(vec![
            arg(1, SeccompCmpOp::Eq, libc::IPPROTO_TCP as u64)?,
            arg(2, SeccompCmpOp::Eq, libc::TCP_NODELAY as u64)?,
        ])?],
    );
    Ok(())
}

/// `mmap`/`mprotect` without `PROT_EXEC` (the protection is argument 2 of both).
fn not_executable() -> Result<SeccompRule, seccompiler::Error> {
    let exec = libc::PROT_EXEC as u64;
    rule(vec![arg(2, SeccompCmpOp::MaskedEq(exec), 0)?])
}

/// `fcntl` asking for a descriptor's flags (Rust checks a descriptor before closing it in
/// debug builds); never changing them.
fn fcntl_queries() -> Result<Vec<SeccompRule>, seccompiler::Error> {
    [libc::F_GETFD, libc::F_GETFL]
        .into_iter()
        .map(|command| rule(vec![arg(1, SeccompCmpOp::Eq, command as u64)?]))
        .collect()
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, seccompiler::Error> {
    Ok(SeccompRule::new(conditions)?)
}

/// A condition on the low 32 bits of argument `index`: every argument tested here is an
/// `int` or a 32-bit ioctl number, whose upper half a caller may leave sign-extended.
fn arg(index: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, seccompiler::Error> {
    Ok(SeccompCondition::new(
        index,
        SeccompCmpArgLen::Dword,
        op,
        value,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_threads_with_kvm_ioctls_may_ioctl() {
        // x86: the vCPUs and the HPET's timer thread; arm64: the vCPUs, the watchdog and the
        // console input (the PL011's interrupt line).
        #[cfg(target_arch = "x86_64")]
        let allowed = [ThreadRole::Vcpu, ThreadRole::Timer];
        #[cfg(target_arch = "aarch64")]
        let allowed = [
            ThreadRole::Vcpu,
            ThreadRole::Watcher,
            ThreadRole::ConsoleInput,
        ];
        for role in ThreadRole::ALL {
            let rules = rules(role, 1).unwrap();
            assert_eq!(
                rules.contains_key(&libc::SYS_ioctl),
                allowed.contains(&role),
                "{role:?}"
            );
            #[cfg(target_arch = "x86_64")]
            if role == ThreadRole::Timer {
                assert_eq!(rules[&libc::SYS_ioctl].len(), 1, "KVM_IRQ_LINE only");
            }
            assert!(!rules.contains_key(&libc::SYS_execve), "{role:?}");
            assert!(!rules.contains_key(&libc::SYS_openat), "{role:?}");
            assert!(!rules.contains_key(&libc::SYS_socket), "{role:?}");
        }
    }
}
