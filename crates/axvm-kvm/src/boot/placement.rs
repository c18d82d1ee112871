//! Where the PC boot protocols put the kernel and the ramdisk, and the checks that come
//! first: the platform's (`axvm_pc::placement` and `axvm_pc::load`), shared with every host,
//! re-exported for the KVM host's protocols.

pub(crate) use axvm_pc::load::{
    check_entry, check_segments, copy_segments, zero_bss, KERNEL_FIELD,
};
#[cfg(test)]
pub(crate) use axvm_pc::placement::place_ramdisk;
pub use axvm_pc::placement::RamdiskPlacement;
pub(crate) use axvm_pc::placement::{copy_ramdisk, plan_ramdisk, FOUR_GIB};
