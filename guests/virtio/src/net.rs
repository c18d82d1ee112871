//! The network device: its MAC in the default mode, and the ping/pong
//! exchange between two VMs.
//!
//! Frames are `[destination MAC][source MAC][0x88 0xb5][46-byte payload]`:
//! ethertype 0x88b5 is IEEE's "local experimental", so no real protocol
//! stack on the same network takes them for its own, and the payload is
//! ASCII text (`ping <n>`, `pong <n>`) zero-padded to Ethernet's minimum.
//!
//! Waits are bounded in TSC ticks (the guest has no calibrated clock and
//! needs none: these are generous backstops, not timings): a ping is resent
//! every [`RESEND_TSC`] until its pong comes, for at most [`REPLY_TIMEOUT_TSC`];
//! pong waits at most [`PING_TIMEOUT_TSC`] for each ping.

use core::cell::UnsafeCell;

use rt::cpu::{pause, rdtsc};
use rt::println;
use virtio_drivers::device::net::VirtIONetRaw;

use crate::cmdline::MmioDevice;
use crate::hal::GuestHal;
use crate::text::Mac;
use crate::{fail, status, Mmio};

/// Queue size for both virtqueues.
const QUEUE_SIZE: usize = 16;
/// IEEE 802 local experimental ethertype 1.
const ETHERTYPE: [u8; 2] = [0x88, 0xb5];
const BROADCAST: [u8; 6] = [0xff; 6];
/// Ethernet header: two MACs and the ethertype.
const ETH_HEADER: usize = 14;
/// Payload length: pads frames to Ethernet's 60-byte minimum.
const PAYLOAD: usize = 46;
/// How many pings are exchanged.
const ROUNDS: u32 = 3;
/// A ping is resent this often while its pong has not come: 2^30 TSC
/// ticks, about 0.3 s at 3 GHz.
const RESEND_TSC: u64 = 1 << 30;
/// ping gives up on a round after 2^36 TSC ticks (about 20 s at 3 GHz; the
/// first round includes the other VM's start).
const REPLY_TIMEOUT_TSC: u64 = 1 << 36;
/// pong gives up after 2^37 TSC ticks (about 45 s at 3 GHz) without a ping.
const PING_TIMEOUT_TSC: u64 = 1 << 37;
/// After its last pong, pong keeps answering repeated pings (a pong lost
/// on the way) this long: 2^31 TSC ticks, about 0.7 s at 3 GHz.
const LINGER_TSC: u64 = 1 << 31;
/// Receive buffer: the driver wants room for a full frame plus its header.
const RX_BUFFER: usize = 2048;

type Net = VirtIONetRaw<GuestHal, Mmio, QUEUE_SIZE>;

fn init(device: MmioDevice, transport: Mmio) -> Net {
    Net::new(transport).unwrap_or_else(|e| {
        fail!(
            status::NET,
            "net at {:#x}: driver initialisation: {e}",
            device.base
        )
    })
}

/// The default mode: prints the MAC.
pub fn show_mac(device: MmioDevice, transport: Mmio) {
    let net = init(device, transport);
    println!("virtio: net mac {}", Mac(net.mac_address()));
}

/// A received frame of ours: the sender and the payload text.
struct Frame {
    source: [u8; 6],
    payload: [u8; PAYLOAD],
}

impl Frame {
    /// The `<word> <n>` in the payload, if it is that.
    fn number_after(&self, word: &str) -> Option<u32> {
        let len = self.payload.iter().position(|&b| b == 0).unwrap_or(PAYLOAD);
        let text = core::str::from_utf8(&self.payload[..len]).ok()?;
        text.strip_prefix(word)?.strip_prefix(' ')?.parse().ok()
    }
}

/// The receive buffer, owned by the device between `receive_begin` and
/// `receive_complete`.
struct RxBuffer(UnsafeCell<[u8; RX_BUFFER]>);

// SAFETY: one vCPU; only `Link` touches it, and only through the driver's
// receive calls.
unsafe impl Sync for RxBuffer {}

static RX: RxBuffer = RxBuffer(UnsafeCell::new([0; RX_BUFFER]));

/// The device with one receive buffer always posted.
struct Link {
    net: Net,
    mac: [u8; 6],
    rx_token: u16,
}

impl Link {
    fn open(device: MmioDevice, transport: Mmio) -> Link {
        let net = init(device, transport);
        let mac = net.mac_address();
        let mut link = Link {
            net,
            mac,
            rx_token: 0,
        };
        link.post_receive();
        link
    }

    fn rx_buffer() -> &'static mut [u8] {
        // SAFETY: see RxBuffer; every use ends before the next begins.
        unsafe { &mut *RX.0.get() }
    }

    fn post_receive(&mut self) {
        // SAFETY: the buffer is not touched again until receive_complete.
        self.rx_token = unsafe { self.net.receive_begin(Self::rx_buffer()) }
            .unwrap_or_else(|e| fail!(status::NET, "net receive_begin: {e}"));
    }

    /// A frame of ours, if one has arrived; other frames are dropped.
    fn poll(&mut self) -> Option<Frame> {
        if self.net.poll_receive() != Some(self.rx_token) {
            return None;
        }
        let buffer = Self::rx_buffer();
        // SAFETY: the same buffer as posted with this token.
        let (header, len) = unsafe { self.net.receive_complete(self.rx_token, buffer) }
            .unwrap_or_else(|e| fail!(status::NET, "net receive_complete: {e}"));
        let frame = buffer.get(header..header + len).and_then(|frame| {
            if frame.len() < ETH_HEADER || frame[12..14] != ETHERTYPE {
                return None;
            }
            let mut parsed = Frame {
                source: [0; 6],
                payload: [0; PAYLOAD],
            };
            parsed.source.copy_from_slice(&frame[6..12]);
            let payload = &frame[ETH_HEADER..frame.len().min(ETH_HEADER + PAYLOAD)];
            parsed.payload[..payload.len()].copy_from_slice(payload);
            Some(parsed)
        });
        self.post_receive();
        frame
    }

    /// Sends `text` to `destination` and waits until the device took it.
    fn send(&mut self, destination: [u8; 6], text: core::fmt::Arguments) {
        let mut buffer = [0u8; 128];
        let header = self
            .net
            .fill_buffer_header(&mut buffer)
            .unwrap_or_else(|e| fail!(status::NET, "net fill_buffer_header: {e}"));
        let frame = &mut buffer[header..header + ETH_HEADER + PAYLOAD];
        frame[..6].copy_from_slice(&destination);
        frame[6..12].copy_from_slice(&self.mac);
        frame[12..14].copy_from_slice(&ETHERTYPE);
        let mut payload = PayloadWriter {
            buf: &mut frame[ETH_HEADER..],
            len: 0,
        };
        if core::fmt::Write::write_fmt(&mut payload, text).is_err() {
            fail!(status::NET, "net payload longer than {PAYLOAD} bytes");
        }
        let tx = &buffer[..header + ETH_HEADER + PAYLOAD];
        // SAFETY: `tx` is not touched until transmit_complete below.
        let token = unsafe { self.net.transmit_begin(tx) }
            .unwrap_or_else(|e| fail!(status::NET, "net transmit_begin: {e}"));
        let start = rdtsc();
        while self.net.poll_transmit() != Some(token) {
            if rdtsc().wrapping_sub(start) > REPLY_TIMEOUT_TSC {
                fail!(
                    status::NET,
                    "net: the device did not complete a transmission within {REPLY_TIMEOUT_TSC} TSC ticks"
                );
            }
            pause();
        }
        // SAFETY: the same buffer as transmit_begin had.
        unsafe { self.net.transmit_complete(token, tx) }
            .unwrap_or_else(|e| fail!(status::NET, "net transmit_complete: {e}"));
    }
}

/// A `fmt::Write` into the payload.
struct PayloadWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl core::fmt::Write for PayloadWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The `virtio.net=ping` and `virtio.net=pong` modes (see the crate doc).
pub fn ping_pong(device: MmioDevice, transport: Mmio, ping: bool) {
    println!("virtio: {:#x} net", device.base);
    let mut link = Link::open(device, transport);
    println!("virtio: net mac {}", Mac(link.mac));
    let peer = if ping {
        run_ping(&mut link)
    } else {
        run_pong(&mut link)
    };
    println!("virtio: net ok: mac {} peer {}", Mac(link.mac), Mac(peer));
}

/// Broadcasts `ping 1..=3`, each until its pong; returns pong's MAC.
fn run_ping(link: &mut Link) -> [u8; 6] {
    let mut peer = [0; 6];
    for round in 1..=ROUNDS {
        let start = rdtsc();
        let mut last_sent: Option<u64> = None;
        loop {
            let now = rdtsc();
            if now.wrapping_sub(start) > REPLY_TIMEOUT_TSC {
                fail!(
                    status::NET,
                    "net: no `pong {round}` within {REPLY_TIMEOUT_TSC} TSC ticks"
                );
            }
            if last_sent.is_none_or(|at| now.wrapping_sub(at) > RESEND_TSC) {
                link.send(BROADCAST, format_args!("ping {round}"));
                last_sent = Some(now);
            }
            match link.poll() {
                Some(frame) if frame.number_after("pong") == Some(round) => {
                    peer = frame.source;
                    break;
                }
                _ => pause(),
            }
        }
        println!("virtio: pong {round} from {}", Mac(peer));
    }
    peer
}

/// Answers pings until it has answered `ping 3` (and a moment more);
/// returns ping's MAC.
fn run_pong(link: &mut Link) -> [u8; 6] {
    let mut peer = [0; 6];
    let mut last = rdtsc();
    let mut done = false;
    let mut printed = 0;
    loop {
        let now = rdtsc();
        let quiet = now.wrapping_sub(last);
        if done && quiet > LINGER_TSC {
            return peer;
        }
        if quiet > PING_TIMEOUT_TSC {
            fail!(
                status::NET,
                "net: no ping within {PING_TIMEOUT_TSC} TSC ticks"
            );
        }
        let Some(frame) = link.poll() else {
            pause();
            continue;
        };
        let Some(round) = frame.number_after("ping") else {
            continue;
        };
        link.send(frame.source, format_args!("pong {round}"));
        if round > printed {
            println!("virtio: ping {round} from {}", Mac(frame.source));
            printed = round;
        }
        peer = frame.source;
        last = now;
        done |= round == ROUNDS;
    }
}
