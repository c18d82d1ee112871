//! The ArceOS hypervisor's (axvisor's) x86 start: a config that loads a BIOS image
//! (`bios_path` at `bios_load_addr`) with `entry_point` inside it starts vCPU 0 there, in
//! 16-bit real mode, and leaves the kernel to the BIOS.
//!
//! axvisor's x86 guests are started this way: its x86 vCPU resets to real mode with CS
//! selector and base 0 and IP = `entry_point` (0x8000, where the 110-byte axvm-bios-x86
//! stub is loaded); the stub enters 32-bit protected mode and jumps to the kernel at
//! 0x200000 with EAX = 0x2BADB002, EBX = 0 and ESP = 0x7000. The kernel (NimbOS, ArceOS) has
//! a Multiboot header, but it is the stub's convention the kernel expects, not a Multiboot
//! loader's: so the kernel is copied as it is to `kernel_load_addr`, whatever its format,
//! and axvm writes no boot-protocol data. Only vCPU 0 starts; the others wait for
//! INIT-SIPI-SIPI, as axvisor starts only the primary vCPU and a PC's firmware only the BSP.
//!
//! Format detection (`protocol.rs`) decides only when this rule does not apply: no BIOS
//! image, or an entry point outside it (the BIOS is then just copied).

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr};

use axvm_pc::direct;

use super::direct::RawDirect;
use super::protocol::{BootProtocol, KernelImage, KernelPlan};
use super::{BootImages, BootPlan, ImageFormat};
use crate::kvm::KvmHal;

/// The BIOS start (see the module documentation).
pub(crate) struct BiosStart;

/// The BIOS image's range `[start, end)` when `config` starts in it: a BIOS image is given,
/// with a load address, and `entry_point` lies inside it. None otherwise.
pub(crate) fn bios_holding_entry(config: &AxVMConfig, images: &BootImages) -> Option<(u64, u64)> {
    let bios_len = images.bios.as_ref().map(|bios| bios.len() as u64);
    direct::bios_holding_entry(config, bios_len)
}

impl BootProtocol for BiosStart {
    fn format(&self) -> ImageFormat {
        ImageFormat::Bios
    }

    fn detected_by(&self) -> &'static str {
        "the config loads a BIOS image and entry_point lies inside it: vCPU 0 starts in the BIOS in real mode, as the ArceOS hypervisor starts x86 guests, and the kernel is copied as it is"
    }

    fn boot_data(&self) -> Vec<(u64, u64, &'static str)> {
        Vec::new()
    }

    /// Never from the kernel's content: the config decides ([`bios_holding_entry`]).
    fn detect(&self, _image: &[u8]) -> bool {
        false
    }

    fn layout(&self, kernel: &[u8], raw_load_gpa: GuestPhysAddr) -> Result<KernelImage, String> {
        RawDirect.layout(kernel, raw_load_gpa)
    }

    fn plan(
        &self,
        config: &AxVMConfig,
        kernel: &[u8],
        ramdisk: Option<&[u8]>,
    ) -> Result<KernelPlan, ConfigError> {
        RawDirect.plan(config, kernel, ramdisk)
    }

    /// Copies the kernel to `kernel_load_addr` (the BIOS was copied with the other extra
    /// images); vCPU 0 starts in real mode at `entry_point`, the others wait for a SIPI.
    fn load(
        &self,
        vm: &AxVM<KvmHal>,
        images: &BootImages,
        _plan: &KernelPlan,
        _rsdp: Option<GuestPhysAddr>,
    ) -> Result<BootPlan, ConfigError> {
        direct::load_raw(vm, &images.kernel)?;
        let entry = vm.config().bsp_entry();
        let (bsp, ap) = direct::bios_start_boot();
        Ok(BootPlan {
            format: ImageFormat::Bios,
            bsp_entry: entry,
            bsp,
            ap_entry: entry,
            ap,
            info: None,
            ramdisk: None,
        })
    }
}

/// The one line `axvm check` prints on how the VM starts and why: the BIOS start with the
/// BIOS's range and what the kernel's own header would have chosen, or the detected format
/// and its rule (with why a BIOS image given is only copied).
pub(crate) fn start_line(config: &AxVMConfig, images: &BootImages) -> String {
    let entry = config.bsp_entry().as_u64();
    let detected = super::protocol_for(&images.kernel);
    if let Some((start, end)) = bios_holding_entry(config, images) {
        let header = match detected.format() {
            ImageFormat::Raw => String::new(),
            format => format!(" (its {format:?} header is left to the BIOS)"),
        };
        return format!(
            "BIOS start (the ArceOS hypervisor's x86 start): entry_point {entry:#x} lies in the BIOS image at {start:#x}..{end:#x}, so vCPU 0 starts there in 16-bit real mode (CS 0, IP {entry:#x}) and the other vCPUs wait for INIT-SIPI-SIPI; the kernel is copied as it is to kernel_load_addr {:#x}{header}",
            config.image_config.kernel_load_gpa.as_u64()
        );
    }
    let mut line = format!("{:?}: {}", detected.format(), detected.detected_by());
    if let (Some(bios), Some(at)) = (&images.bios, config.image_config.bios_load_gpa) {
        let start = at.as_u64();
        line.push_str(&format!(
            "; the BIOS image at {start:#x}..{:#x} does not hold entry_point {entry:#x}, so it is only copied there",
            start.saturating_add(bios.len() as u64)
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(entry: u64) -> AxVMConfig {
        AxVMConfig::builder("bios")
            .ram(0, 0x100_0000)
            .kernel_at(0x20_0000)
            .build()
            .map(|mut config| {
                config.cpu_config.bsp_entry = GuestPhysAddr::new(entry);
                config.image_config.bios_load_gpa = Some(GuestPhysAddr::new(0x8000));
                config
            })
            .unwrap()
    }

    fn images() -> BootImages {
        BootImages {
            kernel: vec![0xf4; 0x100],
            bios: Some(vec![0x90; 0x6e]),
            ..BootImages::default()
        }
    }

    #[test]
    fn the_rule_needs_a_bios_image_holding_the_entry() {
        assert_eq!(
            bios_holding_entry(&config(0x8000), &images()),
            Some((0x8000, 0x806e))
        );
        assert_eq!(
            bios_holding_entry(&config(0x806d), &images()),
            Some((0x8000, 0x806e))
        );
        assert_eq!(bios_holding_entry(&config(0x806e), &images()), None);
        assert_eq!(bios_holding_entry(&config(0x7fff), &images()), None);
        let no_bios = BootImages {
            bios: None,
            ..images()
        };
        assert_eq!(bios_holding_entry(&config(0x8000), &no_bios), None);
        let mut no_address = config(0x8000);
        no_address.image_config.bios_load_gpa = None;
        assert_eq!(bios_holding_entry(&no_address, &images()), None);
    }

    #[test]
    fn the_start_line_says_which_start_and_why() {
        let line = start_line(&config(0x8000), &images());
        assert!(line.starts_with("BIOS start"), "{line}");
        assert!(line.contains("0x8000..0x806e"), "{line}");
        let line = start_line(&config(0x20_0000), &images());
        assert!(line.starts_with("Raw: "), "{line}");
        assert!(
            line.contains("does not hold entry_point 0x200000"),
            "{line}"
        );
    }
}
