//! axvm's direct starts, without a boot protocol: a raw image entered in 16-bit real mode at
//! `entry_point` (the BIOS-style start the ArceOS hypervisor uses on x86), and an ELF64
//! image entered in 64-bit long mode at its ELF entry. Every vCPU starts at boot.

//!
//! The checks and the loading are `axvm_pc::direct`'s, which every axvm host shares; this
//! file fits them into the KVM host's boot protocols.

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr};
use axvm_pc::direct;
use axvm_pc::elf::{self, ElfInfo, Segment};

use super::protocol::{BootProtocol, KernelImage, KernelPlan, BOOT_TABLES_AREA};
use super::{BootImages, BootPlan, ImageFormat};
use crate::kvm::KvmHal;

/// The raw start: anything no other protocol detects is code for `kernel_load_addr`, entered
/// in real mode at the config's entries.
pub(crate) struct RawDirect;

/// The direct 64-bit start of an ELF64 image without a boot protocol.
pub(crate) struct Elf64Direct;

impl BootProtocol for RawDirect {
    fn format(&self) -> ImageFormat {
        ImageFormat::Raw
    }

    fn detected_by(&self) -> &'static str {
        "no header axvm knows: raw code entered in real mode"
    }

    fn boot_data(&self) -> Vec<(u64, u64, &'static str)> {
        Vec::new()
    }

    fn detect(&self, _image: &[u8]) -> bool {
        true
    }

    fn layout(&self, kernel: &[u8], raw_load_gpa: GuestPhysAddr) -> Result<KernelImage, String> {
        let len = kernel.len() as u64;
        let segment = Segment {
            paddr: raw_load_gpa.as_u64(),
            vaddr: raw_load_gpa.as_u64(),
            offset: 0,
            filesz: len,
            memsz: len,
        };
        Ok(KernelImage {
            entry: None,
            segments: vec![segment],
        })
    }

    fn plan(
        &self,
        config: &AxVMConfig,
        kernel: &[u8],
        _ramdisk: Option<&[u8]>,
    ) -> Result<KernelPlan, ConfigError> {
        let load_gpa = config.image_config.kernel_load_gpa;
        config.check_image_fits("kernel.kernel_load_addr", load_gpa, kernel.len() as u64)?;
        Ok(KernelPlan {
            image: self
                .layout(kernel, load_gpa)
                .map_err(|problem| ConfigError::invalid("kernel.kernel_path", problem))?,
            ramdisk: None,
            layout: None,
        })
    }

    /// Copies the image to `kernel_load_addr`; every vCPU starts in real mode at the
    /// config's entries.
    fn load(
        &self,
        vm: &AxVM<KvmHal>,
        images: &BootImages,
        _plan: &KernelPlan,
        _rsdp: Option<GuestPhysAddr>,
    ) -> Result<BootPlan, ConfigError> {
        let boot = direct::load_raw(vm, &images.kernel)?;
        let config = vm.config();
        Ok(BootPlan::direct(
            ImageFormat::Raw,
            boot.mode,
            config.bsp_entry(),
            config.ap_entry(),
        ))
    }
}

impl BootProtocol for Elf64Direct {
    fn format(&self) -> ImageFormat {
        ImageFormat::Elf64
    }

    fn detected_by(&self) -> &'static str {
        "an ELF image without a Multiboot header or PVH note: axvm's direct 64-bit start"
    }

    fn boot_data(&self) -> Vec<(u64, u64, &'static str)> {
        vec![BOOT_TABLES_AREA]
    }

    fn detect(&self, image: &[u8]) -> bool {
        elf::is_elf(image)
    }

    fn layout(&self, kernel: &[u8], _raw_load_gpa: GuestPhysAddr) -> Result<KernelImage, String> {
        let info = elf::parse_elf64(kernel)?;
        Ok(KernelImage::new(info.entry, info.segments))
    }

    fn plan(
        &self,
        config: &AxVMConfig,
        kernel: &[u8],
        _ramdisk: Option<&[u8]>,
    ) -> Result<KernelPlan, ConfigError> {
        let info = direct::plan_elf64(config, kernel)?;
        Ok(KernelPlan {
            image: KernelImage::new(info.entry, info.segments),
            ramdisk: None,
            layout: None,
        })
    }

    /// Loads the segments and the boot tables; every vCPU starts in long mode at the ELF
    /// entry, which [`plan`](Self::plan) checked.
    fn load(
        &self,
        vm: &AxVM<KvmHal>,
        images: &BootImages,
        plan: &KernelPlan,
        _rsdp: Option<GuestPhysAddr>,
    ) -> Result<BootPlan, ConfigError> {
        let info = ElfInfo {
            entry: plan.image.entry.unwrap_or_default(),
            segments: plan.image.segments.clone(),
        };
        let boot = direct::load_elf64(vm, &images.kernel, &info)?;
        let entry = GuestPhysAddr::new(info.entry);
        Ok(BootPlan::direct(
            ImageFormat::Elf64,
            boot.mode,
            entry,
            entry,
        ))
    }
}
