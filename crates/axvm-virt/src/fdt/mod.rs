//! The device tree an arm64 guest is given when its config names no `dtb_path`: the
//! board's CPUs, RAM, GIC, timer, PSCI, UART and exit device, and `/chosen` with the
//! command line and initrd. The blob is written with the `vm-fdt` crate.
//!
//! ```
//! use axvm_virt::fdt::{generate_fdt, FdtSpec};
//! use axvm_virt::GicVersion;
//!
//! let spec = FdtSpec {
//!     vcpus: 2,
//!     ram: vec![(0x4000_0000, 0x1000_0000)],
//!     gic: GicVersion::V3,
//!     bootargs: Some("console=ttyAMA0".into()),
//!     initrd: None,
//!     psci_1_0: false,
//! };
//! let blob = generate_fdt(&spec).unwrap();
//! assert_eq!(&blob[..4], &[0xd0, 0x0d, 0xfe, 0xed]); // the FDT magic
//! ```

mod nodes;
#[cfg(test)]
mod tests;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use crate::layout::{GICV2_MAX_VCPUS, MAX_VCPUS};
use crate::GicVersion;

/// What the generated tree describes: the parts that differ from VM to VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FdtSpec {
    /// How many vCPUs (one `cpu` node each, `reg` = its MPIDR).
    pub vcpus: usize,
    /// RAM regions as `(base, size)`: one `/memory@BASE` node each.
    pub ram: Vec<(u64, u64)>,
    /// Which GIC the host created.
    pub gic: GicVersion,
    /// The kernel command line (`/chosen/bootargs`), if any.
    pub bootargs: Option<String>,
    /// The initrd's guest-physical `(start, end)`, end exclusive, when one is loaded.
    pub initrd: Option<(u64, u64)>,
    /// Whether the host implements PSCI 1.0 (then `arm,psci-1.0` comes first in `/psci`).
    pub psci_1_0: bool,
}

/// Why no tree could be generated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// The spec asks for something the board cannot describe; the message says what.
    InvalidSpec(String),
    /// The FDT writer refused a node or property (for example a NUL byte in the bootargs).
    Writer(String),
}

impl fmt::Display for FdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSpec(problem) => {
                write!(f, "cannot describe the VM in a device tree: {problem}")
            }
            Self::Writer(problem) => write!(f, "device tree writer: {problem}"),
        }
    }
}

impl core::error::Error for FdtError {}

impl From<vm_fdt::Error> for FdtError {
    fn from(error: vm_fdt::Error) -> Self {
        Self::Writer(error.to_string())
    }
}

/// The phandle of the GIC, every interrupt's parent.
pub const GIC_PHANDLE: u32 = 1;
/// The phandle of the 24 MHz `apb-pclk` clock the PL011 is fed by.
pub const APB_PCLK_PHANDLE: u32 = 2;

/// The device tree blob for `spec`, ready to be copied into guest memory.
pub fn generate_fdt(spec: &FdtSpec) -> Result<Vec<u8>, FdtError> {
    check_spec(spec)?;
    let mut fdt = vm_fdt::FdtWriter::new()?;
    let root = fdt.begin_node("")?;
    fdt.property_u32("#address-cells", 2)?;
    fdt.property_u32("#size-cells", 2)?;
    fdt.property_string("compatible", "linux,dummy-virt")?;
    fdt.property_u32("interrupt-parent", GIC_PHANDLE)?;
    nodes::cpus(&mut fdt, spec.vcpus)?;
    nodes::memory(&mut fdt, &spec.ram)?;
    nodes::gic(&mut fdt, spec.gic, spec.vcpus)?;
    nodes::timer(&mut fdt, spec.gic, spec.vcpus)?;
    nodes::psci(&mut fdt, spec.psci_1_0)?;
    nodes::apb_pclk(&mut fdt)?;
    nodes::pl011(&mut fdt)?;
    nodes::exit_device(&mut fdt)?;
    nodes::chosen(&mut fdt, spec.bootargs.as_deref(), spec.initrd)?;
    fdt.end_node(root)?;
    Ok(fdt.finish()?)
}

/// Refuses specs whose tree would be wrong rather than merely unusual.
fn check_spec(spec: &FdtSpec) -> Result<(), FdtError> {
    let invalid = |problem: String| Err(FdtError::InvalidSpec(problem));
    if spec.vcpus == 0 || spec.vcpus > MAX_VCPUS {
        return invalid(format!(
            "{} vCPUs: the board has 1 to {MAX_VCPUS}",
            spec.vcpus
        ));
    }
    if spec.gic == GicVersion::V2 && spec.vcpus > GICV2_MAX_VCPUS {
        return invalid(format!(
            "{} vCPUs with a GICv2, which addresses at most {GICV2_MAX_VCPUS}: use a GICv3 or fewer vCPUs",
            spec.vcpus
        ));
    }
    if spec.ram.is_empty() {
        return invalid("no RAM: a guest needs at least one memory region".into());
    }
    if let Some(&(base, _)) = spec.ram.iter().find(|(_, size)| *size == 0) {
        return invalid(format!("the RAM region at {base:#x} is empty"));
    }
    if let Some((start, end)) = spec.initrd {
        if end < start {
            return invalid(format!(
                "the initrd ends ({end:#x}) before it starts ({start:#x})"
            ));
        }
    }
    Ok(())
}
