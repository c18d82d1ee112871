//! Which pass-through rows a host of this board can honour without host-physical memory.
//!
//! ArceOS hypervisor configs for QEMU's `-M virt` pass the board's own devices through
//! (`["intc@8000000", 0x800_0000, 0x800_0000, ...]`, `["pl011@9000000", ...]`), meaning
//! "give the guest its interrupt controller and its UART". This board has both at the same
//! addresses (the GIC from the host's in-kernel vGIC, the PL011 emulated), so such rows are
//! served as they are; any other row needs host-physical memory, which a hosted VMM cannot
//! map, and is refused with the reason and the fix.

use alloc::format;
use alloc::string::String;

use crate::layout::{GIC_DIST_BASE, PL011_BASE, PL011_SIZE};

/// A board device a pass-through row may name, and what serves it.
struct ServedRange {
    start: u64,
    end: u64,
    /// "device (served by)", as `axvm check` prints it.
    label: &'static str,
}

/// The board's devices a pass-through may name: the GIC's window (distributor, GICv2 CPU
/// interface, redistributors: everything up to the UART), and the PL011's page.
const SERVED: [ServedRange; 2] = [
    ServedRange {
        start: GIC_DIST_BASE,
        end: PL011_BASE,
        label: "GIC (the host's in-kernel vGIC)",
    },
    ServedRange {
        start: PL011_BASE,
        end: PL011_BASE + PL011_SIZE,
        label: "PL011 UART (emulated)",
    },
];

/// `Ok(what serves it)` ("PL011 UART (emulated)") when `size` bytes of host-physical `hpa` at guest `gpa` are one of
/// the board's own devices at their own address; otherwise why not, with the fix.
///
/// ```
/// use axvm_virt::pass_through::pass_through_plan;
/// assert_eq!(pass_through_plan(0x900_0000, 0x900_0000, 0x1000).unwrap(), "PL011 UART (emulated)");
/// assert!(pass_through_plan(0x901_0000, 0x901_0000, 0x1000).is_err());
/// ```
pub fn pass_through_plan(gpa: u64, hpa: u64, size: u64) -> Result<String, String> {
    let end = gpa.saturating_add(size);
    // The served ranges are adjacent, so a row inside their union is served; the core
    // merges adjacent rows (a GIC row and a UART row become one range).
    let union = SERVED[0].start..SERVED[SERVED.len() - 1].end;
    if gpa == hpa && size > 0 && gpa >= union.start && end <= union.end {
        let labels: alloc::vec::Vec<&str> = SERVED
            .iter()
            .filter(|range| range.start < end && gpa < range.end)
            .map(|range| range.label)
            .collect();
        return Ok(labels.join(" and "));
    }
    Err(format!(
        "host-physical {hpa:#x}..{:#x} at guest {gpa:#x}: a hosted VMM cannot map host-physical memory into a guest; the board serves only its own GIC (0x800_0000..0x900_0000) and PL011 (0x900_0000) at their addresses, so remove the row (or emulate the device)",
        hpa.saturating_add(size)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gic_window_is_served_by_the_vgic() {
        assert_eq!(
            pass_through_plan(0x800_0000, 0x800_0000, 0x5_0000).unwrap(),
            "GIC (the host's in-kernel vGIC)"
        );
        assert_eq!(
            pass_through_plan(0x80a_0000, 0x80a_0000, 0x4_0000).unwrap(),
            "GIC (the host's in-kernel vGIC)"
        );
        // A GIC row and the UART's, merged by the core into one range.
        assert_eq!(
            pass_through_plan(0x800_0000, 0x800_0000, 0x100_1000).unwrap(),
            "GIC (the host's in-kernel vGIC) and PL011 UART (emulated)"
        );
    }

    #[test]
    fn a_range_elsewhere_or_moved_or_crossing_devices_is_refused() {
        // The PL031 RTC: not on this board.
        let err = pass_through_plan(0x901_0000, 0x901_0000, 0x1000).unwrap_err();
        assert!(err.contains("remove the row"), "{err}");
        // The UART at another guest address.
        assert!(pass_through_plan(0x900_0000, 0x1c09_0000, 0x1000).is_err());
        // From the UART past its page.
        assert!(pass_through_plan(0x900_0000, 0x900_0000, 0x2000).is_err());
        assert!(pass_through_plan(0x900_0000, 0x900_0000, 0).is_err());
    }
}
