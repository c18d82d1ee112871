//! Kicking a vCPU thread out of `KVM_RUN`, so that a shutdown never waits on a guest.
//!
//! The kicker sends a real-time signal to the vCPU's thread. The signal handler sets
//! `immediate_exit` in that thread's `kvm_run` page: if the thread is inside `KVM_RUN`, the
//! signal interrupts it; if it is about to enter, `immediate_exit` makes `KVM_RUN` return at
//! once. Either way the vCPU loop sees the kick, and no window is left in which it is lost.

use std::cell::Cell;
use std::ptr;
use std::sync::{Mutex, Once};

use kvm_bindings::kvm_run;
use libc::{c_int, c_void, siginfo_t};
use vmm_sys_util::signal::{register_signal_handler, SIGRTMIN};

thread_local! {
    /// The `kvm_run` page of the vCPU this thread runs (null when it runs none). Constant-
    /// initialized, so reading it from a signal handler allocates nothing.
    static CURRENT_KVM_RUN: Cell<*mut kvm_run> = const { Cell::new(ptr::null_mut()) };
}

/// The signal used for kicks: the first real-time signal, as other VMMs do.
fn kick_signal() -> c_int {
    SIGRTMIN()
}

extern "C" fn on_kick(_: c_int, _: *mut siginfo_t, _: *mut c_void) {
    let run = CURRENT_KVM_RUN.with(Cell::get);
    if !run.is_null() {
        // SAFETY: the pointer is this thread's live kvm_run mapping (set by `register` and
        // cleared before the vCPU goes away); a volatile byte store is signal-safe.
        unsafe { ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

/// Installs the kick signal handler once per process; fails with the errno of the signal
/// registration.
pub fn install_kick_handler() -> Result<(), vmm_sys_util::errno::Error> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| {
        result = register_signal_handler(kick_signal(), on_kick);
    });
    result
}

#[derive(Clone, Copy)]
struct Slot {
    kvm_run: *mut kvm_run,
    thread: Option<libc::pthread_t>,
}

/// Which thread runs which vCPU, so that a kick reaches it.
#[derive(Default)]
pub struct KickRegistry {
    slots: Mutex<Vec<Slot>>,
}

// SAFETY: the raw pointers are only dereferenced by the owning vCPU thread (in the signal
// handler); the registry just stores them.
unsafe impl Send for KickRegistry {}
// SAFETY: as above; all access to the slots goes through the mutex.
unsafe impl Sync for KickRegistry {}

impl KickRegistry {
    /// Records vCPU `vcpu_id`'s `kvm_run` page.
    ///
    /// # Safety
    ///
    /// `kvm_run` must be the vCPU's live `kvm_run` mapping, and stay mapped while a thread is
    /// registered for it: the kick signal handler writes its `immediate_exit`.
    pub unsafe fn add_vcpu(&self, vcpu_id: usize, kvm_run: *mut kvm_run) {
        let mut slots = self.lock();
        if slots.len() <= vcpu_id {
            slots.resize(
                vcpu_id + 1,
                Slot {
                    kvm_run: ptr::null_mut(),
                    thread: None,
                },
            );
        }
        slots[vcpu_id] = Slot {
            kvm_run,
            thread: None,
        };
    }

    /// Makes the calling thread the one that runs `vcpu_id` until the guard drops.
    pub fn register(&self, vcpu_id: usize) -> KickGuard<'_> {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(vcpu_id) {
            // Point the handler at the page before the thread becomes kickable.
            CURRENT_KVM_RUN.with(|current| current.set(slot.kvm_run));
            // SAFETY: pthread_self has no preconditions.
            slot.thread = Some(unsafe { libc::pthread_self() });
        }
        KickGuard {
            registry: self,
            vcpu_id,
        }
    }

    /// Kicks `vcpu_id` if a thread runs it; does nothing otherwise (a vCPU that no thread
    /// runs is not in guest mode, and sees the status change when it next starts).
    pub fn kick(&self, vcpu_id: usize) {
        let slots = self.lock();
        if let Some(Slot {
            thread: Some(thread),
            ..
        }) = slots.get(vcpu_id)
        {
            // SAFETY: the thread is registered, so it is alive: it unregisters (under this
            // same lock) before it exits.
            let ret = unsafe { libc::pthread_kill(*thread, kick_signal()) };
            if ret != 0 {
                log::warn!("cannot kick vCPU {vcpu_id}: pthread_kill returned {ret}");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Keeps the current thread registered as a vCPU's runner.
pub struct KickGuard<'a> {
    registry: &'a KickRegistry,
    vcpu_id: usize,
}

impl Drop for KickGuard<'_> {
    fn drop(&mut self) {
        if let Some(slot) = self.registry.lock().get_mut(self.vcpu_id) {
            slot.thread = None;
        }
        CURRENT_KVM_RUN.with(|current| current.set(ptr::null_mut()));
    }
}
