//! The guest console shared by every device that prints to it (COM1 and the 0xe9 debug
//! port): one writer behind one lock, so that bytes from two devices, written by two vCPUs
//! at once, reach the host whole and in the order the devices sent them.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

/// A cloneable handle to the VM's console writer (`VmOptions::console`).
#[derive(Clone)]
pub struct SharedConsole(Arc<Mutex<Box<dyn Write + Send>>>);

impl SharedConsole {
    /// Shares `out` between the devices given clones of the result.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self(Arc::new(Mutex::new(out)))
    }

    fn out(&self) -> MutexGuard<'_, Box<dyn Write + Send>> {
        // A device that panicked mid-write left at worst a partial line behind.
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes `bytes` and flushes them under one lock: a guest printing one byte at a time
    /// must be seen at once (the console is usually an interactive terminal).
    pub fn send(&self, bytes: &[u8]) -> io::Result<()> {
        let mut out = self.out();
        out.write_all(bytes)?;
        out.flush()
    }
}

impl Write for SharedConsole {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out().flush()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A writer whose bytes a test can read back.
    #[derive(Clone, Default)]
    pub(crate) struct Captured(pub Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn clones_write_to_one_console_in_order() {
        let captured = Captured::default();
        let console = SharedConsole::new(Box::new(captured.clone()));
        let mut other = console.clone();
        console.send(b"ab").unwrap();
        other.write_all(b"c").unwrap();
        console.send(b"d").unwrap();
        assert_eq!(&*captured.0.lock().unwrap(), b"abcd");
    }
}
