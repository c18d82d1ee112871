//! Multiboot (version 1), the protocol of GRUB legacy and of QEMU's `-kernel` for kernels
//! with a Multiboot header, planned and loaded the same by every host, so a guest finds
//! byte-identical memory under each.
//!
//! The header ([`header`]) says where the kernel goes. The kernel is entered in 32-bit
//! protected mode, paging off, with EAX = [`BOOTLOADER_MAGIC`] and EBX = the Multiboot
//! information structure ([`info`]), which axvm writes in the boot data area
//! ([`layout`](crate::layout)) with the memory sizes, the command line, the ramdisk as the
//! one module, the memory map and the boot loader name "axvm". The other vCPUs wait for
//! INIT-SIPI-SIPI, as on a PC. Like PC firmware, the loader also leaves the BIOS Data Area
//! ([`bda`](crate::bda)), the ACPI tables ([`acpi`]) and the MP table
//! ([`mptable`]).
//!
//! The command line is the kernel's name, a space, then `kernel.cmdline`
//! ([`multiboot_cmdline`]): what QEMU passes for `-kernel PATH -append TEXT` and GRUB for
//! `multiboot PATH ARGS`. Kernels skip that first word as the loader's (Xen does, for every
//! loader but GRUB 2), so a command line without it loses its first argument.
//!
//! ESP points at the top of a 4 KiB stack below the boot data (0x7000 while no image is
//! there, [`low_memory`] otherwise): the spec leaves ESP undefined, but QEMU enters with its
//! firmware's stack and the ArceOS hypervisor's BIOS stub with ESP 0x7000, and kernels
//! (NimbOS) push before they set their own.
//!
//! A host plans, then loads, then starts each vCPU as the result says:
//!
//! ```
//! use axvm::AxVMConfig;
//! use axvm_pc::multiboot::{self, MultibootImages};
//! use axvm_pc::vcpu_boot::{CpuMode, StartPolicy};
//!
//! // A Multiboot header with load addresses (flag bit 16): the file goes at 1 MiB and
//! // starts at its byte 0x20.
//! let mut kernel = vec![0u8; 0x100];
//! let flags = 1u32 << 16;
//! let words = [0x1BAD_B002, flags, 0u32.wrapping_sub(0x1BAD_B002).wrapping_sub(flags),
//!              0x10_0000, 0x10_0000, 0, 0, 0x10_0020];
//! for (at, word) in words.iter().enumerate() {
//!     kernel[4 * at..4 * at + 4].copy_from_slice(&word.to_le_bytes());
//! }
//! let config = AxVMConfig::builder("mb").ram(0, 64 << 20).kernel_at(0x10_0000).build()?;
//! let images = MultibootImages::new(&kernel);
//! let plan = multiboot::plan(&config, &images)?;
//! assert_eq!(plan.kernel.entry, 0x10_0020);
//! assert_eq!(plan.cmdline, "kernel ");
//! // Then, with the VM created (`vm: AxVM<H>`) and the host's wall clock:
//! // let start = plan.load(&vm, &images, unix_seconds)?;
//! // for id in 0..vm.vcpu_num() { let (entry, boot) = start.vcpu(id); /* set up vCPU id */ }
//! # Ok::<(), axvm::ConfigError>(())
//! ```

pub mod header;
pub mod info;

use alloc::string::String;
use alloc::vec::Vec;

use axvm::{AxVM, AxVMConfig, AxVMHal, ConfigError, GuestPhysAddr};

use crate::bda::{write_bda, Occupied};
use crate::cmdline::{check_cmdline_fits, multiboot_cmdline};
use crate::elf::Segment;
use crate::layout::{
    BOOT_INFO_END, BOOT_INFO_START, GDT_END, GDT_START, MULTIBOOT_STACK_END, MULTIBOOT_STACK_START,
};
use crate::load::copy_image;
use crate::load::copy_segments;
use crate::low_memory::{self, BootLayout, LayoutInputs};
use crate::placement::{copy_ramdisk, plan_ramdisk, RamdiskPlacement};
use crate::vcpu_boot::{protected32_boot, BootRegs, VCpuBoot, WAIT_FOR_SIPI};
use crate::{acpi, mptable};

pub use header::{detect, Kernel};

/// What EAX holds at entry: tells the kernel a Multiboot loader started it.
pub const BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
/// Module addresses are 32-bit: the ramdisk must end below 4 GiB.
pub const RAMDISK_LIMIT: u64 = u32::MAX as u64;
/// The low memory Multiboot writes at its fixed places besides the images, as (start, end,
/// what): the GDT, the boot data area and the entry stack. `axvm check` shows it, and the
/// BIOS Data Area keeps clear of it.
pub const BOOT_DATA: [(u64, u64, &str); 3] = [
    (GDT_START, GDT_END, "GDT (axvm writes it)"),
    (
        BOOT_INFO_START,
        BOOT_INFO_END,
        "boot data area: command line, module list, memory map, Multiboot info (EBX)",
    ),
    (
        MULTIBOOT_STACK_START,
        MULTIBOOT_STACK_END,
        "Multiboot entry stack (ESP at its end)",
    ),
];

/// An image the host copies as it is (a BIOS, a device tree): its config field, load
/// address and bytes. Multiboot's data keeps clear of it.
pub type OtherImage<'a> = (&'static str, GuestPhysAddr, &'a [u8]);

/// What a host hands the Multiboot loader.
#[derive(Clone, Copy, Debug)]
pub struct MultibootImages<'a> {
    /// The kernel image, with its Multiboot header.
    pub kernel: &'a [u8],
    /// The ramdisk, passed as the one module.
    pub ramdisk: Option<&'a [u8]>,
    /// The kernel's name as the user wrote it (the config's `kernel_path`), the command
    /// line's first word; `None` passes [`DEFAULT_KERNEL_NAME`](crate::cmdline::DEFAULT_KERNEL_NAME).
    pub kernel_name: Option<&'a str>,
    /// Other images the host loads, already checked against the config: kept clear of, and
    /// copied by [`MultibootPlan::load`].
    pub others: &'a [OtherImage<'a>],
}

impl<'a> MultibootImages<'a> {
    /// A kernel alone: no ramdisk, no name, no other images.
    pub fn new(kernel: &'a [u8]) -> Self {
        Self {
            kernel,
            ramdisk: None,
            kernel_name: None,
            others: &[],
        }
    }
}

/// A Multiboot kernel checked against a config, with everything placed and nothing
/// written: [`plan`] makes it, [`load`](Self::load) carries it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultibootPlan {
    /// Where the kernel goes and where it starts.
    pub kernel: Kernel,
    /// Where the ramdisk goes.
    pub ramdisk: Option<RamdiskPlacement>,
    /// Where the GDT, the boot data, the firmware tables and the entry stack go.
    pub layout: BootLayout,
    /// The command line passed (the kernel's name first).
    pub cmdline: String,
}

/// How a loaded Multiboot VM starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MultibootStart {
    /// Where vCPU 0 starts: the kernel's entry.
    pub entry: GuestPhysAddr,
    /// vCPU 0: 32-bit protected mode, EAX = [`BOOTLOADER_MAGIC`], EBX = `info`, ESP at the
    /// entry stack's end.
    pub bsp: VCpuBoot,
    /// Every other vCPU: waiting for INIT-SIPI-SIPI (`StartPolicy::WaitForSipi`).
    pub ap: VCpuBoot,
    /// The Multiboot information structure.
    pub info: GuestPhysAddr,
    /// Where the ramdisk went.
    pub ramdisk: Option<RamdiskPlacement>,
}

impl MultibootStart {
    /// The entry and boot state of vCPU `vcpu_id` (the APs' entry is unused: their SIPI
    /// vector decides).
    pub fn vcpu(&self, vcpu_id: usize) -> (GuestPhysAddr, VCpuBoot) {
        if vcpu_id == 0 {
            (self.entry, self.bsp)
        } else {
            (self.entry, self.ap)
        }
    }
}

/// Plans the Multiboot boot of `images` under `config`: parses the header, checks the
/// kernel against RAM, places the ramdisk (below 4 GiB, clear of the kernel), checks the
/// command line fits, and lays out the boot data and firmware tables around the images.
/// Refused, naming the config field and the fix, when any of it cannot be done.
pub fn plan(
    config: &AxVMConfig,
    images: &MultibootImages<'_>,
) -> Result<MultibootPlan, ConfigError> {
    let kernel = header::parse(images.kernel)?;
    header::check(config, &kernel)?;
    let ramdisk = plan_ramdisk(config, images.ramdisk, &kernel.segments, RAMDISK_LIMIT)?;
    let cmdline = multiboot_cmdline(config, images.kernel_name);
    check_cmdline_fits(&cmdline)?;
    let others: Vec<(&'static str, u64, u64)> = images
        .others
        .iter()
        .map(|&(field, gpa, bytes)| (field, gpa.as_u64(), bytes.len() as u64))
        .collect();
    let layout = low_memory::plan_layout(
        config,
        &LayoutInputs {
            protocol: "Multiboot",
            page_tables: false,
            entry_stack: true,
            cmdline: Some(&cmdline),
            kernel: &kernel.segments,
            ramdisk,
            images: &others,
        },
    )?;
    Ok(MultibootPlan {
        kernel,
        ramdisk,
        layout,
        cmdline,
    })
}

impl MultibootPlan {
    /// Carries out the plan on `vm` as PC firmware and a Multiboot loader would: the BIOS
    /// Data Area (its timer ticks from `unix_time`, the host's wall clock in seconds since
    /// 1970 UTC), the other images, the ACPI and MP tables, then [`load_kernel`]'s part.
    /// The host then starts each vCPU as [`MultibootStart::vcpu`] says.
    ///
    /// [`load_kernel`]: Self::load_kernel
    pub fn load<H: AxVMHal>(
        &self,
        vm: &AxVM<H>,
        images: &MultibootImages<'_>,
        unix_time: u64,
    ) -> Result<MultibootStart, ConfigError> {
        write_bda(vm, &self.occupied(images.others), unix_time)?;
        for &(field, gpa, bytes) in images.others {
            copy_image(vm, field, gpa, bytes)?;
        }
        acpi::write_acpi_tables_at(vm, self.layout.acpi)?;
        if let Some(area) = self.layout.mptable {
            mptable::write_mp_table_at(vm, area)?;
        }
        self.load_kernel(vm, images.kernel, images.ramdisk)
    }

    /// The Multiboot loader's own part, for a host that writes the firmware's itself: copies
    /// the kernel and the ramdisk, writes the information structure and the GDT, and returns
    /// how the vCPUs start.
    pub fn load_kernel<H: AxVMHal>(
        &self,
        vm: &AxVM<H>,
        kernel: &[u8],
        ramdisk: Option<&[u8]>,
    ) -> Result<MultibootStart, ConfigError> {
        copy_segments(vm, kernel, &self.kernel.segments)?;
        copy_ramdisk(vm, ramdisk, self.ramdisk)?;
        let info = info::write_info(vm, &self.cmdline, self.ramdisk, self.layout.boot_info)?;
        let bsp = protected32_boot(
            vm,
            self.layout.tables.0,
            BootRegs {
                rax: u64::from(BOOTLOADER_MAGIC),
                rbx: info.as_u64(),
                rsp: self
                    .layout
                    .stack
                    .map_or(MULTIBOOT_STACK_END, |(_, end)| end),
                ..BootRegs::default()
            },
        )?;
        Ok(MultibootStart {
            entry: GuestPhysAddr::new(self.kernel.entry),
            bsp,
            ap: WAIT_FOR_SIPI,
            info,
            ramdisk: self.ramdisk,
        })
    }

    /// What the boot puts in guest memory besides the BIOS data, which keeps clear of it:
    /// the kernel's segments, the ramdisk, the other images and [`BOOT_DATA`].
    pub fn occupied(&self, others: &[OtherImage<'_>]) -> Vec<Occupied> {
        let segments = self
            .kernel
            .segments
            .iter()
            .map(|s: &Segment| (s.paddr, s.memsz));
        let ramdisk = self.ramdisk.map(|r| (r.gpa.as_u64(), r.size));
        let images = others
            .iter()
            .map(|(_, gpa, bytes)| (gpa.as_u64(), bytes.len() as u64));
        let boot_data = BOOT_DATA
            .iter()
            .map(|&(start, end, _)| (start, end.saturating_sub(start)));
        segments
            .chain(ramdisk)
            .chain(images)
            .chain(boot_data)
            .collect()
    }
}

#[cfg(test)]
mod tests;
