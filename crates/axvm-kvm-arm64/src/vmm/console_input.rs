//! The guest's console input: a thread that reads the caller's input (stdin for `axvm
//! run`) and queues it in the PL011's receive FIFO as fast as the guest takes it, so no
//! byte is dropped however slowly the guest reads.

use std::io::Read;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use axvm_linux::sandbox::{self, ThreadRole};
use axvm_virt::pl011::Pl011;

/// Wakes the input thread when the guest has read the FIFO empty.
#[derive(Default)]
pub(super) struct Drained {
    ready: Mutex<bool>,
    signal: Condvar,
}

impl Drained {
    /// Called by the PL011 (after its state is unlocked) when a read left the FIFO empty.
    pub(super) fn notify(&self) {
        *self
            .ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        self.signal.notify_one();
    }

    /// Waits for [`notify`](Self::notify), at most `patience` (the thread also looks at
    /// whether the VM is gone).
    fn wait(&self, patience: Duration) {
        let ready = self
            .ready
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (mut ready, _) = self
            .signal
            .wait_timeout_while(ready, patience, |ready| !*ready)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *ready = false;
    }
}

/// Starts the thread that feeds `input` to `uart`. It ends at the input's end of file or
/// error, or when the UART (the VM) is gone; until then a blocking read may keep it waiting,
/// which holds nothing of the VM.
pub(super) fn start(
    mut input: Box<dyn Read + Send>,
    uart: Weak<Pl011>,
    drained: Arc<Drained>,
    sandboxed: bool,
) -> std::io::Result<()> {
    let builder = std::thread::Builder::new().name("console-input".into());
    let role = sandboxed.then_some(ThreadRole::ConsoleInput);
    sandbox::spawn_confined(builder, role, move || {
        let mut buffer = [0u8; 256];
        loop {
            let count = match input.read(&mut buffer) {
                Ok(0) | Err(_) => return,
                Ok(count) => count,
            };
            let mut pending = &buffer[..count];
            while !pending.is_empty() {
                let Some(uart) = uart.upgrade() else {
                    return;
                };
                let taken = uart.push_input(pending);
                drop(uart);
                pending = &pending[taken..];
                if !pending.is_empty() {
                    drained.wait(Duration::from_millis(100));
                }
            }
        }
    })
    .map(drop)
}
