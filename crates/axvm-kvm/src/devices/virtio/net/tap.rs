//! `tap:NAME`: a host tap interface, the host end of the guest's Ethernet link.
//!
//! Opened through /dev/net/tun with `IFF_TAP | IFF_NO_PI`: each read returns one whole
//! Ethernet frame and each write sends one, with no packet-information header (and no
//! virtio-net header: no offloads are negotiated, so there is nothing to pass through). The
//! descriptor is nonblocking; the device waits for it edge-triggered and drains it.
//! Creating or attaching to a tap needs CAP_NET_ADMIN (or a tap made beforehand with
//! `ip tuntap add NAME mode tap user USER`).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

/// An open tap interface.
#[derive(Debug)]
pub struct Tap {
    file: File,
    name: String,
    /// Where [`receive_frame`](Self::receive_frame) reads, kept between frames.
    buffer: Vec<u8>,
}

impl Tap {
    /// Opens (creating it if needed) the tap interface `name`, nonblocking. The error says
    /// why, and what to do when the process lacks CAP_NET_ADMIN.
    ///
    /// ```no_run
    /// use axvm_kvm::Tap;
    /// let tap = Tap::open("tap0").expect("needs CAP_NET_ADMIN");
    /// assert_eq!(tap.name(), "tap0");
    /// ```
    pub fn open(name: &str) -> Result<Self, String> {
        let mut request = interface_request(name)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open("/dev/net/tun")
            .map_err(|err| format!("cannot open /dev/net/tun for tap {name}: {err}"))?;
        // SAFETY: TUNSETIFF reads and writes one `ifreq`, which `request` is and which
        // outlives the call.
        let ret = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) };
        if ret < 0 {
            let err = std::io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => format!(
                    "cannot open tap {name}: {err}: it needs CAP_NET_ADMIN (run axvm as root or with that capability, or create the tap first: `ip tuntap add {name} mode tap user $USER`)"
                ),
                Some(libc::EBUSY) => format!(
                    "cannot open tap {name}: {err}: another process holds it, or {name} is an interface of another kind"
                ),
                _ => format!("cannot open tap {name}: {err}"),
            });
        }
        Ok(Self {
            file,
            name: name.into(),
            buffer: Vec::new(),
        })
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The descriptor the device waits on.
    pub fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Reads one frame into `buffer`: its length, or `None` when no frame is waiting. A
    /// frame longer than `buffer` is cut short by the kernel.
    pub fn receive(&mut self, buffer: &mut [u8]) -> std::io::Result<Option<usize>> {
        match self.file.read(buffer) {
            Ok(len) => Ok(Some(len)),
            Err(err) if err.kind() == ErrorKind::WouldBlock => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Reads one frame of at most `longest` bytes (longer ones are cut short), or `None`
    /// when no frame is waiting.
    pub fn receive_frame(&mut self, longest: usize) -> std::io::Result<Option<Vec<u8>>> {
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.resize(longest, 0);
        let received = self.receive(&mut buffer);
        let frame = received.map(|len| len.map(|len| buffer[..len].to_vec()));
        self.buffer = buffer;
        frame
    }

    /// Sends one frame. `Ok(false)` when the interface's queue is full (the frame is lost,
    /// as on a congested wire).
    pub fn send(&mut self, frame: &[u8]) -> std::io::Result<bool> {
        match self.file.write(frame) {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == ErrorKind::WouldBlock => Ok(false),
            Err(err) => Err(err),
        }
    }
}

/// The TUNSETIFF request for tap `name` with `IFF_NO_PI`.
fn interface_request(name: &str) -> Result<libc::ifreq, String> {
    // SAFETY: ifreq is plain data (arrays, integers, a union of those and a pointer);
    // all-zero is a valid value of it.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= request.ifr_name.len() || bytes.contains(&0) {
        return Err(format!(
            "tap interface name \"{name}\" must have 1 to {} bytes and no NUL",
            request.ifr_name.len() - 1
        ));
    }
    for (slot, &byte) in request.ifr_name.iter_mut().zip(bytes) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};

    /// An AF_PACKET socket on interface `name`, brought up: the host's side of the tap.
    fn host_side(name: &str) -> OwnedFd {
        // SAFETY: plain socket and ioctl calls on descriptors and structs owned here.
        unsafe {
            let control = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            assert!(control >= 0, "{}", std::io::Error::last_os_error());
            let control = OwnedFd::from_raw_fd(control);
            let mut request = interface_request(name).unwrap();
            assert_eq!(
                libc::ioctl(control.as_raw_fd(), libc::SIOCGIFINDEX, &mut request),
                0
            );
            let index = request.ifr_ifru.ifru_ifindex;
            request.ifr_ifru.ifru_flags = libc::IFF_UP as libc::c_short;
            let up = libc::ioctl(control.as_raw_fd(), libc::SIOCSIFFLAGS, &mut request);
            assert_eq!(up, 0, "{}", std::io::Error::last_os_error());
            let protocol = (libc::ETH_P_ALL as u16).to_be();
            let packet = libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(protocol),
            );
            assert!(packet >= 0, "{}", std::io::Error::last_os_error());
            let packet = OwnedFd::from_raw_fd(packet);
            let mut address: libc::sockaddr_ll = std::mem::zeroed();
            address.sll_family = libc::AF_PACKET as u16;
            address.sll_protocol = protocol;
            address.sll_ifindex = index;
            let bound = libc::bind(
                packet.as_raw_fd(),
                &address as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(bound, 0, "{}", std::io::Error::last_os_error());
            packet
        }
    }

    /// Waits (10 s at most: a backstop, not a timing) until `fd` is readable.
    fn wait_readable(fd: RawFd) {
        let mut poll = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, owned here.
        let ready = unsafe { libc::poll(&mut poll, 1, 10_000) };
        assert_eq!(ready, 1, "no frame within 10 s");
    }

    fn our_frame(source: u8, text: &str) -> Vec<u8> {
        let mut frame = [
            &[0x52, 0x54, 0, 0, 0, 0x77][..],
            &[0x52, 0x54, 0, 0, 0, source],
            &[0x88, 0xb5],
            text.as_bytes(),
        ]
        .concat();
        frame.resize(60, 0);
        frame
    }

    /// Frames cross the tap both ways; without CAP_NET_ADMIN the error says it is needed.
    #[test]
    fn frames_cross_a_tap_or_the_error_names_cap_net_admin() {
        let name = format!("axvmt{}", std::process::id() % 100_000);
        let mut tap = match Tap::open(&name) {
            Ok(tap) => tap,
            Err(message) => {
                eprintln!("no tap here, so only the error is checked: {message}");
                assert!(message.contains("CAP_NET_ADMIN"), "{message}");
                return;
            }
        };
        let host = host_side(&name);
        // Device to host.
        let sent = our_frame(1, "to the host");
        assert!(tap.send(&sent).unwrap());
        let mut buffer = [0u8; 2048];
        let got = loop {
            wait_readable(host.as_raw_fd());
            // SAFETY: reads into `buffer`, which outlives the call.
            let len = unsafe {
                libc::recv(
                    host.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                    0,
                )
            };
            assert!(len >= 0, "{}", std::io::Error::last_os_error());
            // The kernel may send frames of its own (IPv6 router solicitations).
            if buffer[12..14] == [0x88, 0xb5] {
                break buffer[..len as usize].to_vec();
            }
        };
        assert_eq!(got, sent);
        // Host to device.
        let back = our_frame(2, "to the guest");
        // SAFETY: writes from `back`, which outlives the call.
        let len = unsafe { libc::send(host.as_raw_fd(), back.as_ptr().cast(), back.len(), 0) };
        assert_eq!(len, back.len() as isize);
        let received = loop {
            match tap.receive(&mut buffer).unwrap() {
                Some(len) if buffer[12..14] == [0x88, 0xb5] => break buffer[..len].to_vec(),
                Some(_) => {}
                None => wait_readable(tap.fd()),
            }
        };
        assert_eq!(received, back);
        assert_eq!(tap.receive(&mut buffer).unwrap(), None);
    }

    #[test]
    fn names_too_long_for_the_kernel_are_refused() {
        let err = Tap::open("a-name-of-twenty-chars").unwrap_err();
        assert!(err.contains("1 to 15 bytes"), "{err}");
    }
}
