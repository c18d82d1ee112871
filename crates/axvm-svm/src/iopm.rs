//! The I/O permission map (IOPM): one bit per port, set = intercept (AMD APM vol. 2,
//! "I/O Intercepts").
//!
//! The map is 12 KiB although 64 Ki ports need only 8 KiB: a multi-byte access checks the
//! bit of every port it touches, so a 4-byte access at port 0xffff reads bits past the end,
//! and the APM sizes the map to cover them. The builder keeps those extra bits set, so
//! wrapping accesses are always intercepted.

use alloc::boxed::Box;

/// The size of the IOPM in bytes (three contiguous 4 KiB pages).
pub const IOPM_SIZE: usize = 12 * 1024;

/// An IOPM under construction; the host copies [`as_bytes`](Self::as_bytes) into three
/// physically contiguous pages and puts their address into the VMCB's `iopm_base_pa`.
#[derive(Clone, PartialEq, Eq)]
pub struct IoPermissionMap {
    bits: Box<[u8; IOPM_SIZE]>,
}

impl IoPermissionMap {
    /// A map that intercepts every port: the safe start, since every device is emulated.
    pub fn intercept_all() -> Self {
        Self {
            bits: Box::new([0xff; IOPM_SIZE]),
        }
    }

    /// A map that lets the guest reach every port directly except the bits past port
    /// 0xffff (for pass-through hosts that then intercept chosen ports).
    pub fn pass_through_all() -> Self {
        let mut map = Self::intercept_all();
        map.bits[..0x10000 / 8].fill(0);
        map
    }

    /// Chooses whether accesses to `port` exit to the host.
    pub fn set_intercept(&mut self, port: u16, intercept: bool) {
        let (byte, bit) = (usize::from(port) / 8, port % 8);
        if intercept {
            self.bits[byte] |= 1 << bit;
        } else {
            self.bits[byte] &= !(1 << bit);
        }
    }

    /// Chooses whether the ports `first..first + count` exit to the host (the range stops
    /// at port 0xffff).
    pub fn set_intercept_range(&mut self, first: u16, count: u32, intercept: bool) {
        let last = (u32::from(first) + count).min(0x1_0000);
        for port in u32::from(first)..last {
            // `port` < 0x10000 by the bound above.
            self.set_intercept(port as u16, intercept);
        }
    }

    /// Whether accesses to `port` exit to the host.
    pub fn intercepts(&self, port: u16) -> bool {
        self.bits[usize::from(port) / 8] & (1 << (port % 8)) != 0
    }

    /// The map as the processor reads it.
    pub fn as_bytes(&self) -> &[u8; IOPM_SIZE] {
        &self.bits
    }
}

impl core::fmt::Debug for IoPermissionMap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let intercepted = (0..=u16::MAX).filter(|&port| self.intercepts(port)).count();
        f.debug_struct("IoPermissionMap")
            .field("intercepted_ports", &intercepted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_port_is_one_bit_at_port_div_8_bit_port_mod_8() {
        let mut map = IoPermissionMap::pass_through_all();
        map.set_intercept(0x3f8, true);
        assert_eq!(map.as_bytes()[0x3f8 / 8], 1 << (0x3f8 % 8));
        map.set_intercept(0x61, true);
        assert_eq!(
            map.as_bytes()[0x0c],
            0b10,
            "port 0x61 is bit 1 of byte 0x0c"
        );
        map.set_intercept(0xffff, true);
        assert_eq!(map.as_bytes()[0x1fff], 0x80);
        assert!(map.intercepts(0x3f8) && map.intercepts(0x61) && map.intercepts(0xffff));
        assert!(!map.intercepts(0x3f9) && !map.intercepts(0x60));
        map.set_intercept(0x3f8, false);
        assert!(!map.intercepts(0x3f8));
        assert_eq!(map.as_bytes()[0x3f8 / 8], 0);
    }

    #[test]
    fn intercept_all_sets_every_bit_and_pass_through_keeps_the_tail() {
        let all = IoPermissionMap::intercept_all();
        assert!(all.as_bytes().iter().all(|&b| b == 0xff));
        let open = IoPermissionMap::pass_through_all();
        assert!(open.as_bytes()[..0x2000].iter().all(|&b| b == 0));
        assert!(
            open.as_bytes()[0x2000..].iter().all(|&b| b == 0xff),
            "wrapping accesses exit"
        );
    }

    #[test]
    fn ranges_stop_at_the_last_port() {
        let mut map = IoPermissionMap::intercept_all();
        map.set_intercept_range(0x70, 2, false);
        assert!(!map.intercepts(0x70) && !map.intercepts(0x71));
        assert!(map.intercepts(0x6f) && map.intercepts(0x72));
        map.set_intercept_range(0xfffe, 10, false);
        assert!(!map.intercepts(0xffff));
        assert_eq!(map.as_bytes()[0x2000], 0xff);
    }
}
