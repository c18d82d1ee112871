//! Writes the BIOS Data Area and the EBDA's first KiB (`axvm_pc::bda`) into a VM's RAM
//! before its kernel starts, as PC firmware would have. The contents and the writer are the
//! platform's, shared with every host; what is the KVM host's is the list of what its boot
//! protocols load (the BDA keeps clear of it) and its clock.

use axvm::{AxVM, ConfigError};

use super::protocol::{BootProtocol, KernelPlan};
use super::ExtraImage;
use crate::devices::host_clock::host_unix_time;
use crate::kvm::KvmHal;
pub(crate) use axvm_pc::bda::Occupied;

/// What a boot puts in guest memory besides the BIOS data: the kernel's segments, its
/// ramdisk, the extra images and the protocol's own boot data.
pub(crate) fn occupied(
    protocol: &dyn BootProtocol,
    kernel: &KernelPlan,
    extras: &[ExtraImage<'_>],
) -> Vec<Occupied> {
    let segments = kernel.image.segments.iter().map(|s| (s.paddr, s.memsz));
    let ramdisk = kernel.ramdisk.map(|r| (r.gpa.as_u64(), r.size));
    let images = extras
        .iter()
        .map(|(_, gpa, bytes)| (gpa.as_u64(), bytes.len() as u64));
    let boot_data = protocol
        .boot_data()
        .into_iter()
        .map(|(start, end, _)| (start, end.saturating_sub(start)));
    segments
        .chain(ramdisk)
        .chain(images)
        .chain(boot_data)
        .collect()
}

/// Writes the BDA and the EBDA clear of `occupied`, with the host clock's tick count.
pub(crate) fn write_bda(vm: &AxVM<KvmHal>, occupied: &[Occupied]) -> Result<(), ConfigError> {
    axvm_pc::bda::write_bda(vm, occupied, host_unix_time())
}
