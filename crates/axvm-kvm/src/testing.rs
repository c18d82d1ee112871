//! Internals that the crate's own integration tests check directly: the firmware-table
//! writers, the e820 map, whether KVM is software-nested, and the vCPU blocking probe.
//! They are not part of the supported API and may change with any release; a VMM built on
//! axvm-kvm needs only the crate root.

#![doc(hidden)]

pub use crate::boot::acpi::write_acpi_tables;
pub use crate::boot::e820::{e820_map, E820Entry, E820Kind};
pub use crate::boot::mptable::write_mp_table;
pub use crate::kvm::{is_software_nested_kvm, BlockingProbe};
