//! The summary of accesses no device claims, printed when a VM stops.
//!
//! The core logs each run of them only at debug level; a guest polling a missing device
//! makes thousands of accesses, and how many is what tells a probe from a driver stuck on
//! the wrong address. Accesses of one kind to adjacent addresses (a copy into a hole) are
//! one run, so they take one line, with their range.

use std::fmt::Write;

use axvm::device::AxVmDevices;

/// At most this many runs are listed; the rest are summed in one line.
const MAX_LINES: usize = 16;

/// One line per unclaimed run (space, width, direction, adjacent addresses), most accesses
/// first, e.g. `unclaimed: 12034 x 1-byte read at port 0x3e5 (nearest device: serial at
/// port 0x3f8-0x3ff)` or `unclaimed: 1024 x 1-byte write at MMIO 0xa0000-0xa03ff`; `None`
/// when the guest touched nothing unclaimed.
pub fn unclaimed_summary(devices: &AxVmDevices) -> Option<String> {
    let (runs, overflow) = devices.unclaimed_accesses();
    if runs.is_empty() && overflow == 0 {
        return None;
    }
    let mut out = String::new();
    for run in runs.iter().take(MAX_LINES) {
        let nearest = devices
            .nearest_device(run.space, run.first)
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
        let _ = writeln!(out, "unclaimed: {run}{nearest}");
    }
    let rest: u64 = runs
        .iter()
        .skip(MAX_LINES)
        .map(|run| run.count)
        .sum::<u64>()
        + overflow;
    if rest > 0 {
        let _ = writeln!(out, "unclaimed: {rest} more accesses to other addresses");
    }
    Some(out)
}
