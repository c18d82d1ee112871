//! The command line: the `virtio_mmio.device=` entries that say where the
//! devices are, and the `virtio.*` words that choose what the guest does.
//!
//! Device entries use Linux's syntax (`drivers/virtio/virtio_mmio.c`):
//! `virtio_mmio.device=<size>@<base>:<irq>[:<id>]`, where size and base are
//! numbers in C notation (`0x` hex or decimal) and size may end in `K`, `M`
//! or `G`; e.g. `virtio_mmio.device=4K@0xd0000000:5` (axvm) or
//! `virtio_mmio.device=512@0xfeb00e00:12` (QEMU's microvm). The optional
//! platform-device id is ignored.

use core::fmt;

/// The most device entries the guest takes; more are an error.
pub const MAX_DEVICES: usize = 16;

/// One `virtio_mmio.device=` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioDevice {
    /// Guest-physical base of the register window.
    pub base: u64,
    /// Size of the window in bytes.
    pub size: u64,
    /// The interrupt line (not used: the guest polls).
    pub irq: u32,
}

/// What the guest was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No mode word: probe and exercise every device.
    Default,
    /// `virtio.durability=N`: N flushed writes on the first block device.
    Durability(u64),
    /// `virtio.net=ping`.
    Ping,
    /// `virtio.net=pong`.
    Pong,
    /// `virtio.echo`.
    Echo,
}

/// The parsed command line.
#[derive(Clone, Copy, Debug)]
pub struct Cmdline {
    /// The device entries, in command-line order.
    devices: [Option<MmioDevice>; MAX_DEVICES],
    /// The mode word.
    pub mode: Mode,
}

/// A command-line word the guest cannot use.
#[derive(Debug)]
pub struct BadWord<'a> {
    /// The word.
    pub word: &'a str,
    /// What is wrong with it.
    pub why: &'static str,
}

impl fmt::Display for BadWord<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command-line word `{}`: {}", self.word, self.why)
    }
}

impl Cmdline {
    /// Parses the words of `text` (separated by spaces or tabs). Words that
    /// are neither `virtio_mmio.device=` nor `virtio.*` are ignored; a
    /// malformed or unknown one of those is an error, as are two mode words.
    pub fn parse(text: &str) -> Result<Cmdline, BadWord<'_>> {
        let mut cmdline = Cmdline {
            devices: [None; MAX_DEVICES],
            mode: Mode::Default,
        };
        let mut count = 0;
        for word in text.split([' ', '\t']).filter(|w| !w.is_empty()) {
            let bad = |why| BadWord { word, why };
            if let Some(spec) = word.strip_prefix("virtio_mmio.device=") {
                let device = parse_device(spec).ok_or(bad(
                    "expected virtio_mmio.device=<size>[K|M|G]@<base>:<irq>[:<id>]",
                ))?;
                let slot = cmdline
                    .devices
                    .get_mut(count)
                    .ok_or(bad("more than 16 virtio_mmio.device entries"))?;
                *slot = Some(device);
                count += 1;
            } else if word.starts_with("virtio.") {
                let mode = parse_mode(word).ok_or(bad(
                    "expected virtio.durability=<N>, virtio.net=ping, virtio.net=pong or virtio.echo",
                ))?;
                if cmdline.mode != Mode::Default {
                    return Err(bad("a second mode word: give at most one"));
                }
                cmdline.mode = mode;
            }
        }
        Ok(cmdline)
    }

    /// The device entries, in command-line order.
    pub fn devices(&self) -> impl Iterator<Item = MmioDevice> + '_ {
        self.devices.iter().map_while(|d| *d)
    }
}

fn parse_mode(word: &str) -> Option<Mode> {
    match word {
        "virtio.echo" => Some(Mode::Echo),
        "virtio.net=ping" => Some(Mode::Ping),
        "virtio.net=pong" => Some(Mode::Pong),
        _ => {
            let n = parse_number(word.strip_prefix("virtio.durability=")?)?;
            Some(Mode::Durability(n))
        }
    }
}

/// `<size>[K|M|G]@<base>:<irq>[:<id>]`.
fn parse_device(spec: &str) -> Option<MmioDevice> {
    let (size, rest) = spec.split_once('@')?;
    let (base, rest) = rest.split_once(':')?;
    let irq = rest.split(':').next()?;
    let size = parse_size(size)?;
    if size == 0 {
        return None;
    }
    Some(MmioDevice {
        base: parse_number(base)?,
        size,
        irq: u32::try_from(parse_number(irq)?).ok()?,
    })
}

/// A number with an optional binary suffix: `512`, `4K`, `0x1000`, `1M`.
fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    parse_number(digits)?.checked_mul(1 << shift)
}

/// A number in C notation: `0x` hex or decimal.
fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}
