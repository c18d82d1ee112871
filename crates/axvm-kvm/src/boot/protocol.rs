//! [`BootProtocol`]: one implementation per way axvm starts a kernel, and [`PROTOCOLS`], the
//! table of them in detection order. Each protocol splits its work the same way, so that
//! `axvm check` (which has no VM) and the loader ask the same code:
//!
//! 1. [`detect`](BootProtocol::detect): whether an image is this protocol's, from content;
//! 2. [`layout`](BootProtocol::layout): where the image's bytes go, from the image alone;
//! 3. [`plan`](BootProtocol::plan): that layout checked against a config, and where the
//!    ramdisk goes, with nothing written;
//! 4. [`load`](BootProtocol::load): the plan carried out on a VM, returning how its vCPUs
//!    start.

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr};

use super::low_memory::BootLayout;
use super::placement::{self, RamdiskPlacement};
use super::{bzimage, direct, multiboot, pvh, BootImages, BootPlan, ImageFormat};
use crate::kvm::KvmHal;
use crate::platform::pc::layout::{
    ACPI_END, ACPI_START, BOOT_INFO_END, BOOT_INFO_START, BOOT_TABLES_END, BOOT_TABLES_START,
    GDT_END, GDT_START, MPTABLE_END, MPTABLE_START,
};
use axvm_pc::elf::Segment;

/// The GDT alone, which the 32-bit protocols start with.
pub(crate) const GDT_AREA: (u64, u64, &str) = (GDT_START, GDT_END, "GDT (axvm writes it)");
/// The GDT and the page tables identity-mapping 4 GiB, which the 64-bit starts need.
pub(crate) const BOOT_TABLES_AREA: (u64, u64, &str) = (
    BOOT_TABLES_START,
    BOOT_TABLES_END,
    "GDT and boot page tables (axvm writes them)",
);

/// The boot data area, described as holding `what`.
pub(crate) const fn boot_info_area(what: &'static str) -> (u64, u64, &'static str) {
    (BOOT_INFO_START, BOOT_INFO_END, what)
}

/// Where a kernel image's bytes go and where it starts, as the image says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KernelImage {
    /// The entry the image names (None for raw code, entered at the config's entry).
    pub(crate) entry: Option<u64>,
    /// The ranges the image occupies (file bytes, then zeros).
    pub(crate) segments: Vec<Segment>,
}

/// A kernel checked against a config: where it goes, and where its ramdisk goes when the
/// protocol places it (the direct starts copy theirs to `ramdisk_load_addr` instead).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KernelPlan {
    /// The kernel's place.
    pub(crate) image: KernelImage,
    /// The ramdisk's place, for the protocols that choose it.
    pub(crate) ramdisk: Option<RamdiskPlacement>,
    /// Where the protocol's own data goes, around the images (None for the direct starts,
    /// and until [`super::plan_kernel`] places it).
    pub(crate) layout: Option<BootLayout>,
}

impl KernelPlan {
    /// The layout the loader writes by: the planned one, or the PC layout's fixed places
    /// (for a plan made without one, which only the direct starts are).
    pub(crate) fn layout(&self) -> BootLayout {
        self.layout.unwrap_or(BootLayout {
            tables: BOOT_TABLES_AREA_RANGE,
            boot_info: (BOOT_INFO_START, BOOT_INFO_END),
            acpi: (ACPI_START, ACPI_END),
            mptable: Some((MPTABLE_START, MPTABLE_END)),
            stack: None,
        })
    }
}

/// The GDT and page tables' fixed place.
const BOOT_TABLES_AREA_RANGE: (u64, u64) = (BOOT_TABLES_START, BOOT_TABLES_END);

/// One way of starting a kernel (see the module documentation for the four steps).
pub(crate) trait BootProtocol: Sync {
    /// The image format this protocol loads.
    fn format(&self) -> ImageFormat;

    /// Why an image is taken as this format: the detection rule, for `axvm check`.
    fn detected_by(&self) -> &'static str;

    /// The low memory this protocol writes besides the images (GDT, page tables, its boot
    /// data), as (start, end, what): `axvm check` shows it, the loader writes it.
    fn boot_data(&self) -> Vec<(u64, u64, &'static str)>;

    /// Whether `image` is this protocol's. Asked in [`PROTOCOLS`] order; the first yes wins.
    fn detect(&self, image: &[u8]) -> bool;

    /// Where `kernel`'s bytes go (a raw image at `raw_load_gpa`), parsed but not checked
    /// against a config, so a memory map can show an image the config refuses.
    fn layout(&self, kernel: &[u8], raw_load_gpa: GuestPhysAddr) -> Result<KernelImage, String>;

    /// Refuses a kernel `config` cannot hold, naming the field, and places the ramdisk;
    /// writes nothing.
    fn plan(
        &self,
        config: &AxVMConfig,
        kernel: &[u8],
        ramdisk: Option<&[u8]>,
    ) -> Result<KernelPlan, ConfigError>;

    /// Writes the kernel, the ramdisk and the boot data as `plan` says, and returns how the
    /// vCPUs start. `rsdp` is the ACPI RSDP, for the protocols that pass it to the kernel.
    fn load(
        &self,
        vm: &AxVM<KvmHal>,
        images: &BootImages,
        plan: &KernelPlan,
        rsdp: Option<GuestPhysAddr>,
    ) -> Result<BootPlan, ConfigError>;
}

/// Every protocol, in detection order (README, "Boot protocols"): a Multiboot header wins
/// over ELF, a PVH note over a plain ELF64 image, and raw code takes whatever is left.
pub(crate) static PROTOCOLS: [&dyn BootProtocol; 5] = [
    &multiboot::Multiboot,
    &pvh::Pvh,
    &bzimage::BzImage,
    &direct::Elf64Direct,
    &direct::RawDirect,
];

/// The protocol that loads `image`: the first in [`PROTOCOLS`] to detect it (raw, which
/// detects everything, when no other does).
pub(crate) fn protocol_for(image: &[u8]) -> &'static dyn BootProtocol {
    PROTOCOLS
        .iter()
        .copied()
        .find(|protocol| protocol.detect(image))
        .unwrap_or(&direct::RawDirect)
}

impl KernelImage {
    /// An image whose segments came from an ELF-style parser, with its entry.
    pub(crate) fn new(entry: u64, segments: Vec<Segment>) -> Self {
        Self {
            entry: Some(entry),
            segments,
        }
    }
}

impl KernelPlan {
    /// The plan of a kernel that occupies `segments` and starts at `entry`, its ramdisk (if
    /// any) placed clear of those segments and below `ramdisk_limit`: what the protocols
    /// whose kernels are plain segments (Multiboot, PVH) all do once parsed and checked.
    pub(crate) fn of_segments(
        config: &AxVMConfig,
        entry: u64,
        segments: Vec<Segment>,
        ramdisk: Option<&[u8]>,
        ramdisk_limit: u64,
    ) -> Result<Self, ConfigError> {
        let ramdisk = placement::plan_ramdisk(config, ramdisk, &segments, ramdisk_limit)?;
        Ok(Self {
            image: KernelImage::new(entry, segments),
            ramdisk,
            layout: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_format_once_in_detection_order() {
        let formats: Vec<_> = PROTOCOLS.iter().map(|p| p.format()).collect();
        assert_eq!(
            formats,
            [
                ImageFormat::Multiboot,
                ImageFormat::Pvh,
                ImageFormat::BzImage,
                ImageFormat::Elf64,
                ImageFormat::Raw
            ]
        );
        assert_eq!(protocol_for(b"no header").format(), ImageFormat::Raw);
    }
}
