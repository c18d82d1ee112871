//! Pass-through ranges: page-aligned, sorted and merged before they are mapped.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::config::pass_through_range_problem;
use crate::{ConfigError, GuestPhysAddr, HostPhysAddr, PassThroughDeviceConfig, PAGE_SIZE};

/// A page-aligned range of host-physical memory shown to the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassThroughRange {
    /// Guest-physical start (page-aligned).
    pub gpa: GuestPhysAddr,
    /// Host-physical start (page-aligned).
    pub hpa: HostPhysAddr,
    /// Size in bytes (whole pages).
    pub size: u64,
    /// The names of the devices merged into this range, for messages.
    pub names: String,
}

impl PassThroughRange {
    fn gpa_end(&self) -> u64 {
        self.gpa.as_u64() + self.size
    }

    /// The host-physical address minus the guest-physical one: ranges can merge only when
    /// it is the same, or the merged range would map some page to the wrong place.
    fn delta(&self) -> u64 {
        self.hpa.as_u64().wrapping_sub(self.gpa.as_u64())
    }
}

/// Rounds every device out to whole pages, sorts by guest address and merges ranges that
/// overlap or touch, so each page is mapped once and to the host page the config names.
///
/// Ranges that overlap in the guest but disagree on the host address are refused: no single
/// mapping could satisfy both.
///
/// ```
/// use axvm::{GuestPhysAddr, HostPhysAddr, PassThroughDeviceConfig};
/// use axvm::memory::merge_pass_through;
/// let device = |name: &str, addr: u64, len: u64| PassThroughDeviceConfig {
///     name: name.into(),
///     base_gpa: GuestPhysAddr::new(addr),
///     base_hpa: HostPhysAddr::new(addr),
///     length: len,
///     irq_id: 0,
/// };
/// let merged = merge_pass_through(&[device("b", 0x2000, 0x10), device("a", 0x1800, 0x100)]).unwrap();
/// assert_eq!(merged.len(), 1);
/// assert_eq!((merged[0].gpa.as_u64(), merged[0].size), (0x1000, 0x2000));
/// ```
pub fn merge_pass_through(
    devices: &[PassThroughDeviceConfig],
) -> Result<Vec<PassThroughRange>, ConfigError> {
    let mut ranges = devices
        .iter()
        .enumerate()
        .map(|(index, device)| page_aligned(index, device))
        .collect::<Result<Vec<_>, _>>()?;
    ranges.sort_by_key(|range| range.gpa);
    let mut merged: Vec<PassThroughRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            // Ranges that only touch merge when one mapping serves both; otherwise each
            // keeps its own.
            Some(last)
                if range.gpa.as_u64() < last.gpa_end()
                    || (range.gpa.as_u64() == last.gpa_end() && last.delta() == range.delta()) =>
            {
                if last.delta() != range.delta() {
                    return Err(ConfigError::invalid(
                        "devices.passthrough_devices",
                        format!(
                            "{} and {} overlap at guest {} but map it to different host addresses",
                            last.names, range.names, range.gpa
                        ),
                    ));
                }
                let end = last.gpa_end().max(range.gpa_end());
                last.size = end - last.gpa.as_u64();
                // Appended in place: rebuilding the string each time is quadratic.
                last.names.push_str(", ");
                last.names.push_str(&range.names);
            }
            _ => merged.push(range),
        }
    }
    Ok(merged)
}

fn page_aligned(
    index: usize,
    device: &PassThroughDeviceConfig,
) -> Result<PassThroughRange, ConfigError> {
    let field = || format!("devices.passthrough_devices[{index}] ({})", device.name);
    // Validation refuses these too; refuse them here rather than map a wrapped range.
    let problem = pass_through_range_problem("base_gpa", device.base_gpa.as_u64(), device.length)
        .or_else(|| {
            pass_through_range_problem("base_hpa", device.base_hpa.as_u64(), device.length)
        });
    if let Some(problem) = problem {
        return Err(ConfigError::invalid(field(), problem));
    }
    if (device.base_gpa.as_u64() ^ device.base_hpa.as_u64()) & (PAGE_SIZE - 1) != 0 {
        return Err(ConfigError::invalid(
            field(),
            format!(
                "base_gpa {} and base_hpa {} sit at different offsets within a 4 KiB page, which no page mapping can do",
                device.base_gpa, device.base_hpa
            ),
        ));
    }
    let start = device.base_gpa.as_u64() & !(PAGE_SIZE - 1);
    let offset = device.base_gpa.as_u64() - start;
    // Checked above: neither the end nor its page-rounded value wraps.
    let end = device.base_gpa.as_u64() + device.length;
    let end = (end + (PAGE_SIZE - 1)) & !(PAGE_SIZE - 1);
    Ok(PassThroughRange {
        gpa: GuestPhysAddr::new(start),
        hpa: HostPhysAddr::new(device.base_hpa.as_u64().wrapping_sub(offset)),
        size: end - start,
        names: device.name.clone(),
    })
}
