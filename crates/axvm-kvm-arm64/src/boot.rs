//! Loading a VM's images into guest memory, by `axvm-virt`'s plan, and the device tree the
//! guest finds at x0: the config's `dtb_path`, or one generated from the config.

use axvm::memory::GuestMemory;
use axvm::{AxVMConfig, GuestPhysAddr};
use axvm_linux::BootImages;
use axvm_virt::fdt::{generate_fdt, FdtSpec};
use axvm_virt::image::{plan, LoadPlan};
use axvm_virt::GicVersion;

use crate::error::Arm64Error;

pub use axvm_virt::image::ArmImageFormat as ImageFormat;

/// Room planned for a generated device tree; a generated tree for the largest VM axvm makes
/// (123 vCPUs, many RAM regions) stays far below it.
const GENERATED_FDT_ROOM: usize = 64 << 10;

/// Where axvm put a VM's images: what `axvm check` prints and the vCPUs start with.
///
/// ```
/// use axvm_kvm_arm64::{BootLayout, ImageFormat};
/// let layout = BootLayout {
///     format: ImageFormat::Raw,
///     entry: 0x4008_0000,
///     dtb: 0x4780_0000,
///     dtb_generated: true,
///     initrd: None,
/// };
/// assert!(layout.dtb_generated);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootLayout {
    /// How the kernel was recognized.
    pub format: ImageFormat,
    /// Where vCPU 0 starts.
    pub entry: u64,
    /// The device tree's guest-physical address (x0 at entry).
    pub dtb: u64,
    /// Whether axvm generated the device tree (no `dtb_path`).
    pub dtb_generated: bool,
    /// The initrd's guest-physical start and end.
    pub initrd: Option<(u64, u64)>,
}

/// Where `images` go under `config`, without touching memory: the same answer for
/// `axvm check` and for a run.
pub fn plan_images(config: &AxVMConfig, images: &BootImages) -> Result<LoadPlan, Arm64Error> {
    if images.bios.is_some() {
        return Err(Arm64Error::Boot(
            "kernel.bios_path: arm64 VMs start at the kernel (the Linux arm64 boot protocol), there is no BIOS start; remove bios_path and bios_load_addr".to_string(),
        ));
    }
    let room = images.dtb.as_ref().map_or(GENERATED_FDT_ROOM, Vec::len);
    let initrd_len = images.ramdisk.as_ref().map(Vec::len);
    plan(config, &images.kernel, initrd_len, room).map_err(Arm64Error::Boot)
}

/// The device tree the guest gets: the config's own (`dtb_path`), or one generated from the
/// config for a guest with `gic`.
pub fn device_tree(
    config: &AxVMConfig,
    images: &BootImages,
    load: &LoadPlan,
    gic: GicVersion,
) -> Result<Vec<u8>, Arm64Error> {
    if let Some(given) = &images.dtb {
        check_fdt_magic(given)?;
        return Ok(given.clone());
    }
    let spec = FdtSpec {
        vcpus: config.cpu_num,
        ram: config
            .memory_regions()
            .iter()
            .map(|region| (region.gpa.as_u64(), region.size))
            .collect(),
        gic,
        bootargs: config.cmdline.clone(),
        initrd: load.initrd,
        psci_1_0: false,
    };
    let blob = generate_fdt(&spec)
        .map_err(|err| Arm64Error::Boot(format!("cannot generate the device tree: {err}")))?;
    if blob.len() > GENERATED_FDT_ROOM {
        return Err(Arm64Error::Boot(format!(
            "the generated device tree has {} bytes, more than the {GENERATED_FDT_ROOM} planned for it",
            blob.len()
        )));
    }
    Ok(blob)
}

/// A flattened device tree starts with the magic 0xd00dfeed (big-endian): a file without it
/// is no device tree, whatever the guest would make of it.
fn check_fdt_magic(blob: &[u8]) -> Result<(), Arm64Error> {
    const FDT_MAGIC: [u8; 4] = [0xd0, 0x0d, 0xfe, 0xed];
    match blob.get(..4) {
        Some(magic) if magic == FDT_MAGIC => Ok(()),
        first => Err(Arm64Error::Boot(format!(
            "config field `kernel.dtb_path`: the file is not a flattened device tree (it starts with {:02x?}, not the magic d0 0d fe ed); give a .dtb (dtc -O dtb), or remove dtb_path to have axvm generate one",
            first.unwrap_or(blob)
        ))),
    }
}

/// Copies the kernel's segments, the initrd and the device tree into guest memory.
pub(crate) fn load(
    memory: &GuestMemory,
    images: &BootImages,
    load: &LoadPlan,
    dtb: &[u8],
) -> Result<(), Arm64Error> {
    for segment in &load.segments {
        let bytes = images.kernel.get(segment.1.clone()).ok_or_else(|| {
            Arm64Error::Boot(format!(
                "the kernel image has no bytes {:#x}..{:#x} for its segment at {:#x}",
                segment.1.start, segment.1.end, segment.0
            ))
        })?;
        write(memory, segment.0, bytes, "kernel")?;
        let zeros = usize::try_from(segment.2)
            .unwrap_or(usize::MAX)
            .saturating_sub(bytes.len());
        if zeros > 0 {
            let at = segment.0 + bytes.len() as u64;
            write(memory, at, &vec![0u8; zeros], "kernel (zero-filled part)")?;
        }
    }
    if let (Some((start, _)), Some(initrd)) = (load.initrd, &images.ramdisk) {
        write(memory, start, initrd, "initrd")?;
    }
    write(memory, load.dtb_gpa, dtb, "device tree")
}

fn write(memory: &GuestMemory, gpa: u64, bytes: &[u8], what: &str) -> Result<(), Arm64Error> {
    memory
        .write(GuestPhysAddr::new(gpa), bytes)
        .map_err(|err| Arm64Error::Boot(format!("cannot load the {what} at {gpa:#x}: {err}")))
}

/// The layout a plan gives, for messages.
pub fn layout_of(load: &LoadPlan, dtb_generated: bool) -> BootLayout {
    BootLayout {
        format: load.format,
        entry: load.entry,
        dtb: load.dtb_gpa,
        dtb_generated,
        initrd: load.initrd,
    }
}
