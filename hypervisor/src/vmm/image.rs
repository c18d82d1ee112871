//! Which start an image gets here: axvm's direct starts (`axvm_pc::direct`), with the same
//! rules, checks and loading code as on the KVM host: the ArceOS hypervisor's BIOS start
//! when the config loads a BIOS image holding `entry_point`, else ELF64 in long mode, else
//! raw code in real mode. The boot protocols (Multiboot, PVH, Linux) need the firmware
//! tables the KVM host writes, which this host does not have yet: such images are refused,
//! naming the reason.

use alloc::format;

use axvm::config::toml::AxVMCrateConfig;
use axvm::{AxVM, AxVMConfig, AxVMHal, ConfigError, GuestPhysAddr};
use axvm_pc::direct;
use axvm_pc::elf::{self, ElfInfo};
use axvm_pc::load::copy_image;
use axvm_pc::vcpu_boot::VCpuBoot;

/// The image's format and what loading it needs.
pub enum ImagePlan {
    /// The BIOS start: the BIOS image (`bios_path`) at `bios_load_addr`, vCPU 0 in real mode
    /// at `entry_point` inside it, the kernel copied as it is.
    Bios(&'static [u8]),
    /// An ELF64 image: long mode at its entry.
    Elf64(ElfInfo),
    /// Anything else: raw code at `kernel_load_addr`, real mode at the config's entries.
    Raw,
}

/// Refuses config fields this host does not load yet, naming them.
pub fn refuse_unsupported(file: &AxVMCrateConfig) -> Result<(), ConfigError> {
    let unsupported = [
        ("kernel.ramdisk_path", file.kernel.ramdisk_path.is_some()),
        ("kernel.dtb_path", file.kernel.dtb_path.is_some()),
    ];
    match unsupported.iter().find(|(_, given)| *given) {
        Some((field, _)) => Err(ConfigError::invalid(
            *field,
            "the SVM hypervisor loads only the kernel image so far (axvm's direct ELF64 and raw starts); run this VM with `axvm run` on KVM",
        )),
        None => Ok(()),
    }
}

impl ImagePlan {
    /// The plan for `kernel` (and the config's BIOS image, `bios`), checked against
    /// `config` before the VM exists.
    pub fn for_config(
        config: &AxVMConfig,
        kernel: &[u8],
        bios: Option<&'static [u8]>,
    ) -> Result<Self, ConfigError> {
        if let Some(bios) = bios {
            if direct::bios_holding_entry(config, Some(bios.len() as u64)).is_some() {
                return Ok(Self::Bios(bios));
            }
            return Err(ConfigError::invalid(
                "kernel.entry_point",
                "the BIOS image does not hold entry_point: only the BIOS start (entry_point inside the BIOS at bios_load_addr) loads a BIOS image here",
            ));
        }
        if !elf::is_elf(kernel) {
            return Ok(Self::Raw);
        }
        let info = direct::plan_elf64(config, kernel)?;
        if elf::pvh_entry(kernel).ok().flatten().is_some() {
            return Err(ConfigError::invalid(
                axvm_pc::load::KERNEL_FIELD,
                "a PVH kernel: the SVM hypervisor has no PVH loader yet (no start info, memory map or ACPI tables); run it with `axvm run` on KVM",
            ));
        }
        Ok(Self::Elf64(info))
    }

    /// "ELF64" or "raw", for messages.
    pub fn format(&self) -> &'static str {
        match self {
            Self::Bios(_) => "BIOS start (real mode in the BIOS image)",
            Self::Elf64(_) => "ELF64 (64-bit direct start)",
            Self::Raw => "raw (real-mode start)",
        }
    }

    /// Loads the image and sets up every vCPU: the BSP at the image's or config's entry,
    /// the APs at the AP entry (ELF64: the same entry, as on KVM).
    pub fn load<H>(&self, vm: &AxVM<H>, kernel: &[u8]) -> Result<(), ConfigError>
    where
        H: AxVMHal,
        H::VCpu: axvm::AxArchVCpu<SetupConfig = VCpuBoot>,
    {
        let config = vm.config();
        let (bsp_boot, ap_boot, bsp_entry, ap_entry) = match self {
            Self::Bios(bios) => {
                let at = config.image_config.bios_load_gpa.unwrap_or_default();
                copy_image(vm, "kernel.bios_load_addr", at, bios)?;
                direct::load_raw(vm, kernel)?;
                let (bsp, aps) = direct::bios_start_boot();
                (bsp, aps, config.bsp_entry(), config.bsp_entry())
            }
            Self::Elf64(info) => {
                let entry = GuestPhysAddr::new(info.entry);
                let boot = direct::load_elf64(vm, kernel, info)?;
                (boot, boot, entry, entry)
            }
            Self::Raw => {
                let boot = direct::load_raw(vm, kernel)?;
                (boot, boot, config.bsp_entry(), config.ap_entry())
            }
        };
        for vcpu in 0..vm.vcpu_num() {
            let (entry, boot) = if vcpu == 0 {
                (bsp_entry, bsp_boot)
            } else {
                (ap_entry, ap_boot)
            };
            let failed = |err: axvm::AxVMError| {
                ConfigError::invalid(
                    "base.cpu_num",
                    format!("vCPU {vcpu} cannot be set up: {err}"),
                )
            };
            vm.set_vcpu_entry(vcpu, entry).map_err(failed)?;
            vm.setup_vcpu(vcpu, boot).map_err(failed)?;
        }
        Ok(())
    }
}
