//! Loading a VM's images and choosing how its vCPUs start, from the kernel image's format,
//! the way `qemu-system-x86_64 -kernel IMAGE -append CMDLINE -initrd RAMDISK` does.
//!
//! First the config: when it loads a BIOS image and `entry_point` lies inside it, vCPU 0
//! starts there in real mode and the kernel is copied as it is, whatever its format: the
//! ArceOS hypervisor's x86 start (`bios.rs`). Otherwise the format is detected from the
//! kernel's content, in this order:
//!
//! 1. a Multiboot v1 header in the first 8 KiB → Multiboot (`multiboot.rs`, on `axvm_pc::multiboot`): 32-bit protected
//!    mode, EAX = 0x2BADB002, EBX = the Multiboot information;
//! 2. an ELF image (ELF64 or ELF32) with a PVH note → PVH (`pvh.rs`): 32-bit protected mode
//!    at the note's entry, EBX = `hvm_start_info`;
//! 3. "HdrS" at 0x202 → a Linux bzImage (`bzimage.rs`): 64-bit long mode at the kernel's
//!    64-bit entry, RSI = the zero page;
//! 4. another ELF64 image → axvm's direct 64-bit start at the ELF entry (`direct.rs`); an
//!    ELF32 image left here is refused, with what would make it bootable;
//! 5. anything else → raw code copied to `kernel_load_addr`, entered in 16-bit real mode at
//!    `entry_point` (`direct.rs`), the BIOS-style start the ArceOS hypervisor uses on x86.
//!
//! The three boot protocols start vCPU 0 and leave the others waiting for INIT-SIPI-SIPI,
//! as a PC's firmware does: real kernels wake their APs themselves. They pass
//! `kernel.cmdline`, the ramdisk (at `ramdisk_load_addr`, or near the top of RAM below
//! 4 GiB) and the memory map (`axvm_pc::e820`), with their data in low memory (`platform::pc::layout`). The
//! direct starts run every vCPU at boot, at the config's (or the ELF's) entry.
//!
//! The BIOS and device tree images, when given, are copied to their load addresses, and so is
//! the ramdisk for the direct starts.

pub(crate) mod bda;
mod bios;
mod bzimage;
mod direct;
mod low_memory;
mod multiboot;
mod placement;
mod protocol;
mod pvh;

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr};
use axvm_pc::load::copy_image;

/// The firmware tables and the memory map are the platform's, shared with every host.
pub use axvm_pc::{acpi, e820, mptable};

pub use low_memory::BootLayout;
pub use placement::RamdiskPlacement;

pub(crate) use bios::start_line;
pub(crate) use protocol::{protocol_for, KernelPlan};

/// The protocol that starts `images` under `config`: the BIOS start when the config loads a
/// BIOS image holding `entry_point` (`bios.rs`), else the one the kernel's content selects.
pub(crate) fn protocol_for_vm(
    config: &AxVMConfig,
    images: &BootImages,
) -> &'static dyn protocol::BootProtocol {
    if bios::bios_holding_entry(config, images).is_some() {
        &bios::BiosStart
    } else {
        protocol_for(&images.kernel)
    }
}

use crate::plan::VmPlan;

/// The command line a boot protocol passes, and Multiboot's first word, are the platform's
/// (`axvm_pc::cmdline`), so every host passes the same.
pub use axvm_pc::cmdline::{kernel_cmdline, DEFAULT_KERNEL_NAME};

use crate::kvm::{CpuMode, KvmHal, StartPolicy, VCpuBoot};

pub use axvm_linux::BootImages;

/// The command line a kernel in `format` gets: for Multiboot, the kernel's name, a space
/// and [`kernel_cmdline`] (empty when there is none), as QEMU's `-kernel PATH -append TEXT`
/// passes `"PATH TEXT"` and GRUB the kernel's path and arguments (kernels skip the first
/// word); for PVH and Linux, [`kernel_cmdline`]; `None` for the direct starts, which pass
/// none.
///
/// ```
/// use axvm::AxVMConfig;
/// use axvm_kvm::{boot_cmdline, BootImages, ImageFormat};
///
/// let mut config = AxVMConfig::new("cmdline", 1);
/// config.cmdline = Some("console=ttyS0".into());
/// let images = BootImages { kernel_name: Some("images/kernel.elf".into()), ..Default::default() };
/// let line = boot_cmdline(ImageFormat::Multiboot, &config, &images);
/// assert_eq!(line.as_deref(), Some("images/kernel.elf console=ttyS0"));
/// config.cmdline = None;
/// let line = boot_cmdline(ImageFormat::Multiboot, &config, &images);
/// assert_eq!(line.as_deref(), Some("images/kernel.elf "), "as QEMU without -append");
/// assert_eq!(boot_cmdline(ImageFormat::Pvh, &config, &images), None);
/// ```
pub fn boot_cmdline(
    format: ImageFormat,
    config: &AxVMConfig,
    images: &BootImages,
) -> Option<String> {
    match format {
        ImageFormat::Multiboot => Some(axvm_pc::cmdline::multiboot_cmdline(
            config,
            images.kernel_name.as_deref(),
        )),
        ImageFormat::Pvh | ImageFormat::BzImage => kernel_cmdline(config),
        ImageFormat::Raw | ImageFormat::Elf64 | ImageFormat::Bios => None,
    }
}

/// The kernel image formats axvm recognises by content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageFormat {
    /// No known header: raw code, entered in real mode.
    Raw,
    /// An x86-64 ELF64 executable without a PVH note, entered in long mode.
    Elf64,
    /// A kernel with a Multiboot v1 header, entered in 32-bit protected mode.
    Multiboot,
    /// An ELF kernel (ELF64 or ELF32) with a PVH entry note, entered in 32-bit protected
    /// mode.
    Pvh,
    /// A Linux bzImage, entered at its 64-bit entry in long mode.
    BzImage,
    /// Not read from the kernel: the config loads a BIOS image that holds `entry_point`, so
    /// vCPU 0 starts in the BIOS in real mode and the kernel is copied as it is to
    /// `kernel_load_addr` (the ArceOS hypervisor's x86 start; the BIOS enters the kernel).
    Bios,
}

impl ImageFormat {
    /// Whether this is one of the PC boot protocols (Multiboot, PVH, Linux), which start only
    /// vCPU 0 and pass the command line, the ramdisk and the memory map.
    pub fn is_boot_protocol(self) -> bool {
        matches!(self, Self::Multiboot | Self::Pvh | Self::BzImage)
    }
}

/// How the loaded VM starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootPlan {
    /// The kernel's format.
    pub format: ImageFormat,
    /// Where vCPU 0 starts.
    pub bsp_entry: GuestPhysAddr,
    /// How vCPU 0 starts.
    pub bsp: VCpuBoot,
    /// Where the other vCPUs start (unused when `ap.start` is `WaitForSipi`: the guest's
    /// SIPI vector decides).
    pub ap_entry: GuestPhysAddr,
    /// How the other vCPUs start.
    pub ap: VCpuBoot,
    /// The boot protocol's information block: the Multiboot information structure, PVH's
    /// `hvm_start_info` or Linux's zero page. None for the direct starts.
    pub info: Option<GuestPhysAddr>,
    /// Where the ramdisk went, for the boot protocols.
    pub ramdisk: Option<RamdiskPlacement>,
}

impl BootPlan {
    /// Every vCPU starting at boot in `mode`, with no boot-protocol registers: axvm's direct
    /// start.
    fn direct(
        format: ImageFormat,
        mode: CpuMode,
        bsp_entry: GuestPhysAddr,
        ap_entry: GuestPhysAddr,
    ) -> Self {
        let boot = VCpuBoot {
            mode,
            ..VCpuBoot::default()
        };
        Self {
            format,
            bsp_entry,
            bsp: boot,
            ap_entry,
            ap: boot,
            info: None,
            ramdisk: None,
        }
    }

    /// vCPU 0 starting at boot as `bsp` says, the others waiting for INIT-SIPI-SIPI: how a
    /// PC hands over to a kernel, which then wakes its APs through the local APIC.
    fn protocol(
        format: ImageFormat,
        entry: GuestPhysAddr,
        bsp: VCpuBoot,
        info: GuestPhysAddr,
        ramdisk: Option<RamdiskPlacement>,
    ) -> Self {
        Self {
            format,
            bsp_entry: entry,
            bsp,
            ap_entry: entry,
            ap: VCpuBoot {
                start: StartPolicy::WaitForSipi,
                ..VCpuBoot::default()
            },
            info: Some(info),
            ramdisk,
        }
    }

    /// The entry and boot state of vCPU `vcpu_id`.
    pub fn vcpu(&self, vcpu_id: usize) -> (GuestPhysAddr, VCpuBoot) {
        if vcpu_id == 0 {
            (self.bsp_entry, self.bsp)
        } else {
            (self.ap_entry, self.ap)
        }
    }
}

/// vCPU 0's state for the 32-bit protocols (Multiboot, PVH): the platform's.
use axvm_pc::vcpu_boot::protected32_boot;

/// Carries out `plan` on `vm`: writes the BIOS Data Area (`bda.rs`, for every PC boot
/// that leaves it room), copies the images, writes the firmware tables (for the boot
/// protocols) and the boot data, and gives every vCPU its boot state (mode and registers;
/// the vCPUs were created at the plan's entries). Refused with the config field named when
/// guest memory cannot take what the plan puts there.
///
/// Kernels started by a boot protocol (Multiboot, PVH, Linux) also get the firmware tables
/// a PC provides, ACPI and MP, so they find their CPUs and interrupt controllers.
pub fn load_planned(
    vm: &AxVM<KvmHal>,
    images: &BootImages,
    plan: &VmPlan,
) -> Result<BootPlan, crate::Error> {
    let config = vm.config();
    let kernel = match &plan.kernel {
        Some(kernel) => kernel,
        None => &plan_kernel(config, images)?,
    };
    let protocol = protocol_for_vm(config, images);
    let format = protocol.format();
    log::debug!("{format:?} kernel: {}", protocol.detected_by());
    let extras = extra_images(config, images, !format.is_boot_protocol())?;
    bda::write_bda(vm, &bda::occupied(protocol, kernel, &extras))?;
    for (field, gpa, image) in extras {
        copy_image(vm, field, gpa, image)?;
    }
    let rsdp = if format.is_boot_protocol() {
        Some(write_firmware_tables(vm, &kernel.layout())?)
    } else {
        None
    };
    let boot = protocol.load(vm, images, kernel, rsdp)?;
    for vcpu_id in 0..vm.vcpu_num() {
        let (_, state) = boot.vcpu(vcpu_id);
        vm.setup_vcpu(vcpu_id, state)?;
    }
    log::info!(
        "VM {}: {:?} kernel, vCPU 0 starts at {} in {:?}",
        config.id,
        boot.format,
        boot.bsp_entry,
        boot.bsp.mode
    );
    Ok(boot)
}

/// Writes the ACPI tables and, when the vCPUs fit in it, the MP table where `layout` puts
/// them; returns the RSDP (PVH's `rsdp_paddr` and Linux's `acpi_rsdp_addr` point at it).
fn write_firmware_tables(
    vm: &AxVM<KvmHal>,
    layout: &BootLayout,
) -> Result<GuestPhysAddr, ConfigError> {
    let rsdp = acpi::write_acpi_tables_at(vm, layout.acpi)?;
    if let Some(area) = layout.mptable {
        mptable::write_mp_table_at(vm, area)?;
    }
    Ok(rsdp)
}

/// The kernel `images` holds, checked against `config` by its protocol, with its ramdisk
/// placed and, for the boot protocols, their data laid out around the images.
pub(crate) fn plan_kernel(
    config: &AxVMConfig,
    images: &BootImages,
) -> Result<KernelPlan, ConfigError> {
    let protocol = protocol_for_vm(config, images);
    let mut kernel = protocol.plan(config, &images.kernel, images.ramdisk.as_deref())?;
    check_cmdline_fits(protocol.format(), config, images)?;
    kernel.layout = low_memory::plan_layout(config, images, protocol.format(), &kernel)?;
    Ok(kernel)
}

/// An image copied as it is: its config field, load address and bytes.
pub(crate) type ExtraImage<'a> = (&'static str, GuestPhysAddr, &'a [u8]);

/// The BIOS and device tree images, and the ramdisk when `with_ramdisk`, each with its
/// field and load address, checked to fit in one RAM region: refused with the field named
/// when an image has no load address or does not fit.
pub(crate) fn extra_images<'a>(
    config: &AxVMConfig,
    images: &'a BootImages,
    with_ramdisk: bool,
) -> Result<Vec<ExtraImage<'a>>, ConfigError> {
    let image_config = config.image_config;
    let ramdisk = if with_ramdisk { &images.ramdisk } else { &None };
    let extras = [
        (
            "kernel.bios_load_addr",
            &images.bios,
            image_config.bios_load_gpa,
        ),
        (
            "kernel.dtb_load_addr",
            &images.dtb,
            image_config.dtb_load_gpa,
        ),
        (
            "kernel.ramdisk_load_addr",
            ramdisk,
            image_config.ramdisk_load_gpa,
        ),
    ];
    let mut placed = Vec::new();
    for (field, image, load_gpa) in extras {
        let Some(image) = image else { continue };
        let gpa = load_gpa
            .ok_or_else(|| ConfigError::invalid(field, "is required when its image is given"))?;
        config.check_image_fits(field, gpa, image.len() as u64)?;
        placed.push((field, gpa, image.as_slice()));
    }
    Ok(placed)
}

/// Refuses a command line that cannot fit in the boot data area, whatever else the boot
/// protocol puts there (the loader refuses the rest, when the protocol's own data leaves
/// too little room).
pub(crate) fn check_cmdline_fits(
    format: ImageFormat,
    config: &AxVMConfig,
    images: &BootImages,
) -> Result<(), ConfigError> {
    match boot_cmdline(format, config, images) {
        Some(line) => axvm_pc::cmdline::check_cmdline_fits(&line),
        None => Ok(()),
    }
}
