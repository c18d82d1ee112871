//! The debug console port 0xe9 (Bochs' "port e9 hack", QEMU's `debugcon`): the simplest
//! possible console, one `OUT` per character with no UART to program, which early boot code
//! and firmware built for QEMU print to. Its bytes go to the same console as COM1.
//!
//! The port has no status a guest could wait on, so while the console is full (a stalled
//! stdout) its bytes are dropped and counted, never waited for: `KvmVm::run` says how many
//! at the end of the run.

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

use super::SharedConsole;

/// The debug console's port.
pub const DEBUG_PORT: u16 = 0xe9;

/// What a read of [`DEBUG_PORT`] returns: the port number itself, which is how guests tell
/// that the debug console is there (an absent port reads as something else).
pub const DEBUG_PORT_READBACK: u8 = 0xe9;

/// Writes each byte the guest sends to port 0xe9 to the console.
pub struct DebugPort {
    console: SharedConsole,
}

impl DebugPort {
    /// A debug port printing to `console`.
    pub fn new(console: SharedConsole) -> Self {
        Self { console }
    }
}

impl BaseDeviceOps for DebugPort {
    fn name(&self) -> &str {
        "debug console (port 0xe9)"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Console
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(DEBUG_PORT, 1)]
    }

    fn handle_read(&self, _at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(u64::from(DEBUG_PORT_READBACK))
    }

    fn handle_write(
        &self,
        _at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        // The port is one byte wide: a wider OUT prints only its low byte, as on QEMU.
        self.console
            .send(&[value as u8])
            .map_err(|err| DeviceError {
                device: self.name().into(),
                message: format!("cannot write the console output: {err}"),
            })?;
        Ok(WriteOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::console::tests::captured_console;
    use crate::devices::{ConsoleThread, SerialConsole};
    use axvm_pc::PortAccess;

    const PORT: u64 = DEBUG_PORT as u64;

    #[test]
    fn reads_return_0xe9() {
        let (thread, _) = captured_console();
        let port = DebugPort::new(thread.console());
        assert_eq!(port.read_port(PORT, AccessWidth::Byte).unwrap(), 0xe9);
    }

    #[test]
    fn bytes_reach_the_console_shared_with_com1() {
        let (thread, captured) = captured_console();
        let console = thread.console();
        let port = DebugPort::new(console.clone());
        let com1 = SerialConsole::new(console);
        port.write_port(PORT, AccessWidth::Byte, u64::from(b'a'))
            .unwrap();
        com1.write_port(0x3f8, AccessWidth::Byte, u64::from(b'b'))
            .unwrap();
        // A 16-bit OUT prints its low byte only.
        port.write_port(PORT, AccessWidth::Word, 0x4363).unwrap();
        thread.drain();
        assert_eq!(captured.bytes(), b"abc");
    }

    #[test]
    fn a_full_console_drops_and_counts_instead_of_waiting() {
        // A writer that takes nothing until the test ends: the buffer fills and stays full.
        let (release, stalled) = std::sync::mpsc::channel::<()>();
        let writer = crate::devices::console::tests::Blocking(stalled);
        let thread = ConsoleThread::with_capacity(Box::new(writer), 4, None).unwrap();
        let port = DebugPort::new(thread.console());
        for byte in b"0123456789" {
            port.write_port(PORT, AccessWidth::Byte, u64::from(*byte))
                .unwrap();
        }
        // The thread took some bytes into its stuck write, the buffer holds 4, the rest is
        // dropped: every byte is one or the other.
        let end = thread
            .console()
            .drain_with_patience(std::time::Duration::from_millis(20));
        assert!(end.dropped > 0, "{end:?}");
        assert_eq!(end.unwritten + end.dropped, 10, "{end:?}");
        drop(thread);
        drop(release);
    }
}
