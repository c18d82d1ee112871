//! [`StartGate`]: holds a VM's vCPUs back until every thread of the run is confined.

use std::sync::{Condvar, Mutex};

/// Opened once by the thread that starts a run, after it confined itself (and the threads
/// it waits for); each vCPU thread confines itself, then waits here before its first
/// `KVM_RUN`, so no guest instruction runs before every filter is in force.
#[derive(Default)]
pub struct StartGate {
    /// `None` while closed; then whether the vCPUs may run.
    state: Mutex<Option<bool>>,
    opened: Condvar,
}

impl StartGate {
    /// Opens the gate: the vCPUs run when `go`, and stop without running otherwise.
    pub fn open(&self, go: bool) {
        *self.lock() = Some(go);
        self.opened.notify_all();
    }

    /// Waits for the gate to open; whether the vCPU may run.
    pub fn wait(&self) -> bool {
        let mut state = self.lock();
        loop {
            if let Some(go) = *state {
                return go;
            }
            state = self
                .opened
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<bool>> {
        // Nothing panics under this lock.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_see_how_it_opened() {
        for go in [true, false] {
            let gate = StartGate::default();
            std::thread::scope(|scope| {
                let waiter = scope.spawn(|| gate.wait());
                gate.open(go);
                assert_eq!(waiter.join().unwrap(), go);
            });
            assert_eq!(gate.wait(), go);
        }
    }
}
