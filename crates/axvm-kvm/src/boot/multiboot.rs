//! Multiboot (version 1) as one of the KVM host's boot protocols. The protocol itself
//! (header, plan, information structure, entry state) is the platform's
//! (`axvm_pc::multiboot`), shared with every host so a guest finds the same memory under
//! each; this file fits it into [`BootProtocol`]'s four steps.

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr};
use axvm_pc::multiboot::{self, header, Kernel, MultibootPlan, RAMDISK_LIMIT};

use super::protocol::{BootProtocol, KernelImage, KernelPlan};
use super::{boot_cmdline, BootImages, BootPlan, ImageFormat};
use crate::kvm::KvmHal;

/// The Multiboot protocol (see the module documentation).
pub(crate) struct Multiboot;

impl BootProtocol for Multiboot {
    fn format(&self) -> ImageFormat {
        ImageFormat::Multiboot
    }

    fn detected_by(&self) -> &'static str {
        "a Multiboot v1 header in the first 8 KiB"
    }

    fn boot_data(&self) -> Vec<(u64, u64, &'static str)> {
        multiboot::BOOT_DATA.to_vec()
    }

    fn detect(&self, image: &[u8]) -> bool {
        multiboot::detect(image)
    }

    fn layout(&self, kernel: &[u8], _raw_load_gpa: GuestPhysAddr) -> Result<KernelImage, String> {
        let kernel = header::parse(kernel).map_err(|err| err.to_string())?;
        Ok(KernelImage::new(kernel.entry, kernel.segments))
    }

    fn plan(
        &self,
        config: &AxVMConfig,
        kernel: &[u8],
        ramdisk: Option<&[u8]>,
    ) -> Result<KernelPlan, ConfigError> {
        let kernel = header::parse(kernel)?;
        header::check(config, &kernel)?;
        KernelPlan::of_segments(
            config,
            kernel.entry,
            kernel.segments,
            ramdisk,
            RAMDISK_LIMIT,
        )
    }

    /// Loads the kernel and its ramdisk, writes the information structure and the GDT
    /// (`MultibootPlan::load_kernel`): vCPU 0 starts in 32-bit protected mode at the
    /// kernel's entry, the others wait for INIT-SIPI-SIPI.
    fn load(
        &self,
        vm: &AxVM<KvmHal>,
        images: &BootImages,
        plan: &KernelPlan,
        _rsdp: Option<GuestPhysAddr>,
    ) -> Result<BootPlan, ConfigError> {
        let multiboot = MultibootPlan {
            kernel: Kernel {
                entry: plan.image.entry.unwrap_or_default(),
                segments: plan.image.segments.clone(),
            },
            ramdisk: plan.ramdisk,
            layout: plan.layout(),
            cmdline: boot_cmdline(ImageFormat::Multiboot, vm.config(), images).unwrap_or_default(),
        };
        let start = multiboot.load_kernel(vm, &images.kernel, images.ramdisk.as_deref())?;
        Ok(BootPlan {
            format: ImageFormat::Multiboot,
            bsp_entry: start.entry,
            bsp: start.bsp,
            ap_entry: start.entry,
            ap: start.ap,
            info: Some(start.info),
            ramdisk: start.ramdisk,
        })
    }
}
