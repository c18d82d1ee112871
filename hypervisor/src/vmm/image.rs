//! Which start an image gets here: axvm's direct starts (`axvm_pc::direct`), with the same
//! checks and loading code as on the KVM host. The boot protocols (Multiboot, PVH, Linux)
//! and BIOS images need the firmware tables the KVM host writes, which this host does not
//! have yet: such configs are refused, naming the reason.

use alloc::format;

use axvm::config::toml::AxVMCrateConfig;
use axvm::{AxVM, AxVMConfig, AxVMHal, ConfigError, GuestPhysAddr};
use axvm_pc::direct;
use axvm_pc::elf::{self, ElfInfo};
use axvm_pc::vcpu_boot::VCpuBoot;

/// The image's format and what loading it needs.
pub enum ImagePlan {
    /// An ELF64 image: long mode at its entry.
    Elf64(ElfInfo),
    /// Anything else: raw code at `kernel_load_addr`, real mode at the config's entries.
    Raw,
}

/// Refuses config fields this host does not load yet, naming them.
pub fn refuse_unsupported(file: &AxVMCrateConfig) -> Result<(), ConfigError> {
    let unsupported = [
        ("kernel.bios_path", file.kernel.bios_path.is_some()),
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
    /// The plan for `kernel`, checked against `config` before the VM exists.
    pub fn for_config(config: &AxVMConfig, kernel: &[u8]) -> Result<Self, ConfigError> {
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
        let (boot, bsp_entry, ap_entry) = match self {
            Self::Elf64(info) => {
                let entry = GuestPhysAddr::new(info.entry);
                (direct::load_elf64(vm, kernel, info)?, entry, entry)
            }
            Self::Raw => (
                direct::load_raw(vm, kernel)?,
                config.bsp_entry(),
                config.ap_entry(),
            ),
        };
        for vcpu in 0..vm.vcpu_num() {
            let entry = if vcpu == 0 { bsp_entry } else { ap_entry };
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
