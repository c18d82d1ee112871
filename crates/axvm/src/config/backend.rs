//! What an emulated device is connected to on the host: a disk image for a virtio block
//! device, a network for a virtio network device.
//!
//! The ArceOS format has no place for these (its `emu_devices` rows are numbers), so axvm
//! adds one table, `[devices.backends]`, keyed by the row's name; files written for the
//! ArceOS hypervisor simply lack it. The first virtio block device may instead take the
//! ArceOS `kernel.disk_path`.

use alloc::format;
use alloc::string::String;
use core::fmt;

/// The host side of one emulated device.
///
/// ```
/// use axvm::config::{DeviceBackend, NetBackend};
/// let disk = DeviceBackend::Disk { path: "disk.img".into(), read_only: true };
/// assert_eq!(disk.to_string(), "disk disk.img (read-only)");
/// let net = DeviceBackend::Net { network: NetBackend::parse("switch:lan").unwrap(), mac: None };
/// assert_eq!(net.to_string(), "network switch:lan");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceBackend {
    /// A disk image: a regular file or a block device, as the host names it.
    Disk {
        /// The file, as written in the config (the host resolves relative paths).
        path: String,
        /// The guest may read but not write it.
        read_only: bool,
    },
    /// A network the device's frames go to.
    Net {
        /// Which network.
        network: NetBackend,
        /// The device's MAC address; the host picks one when none is given.
        mac: Option<MacAddress>,
    },
}

impl DeviceBackend {
    /// What kind of backend this is, for messages ("disk", "network").
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Disk { .. } => "disk",
            Self::Net { .. } => "network",
        }
    }
}

impl fmt::Display for DeviceBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Disk { path, read_only } => {
                write!(f, "disk {path}")?;
                if *read_only {
                    f.write_str(" (read-only)")?;
                }
                Ok(())
            }
            Self::Net { network, mac } => {
                write!(f, "network {network}")?;
                if let Some(mac) = mac {
                    write!(f, ", MAC {mac}")?;
                }
                Ok(())
            }
        }
    }
}

/// Where a virtio network device's frames go: `"tap:NAME"` or `"switch:NAME"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetBackend {
    /// A host tap interface (host networking; opening it needs CAP_NET_ADMIN).
    Tap(String),
    /// A switch inside the host process: every VM the process runs whose device names the
    /// same switch shares one Ethernet segment with it, with no host interface.
    Switch(String),
}

/// The longest interface name Linux accepts (IFNAMSIZ less the terminating NUL).
const MAX_INTERFACE_NAME: usize = 15;

impl NetBackend {
    /// Reads `"tap:NAME"` or `"switch:NAME"`; the error says what is wrong and what is
    /// accepted.
    ///
    /// ```
    /// use axvm::config::NetBackend;
    /// assert_eq!(NetBackend::parse("tap:tap0"), Ok(NetBackend::Tap("tap0".into())));
    /// assert!(NetBackend::parse("tap:a/b").unwrap_err().contains("interface name"));
    /// assert!(NetBackend::parse("bridge:br0").unwrap_err().contains("\"tap:NAME\""));
    /// ```
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(name) = text.strip_prefix("tap:") {
            interface_name_problem(name).map_or(Ok(Self::Tap(name.into())), Err)
        } else if let Some(name) = text.strip_prefix("switch:") {
            if name.is_empty() {
                Err(String::from(
                    "\"switch:\" needs a name, as in \"switch:lan\"",
                ))
            } else {
                Ok(Self::Switch(name.into()))
            }
        } else {
            Err(format!(
                "\"{text}\" is not a network: use \"tap:NAME\" (a host tap interface) or \"switch:NAME\" (VMs of one axvm process)"
            ))
        }
    }
}

/// Why `name` cannot be a Linux network interface name, if it cannot.
fn interface_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_INTERFACE_NAME {
        Some(format!(
            "tap interface name \"{name}\" must have 1 to {MAX_INTERFACE_NAME} bytes"
        ))
    } else if name == "." || name == ".." || name.contains(['/', ':']) {
        Some(format!(
            "tap interface name \"{name}\" may not be \".\" or \"..\" or contain '/' or ':'"
        ))
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some(format!(
            "tap interface name \"{name}\" may not contain spaces or control characters"
        ))
    } else {
        None
    }
}

impl fmt::Display for NetBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tap(name) => write!(f, "tap:{name}"),
            Self::Switch(name) => write!(f, "switch:{name}"),
        }
    }
}

/// An Ethernet MAC address.
///
/// ```
/// use axvm::config::MacAddress;
/// let mac = MacAddress::parse("52:54:00:12:34:56").unwrap();
/// assert_eq!(mac.octets(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
/// assert_eq!(mac.to_string(), "52:54:00:12:34:56");
/// assert!(MacAddress::parse("01:00:00:00:00:01").unwrap_err().contains("multicast"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MacAddress([u8; 6]);

impl MacAddress {
    /// The address with these octets.
    pub const fn new(octets: [u8; 6]) -> Self {
        Self(octets)
    }

    /// Reads six colon-separated hex octets; a multicast address (low bit of the first
    /// octet set) is refused, because no device may own one.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("\"{text}\" is not a MAC address: write six hex octets, as in \"52:54:00:12:34:56\"")
        };
        let mut octets = [0u8; 6];
        let mut parts = text.split(':');
        for octet in &mut octets {
            let part = parts.next().filter(|p| p.len() == 2).ok_or_else(bad)?;
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if octets[0] & 1 != 0 {
            return Err(format!(
                "MAC address {text} is a multicast address: the first octet must be even"
            ));
        }
        Ok(Self(octets))
    }

    /// The six octets.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}
