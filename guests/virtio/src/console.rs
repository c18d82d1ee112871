//! The console device: a greeting in the default mode, and the echo mode.

use rt::cpu::{pause, rdtsc};
use rt::println;
use virtio_drivers::device::console::VirtIOConsole;

use crate::cmdline::MmioDevice;
use crate::hal::GuestHal;
use crate::text::Text;
use crate::{fail, status, Mmio};

/// What the default mode writes to the virtio console.
pub const HELLO: &[u8] = b"virtio: hello from hvc0\n";
/// What the echo mode writes before the line it read.
const ECHO_PREFIX: &[u8] = b"echo: ";
/// The longest line the echo mode takes.
const MAX_LINE: usize = 256;
/// How long the echo mode waits for its line: 2^38 TSC ticks, about 90 s at
/// 3 GHz (the host test types it once the guest says it is waiting).
const ECHO_TIMEOUT_TSC: u64 = 1 << 38;

type Console = VirtIOConsole<GuestHal, Mmio>;

fn init(device: MmioDevice, transport: Mmio) -> Console {
    Console::new(transport).unwrap_or_else(|e| {
        fail!(
            status::CONSOLE,
            "console at {:#x}: driver initialisation: {e}",
            device.base
        )
    })
}

fn send(console: &mut Console, bytes: &[u8]) {
    console
        .send_bytes(bytes)
        .unwrap_or_else(|e| fail!(status::CONSOLE, "console send: {e}"));
}

/// The default mode: writes [`HELLO`] to port 0.
pub fn hello(device: MmioDevice, transport: Mmio) {
    let mut console = init(device, transport);
    send(&mut console, HELLO);
    println!("virtio: console ok");
}

/// The echo mode: one line in, `echo: <line>` out.
pub fn echo(device: MmioDevice, transport: Mmio) {
    println!("virtio: {:#x} console", device.base);
    let mut console = init(device, transport);
    println!("virtio: echo: waiting for a line");
    let mut line = [0u8; MAX_LINE];
    let mut len = 0;
    let start = rdtsc();
    loop {
        match console.recv(true) {
            Ok(Some(b'\n' | b'\r')) => break,
            Ok(Some(byte)) => {
                let Some(slot) = line.get_mut(len) else {
                    fail!(status::CONSOLE, "echo: line longer than {MAX_LINE} bytes");
                };
                *slot = byte;
                len += 1;
            }
            Ok(None) if rdtsc().wrapping_sub(start) > ECHO_TIMEOUT_TSC => fail!(
                status::CONSOLE,
                "echo: no complete line on the virtio console within {ECHO_TIMEOUT_TSC} TSC ticks (got {len} bytes)"
            ),
            Ok(None) => pause(),
            Err(e) => fail!(status::CONSOLE, "console receive: {e}"),
        }
    }
    let line = &line[..len];
    let mut reply = [0u8; ECHO_PREFIX.len() + MAX_LINE + 1];
    let reply_len = ECHO_PREFIX.len() + len + 1;
    reply[..ECHO_PREFIX.len()].copy_from_slice(ECHO_PREFIX);
    reply[ECHO_PREFIX.len()..reply_len - 1].copy_from_slice(line);
    reply[reply_len - 1] = b'\n';
    send(&mut console, &reply[..reply_len]);
    println!("virtio: echo ok: {}", Text(line));
}
