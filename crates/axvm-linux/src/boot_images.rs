//! [`BootImages`]: what a config's files hold, as both hosts take them.

/// The images of a VM, read by whoever knows where they come from (the `axvm` command reads
/// the files a config names; tests and the demo embed them). Each host reads the kernel's
/// format from its bytes (x86: raw code, ELF64, Multiboot, PVH, bzImage; arm64: Linux
/// `Image`, ELF64, raw), never from a file name.
///
/// ```
/// use axvm_linux::BootImages;
///
/// // From files: `BootImages { kernel: std::fs::read("bzImage")?, .. }`.
/// let images = BootImages {
///     kernel: vec![0xf4], // hlt
///     ramdisk: Some(b"an initramfs".to_vec()),
///     ..Default::default()
/// };
/// assert!(images.bios.is_none() && images.dtb.is_none());
/// ```
#[derive(Clone, Debug, Default)]
pub struct BootImages {
    /// The kernel image (required).
    pub kernel: Vec<u8>,
    /// A BIOS image for `bios_load_addr`.
    pub bios: Option<Vec<u8>>,
    /// A device tree blob for `dtb_load_addr`.
    pub dtb: Option<Vec<u8>>,
    /// A ramdisk: at `ramdisk_load_addr`, or placed by the boot protocol when that is unset.
    pub ramdisk: Option<Vec<u8>>,
    /// The kernel's name as the user wrote it (the config's `kernel_path`): Multiboot
    /// passes it as the command line's first word, as QEMU and GRUB do. `None` (images
    /// made in code) passes the host's default name (`kernel`) there instead.
    pub kernel_name: Option<String>,
}
