//! The summary of accesses no device claims, printed when a VM stops.
//!
//! The core logs only the first access to each address (with the guest instruction); a
//! guest polling a missing device makes thousands more, and how many is what tells a probe
//! from a driver stuck on the wrong address.

use std::fmt::Write;

use axvm::device::AxVmDevices;

/// At most this many addresses are listed; the rest are summed in one line.
const MAX_LINES: usize = 16;

/// One line per unclaimed (address, width, direction), most frequent first, e.g.
/// `unclaimed: 12034 x 1-byte read at port 0x3e5 (nearest device: serial at port
/// 0x3f8-0x3ff)`; `None` when the guest touched nothing unclaimed.
pub(crate) fn unclaimed_summary(devices: &AxVmDevices) -> Option<String> {
    let (accesses, overflow) = devices.unclaimed_accesses();
    if accesses.is_empty() && overflow == 0 {
        return None;
    }
    let mut out = String::new();
    for access in accesses.iter().take(MAX_LINES) {
        let nearest = devices
            .nearest_device(access.space, access.addr)
            .map(|(range, device)| {
                format!(
                    " (nearest device: {} at {} {:#x}-{:#x})",
                    device.name(),
                    range.space,
                    range.base,
                    range.end() - 1
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "unclaimed: {} x {} {} at {} {:#x}{nearest}",
            access.count,
            access.width,
            if access.write { "write" } else { "read" },
            access.space,
            access.addr,
        );
    }
    let rest: u64 = accesses
        .iter()
        .skip(MAX_LINES)
        .map(|a| a.count)
        .sum::<u64>()
        + overflow;
    if rest > 0 {
        let _ = writeln!(out, "unclaimed: {rest} more accesses to other addresses");
    }
    Some(out)
}
