//! Where a boot protocol's own data goes: the platform's (`axvm_pc::low_memory`), shared
//! with every host. What is the KVM host's is which of its formats need what (the GDT alone
//! or with page tables, an entry stack, a command line) and which images it loads.

use axvm::{AxVMConfig, ConfigError};

use super::{boot_cmdline, extra_images, BootImages, ImageFormat, KernelPlan};
pub use axvm_pc::low_memory::BootLayout;
use axvm_pc::low_memory::LayoutInputs;

/// The layout of `format`'s data for `kernel` (with its ramdisk) and the other `images`,
/// or None for the direct starts, which keep the fixed layout. Refused with the colliding
/// image's field when a piece finds no room.
pub(crate) fn plan_layout(
    config: &AxVMConfig,
    images: &BootImages,
    format: ImageFormat,
    kernel: &KernelPlan,
) -> Result<Option<BootLayout>, ConfigError> {
    if !format.is_boot_protocol() {
        return Ok(None);
    }
    let others: Vec<(&'static str, u64, u64)> = extra_images(config, images, false)?
        .into_iter()
        .map(|(field, gpa, bytes)| (field, gpa.as_u64(), bytes.len() as u64))
        .collect();
    let cmdline = boot_cmdline(format, config, images);
    let protocol = format!("{format:?}");
    let inputs = LayoutInputs {
        protocol: &protocol,
        page_tables: format == ImageFormat::BzImage,
        entry_stack: format == ImageFormat::Multiboot,
        cmdline: cmdline.as_deref(),
        kernel: &kernel.image.segments,
        ramdisk: kernel.ramdisk,
        images: &others,
    };
    axvm_pc::low_memory::plan_layout(config, &inputs).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::protocol::KernelImage;

    #[test]
    fn the_direct_starts_keep_their_fixed_places() {
        let plan = KernelPlan {
            image: KernelImage::new(0x10_0000, Vec::new()),
            ramdisk: None,
            layout: None,
        };
        let config = AxVMConfig::new("direct", 1);
        let layout = plan_layout(&config, &BootImages::default(), ImageFormat::Elf64, &plan);
        assert_eq!(layout, Ok(None));
    }
}
