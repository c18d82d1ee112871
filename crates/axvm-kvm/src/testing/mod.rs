//! Internals that the crate's own tests and fuzz targets check directly: the firmware-table
//! writers, the e820 map, whether KVM is software-nested, the vCPU blocking probe, and the
//! fuzz harnesses (`fuzz/` at the repository root drives them with cargo-fuzz; the seeded
//! tests drive the same code with a fixed generator). They are not part of the supported
//! API and may change with any release; a VMM built on axvm-kvm needs only the crate root.

#![doc(hidden)]

pub mod devices;
pub mod entropy;
pub mod virtio_driver;
pub mod virtio_fuzz;

pub use crate::boot::acpi::write_acpi_tables;
pub use crate::boot::e820::{e820_map, E820Entry, E820Kind};
pub use crate::boot::mptable::write_mp_table;
pub use crate::kvm::{is_software_nested_kvm, BlockingProbe};
