//! Which start an image gets here, by the KVM host's rules and with its code (`axvm_pc`):
//! the ArceOS hypervisor's BIOS start when the config loads a BIOS image holding
//! `entry_point`; else Multiboot when the kernel has a Multiboot header (the BIOS Data Area,
//! e820, ACPI and MP tables, the information structure: byte for byte the KVM host's);
//! else ELF64 in long mode; else raw code in real mode. PVH and Linux kernels need the
//! KVM host's std-only loaders (linux-loader) and are refused, naming why.

use alloc::format;
use alloc::string::String;

use axvm::{AxVM, AxVMConfig, AxVMHal, ConfigError, GuestPhysAddr};
use axvm_pc::direct;
use axvm_pc::elf::{self, ElfInfo};
use axvm_pc::load::{copy_image, KERNEL_FIELD};
use axvm_pc::multiboot::{self, MultibootImages, MultibootPlan};
use axvm_pc::vcpu_boot::VCpuBoot;

use crate::wall_clock;

/// The images a config names, found among the Multiboot modules.
pub struct VmImages {
    /// `kernel_path`, as the config spells it (Multiboot's command line starts with it).
    pub kernel_path: String,
    /// The kernel image.
    pub kernel: &'static [u8],
    /// `bios_path`'s image.
    pub bios: Option<&'static [u8]>,
    /// `ramdisk_path`'s image.
    pub ramdisk: Option<&'static [u8]>,
}

impl VmImages {
    fn multiboot(&self) -> MultibootImages<'_> {
        MultibootImages {
            kernel: self.kernel,
            ramdisk: self.ramdisk,
            kernel_name: Some(&self.kernel_path),
            others: &[],
        }
    }
}

/// The image's start and what loading it needs.
pub enum ImagePlan {
    /// The BIOS start: the BIOS image at `bios_load_addr`, vCPU 0 in real mode at
    /// `entry_point` inside it, the kernel copied as it is.
    Bios,
    /// A Multiboot kernel: vCPU 0 in 32-bit protected mode with the information structure,
    /// the others waiting for INIT-SIPI-SIPI.
    Multiboot(MultibootPlan),
    /// An ELF64 image: long mode at its entry.
    Elf64(ElfInfo),
    /// Anything else: raw code at `kernel_load_addr`, real mode at the config's entries.
    Raw,
}

impl ImagePlan {
    /// The plan for `images`, checked against `config` before the VM exists.
    pub fn for_config(config: &AxVMConfig, images: &VmImages) -> Result<Self, ConfigError> {
        if let Some(bios) = images.bios {
            if direct::bios_holding_entry(config, Some(bios.len() as u64)).is_some() {
                return Ok(Self::Bios);
            }
            return Err(ConfigError::invalid(
                "kernel.entry_point",
                "the BIOS image does not hold entry_point: only the BIOS start (entry_point inside the BIOS at bios_load_addr) loads a BIOS image here",
            ));
        }
        if multiboot::detect(images.kernel) {
            return multiboot::plan(config, &images.multiboot()).map(Self::Multiboot);
        }
        if images.ramdisk.is_some() {
            return Err(ConfigError::invalid(
                "kernel.ramdisk_path",
                "only Multiboot kernels get a ramdisk on the SVM hypervisor (PVH and Linux kernels need the KVM host's loaders): run this VM with `axvm run` on KVM",
            ));
        }
        if !elf::is_elf(images.kernel) {
            return Ok(Self::Raw);
        }
        if elf::pvh_entry(images.kernel).ok().flatten().is_some() {
            return Err(ConfigError::invalid(
                KERNEL_FIELD,
                "a PVH kernel: the SVM hypervisor has no PVH loader (it needs linux-loader, std-only); run it with `axvm run` on KVM",
            ));
        }
        direct::plan_elf64(config, images.kernel).map(Self::Elf64)
    }

    /// The start's name, for messages.
    pub fn format(&self) -> &'static str {
        match self {
            Self::Bios => "BIOS start (real mode in the BIOS image)",
            Self::Multiboot(_) => "Multiboot",
            Self::Elf64(_) => "ELF64 (64-bit direct start)",
            Self::Raw => "raw (real-mode start)",
        }
    }

    /// Loads the images and sets up every vCPU.
    pub fn load<H>(&self, vm: &AxVM<H>, images: &VmImages) -> Result<(), ConfigError>
    where
        H: AxVMHal,
        H::VCpu: axvm::AxArchVCpu<SetupConfig = VCpuBoot>,
    {
        let config = vm.config();
        let starts = match self {
            Self::Bios => {
                let at = config.image_config.bios_load_gpa.unwrap_or_default();
                copy_image(
                    vm,
                    "kernel.bios_load_addr",
                    at,
                    images.bios.unwrap_or_default(),
                )?;
                direct::load_raw(vm, images.kernel)?;
                let (bsp, aps) = direct::bios_start_boot();
                Starts::new(config.bsp_entry(), bsp, config.bsp_entry(), aps)
            }
            Self::Multiboot(plan) => {
                let start = plan.load(vm, &images.multiboot(), wall_clock::unix_seconds())?;
                Starts::new(start.entry, start.bsp, start.entry, start.ap)
            }
            Self::Elf64(info) => {
                let entry = GuestPhysAddr::new(info.entry);
                let boot = direct::load_elf64(vm, images.kernel, info)?;
                Starts::new(entry, boot, entry, boot)
            }
            Self::Raw => {
                let boot = direct::load_raw(vm, images.kernel)?;
                Starts::new(config.bsp_entry(), boot, config.ap_entry(), boot)
            }
        };
        for vcpu in 0..vm.vcpu_num() {
            let (entry, boot) = starts.of(vcpu);
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

/// Where and how vCPU 0 and the others start.
struct Starts {
    bsp: (GuestPhysAddr, VCpuBoot),
    aps: (GuestPhysAddr, VCpuBoot),
}

impl Starts {
    fn new(
        bsp_entry: GuestPhysAddr,
        bsp: VCpuBoot,
        ap_entry: GuestPhysAddr,
        aps: VCpuBoot,
    ) -> Self {
        Self {
            bsp: (bsp_entry, bsp),
            aps: (ap_entry, aps),
        }
    }

    fn of(&self, vcpu: usize) -> (GuestPhysAddr, VCpuBoot) {
        if vcpu == 0 {
            self.bsp
        } else {
            self.aps
        }
    }
}
