//! Internals that the crate's own integration tests check directly: the firmware-table
//! writers, the e820 map, kernel-image detection and layout, and the vCPU blocking probe.
//! They are not part of the supported API and may change with any release; a VMM built on
//! axvm-kvm needs only the crate root.

#![doc(hidden)]

pub use crate::boot::acpi::write_acpi_tables;
pub use crate::boot::e820::{e820_map, E820Entry, E820Kind};
pub use crate::boot::mptable::write_mp_table;
pub use crate::boot::{
    check_kernel_placement, detect_format, kernel_layout, KernelLayout, BZIMAGE_LOAD_ADDR,
    MULTIBOOT_BOOTLOADER_MAGIC, PVH_START_INFO_MAGIC,
};
pub use crate::kvm::{is_software_nested_kvm, BlockingProbe};
