//! The command line a PC boot protocol passes, built the same by every host: the config's
//! `kernel.cmdline` with the virtio-mmio devices appended ([`kernel_cmdline`]), and for
//! Multiboot the kernel's name before it ([`multiboot_cmdline`]).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use axvm::{AxVMConfig, ConfigError};

use crate::config_devices::virtio_rows;
use crate::layout::{BOOT_INFO_END, BOOT_INFO_START};

/// The first word of a Multiboot command line when the host knows no kernel name (images
/// made in code): kernels drop that word as the loader's, so it must be there for the rest
/// to reach them.
pub const DEFAULT_KERNEL_NAME: &str = "kernel";

/// The command line a boot protocol passes: `kernel.cmdline`, then a
/// `virtio_mmio.device=SIZE@BASE:IRQ` entry per virtio device, as QEMU's microvm adds them,
/// for kernels that find virtio-mmio devices only there (built with
/// `CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES` and without ACPI; kernels with ACPI find them in the
/// DSDT and take the entries for unknown parameters). A command line that already has such
/// an entry is the user's choice and is left as it is. `None` when there is nothing to pass.
///
/// ```
/// use axvm::config::toml::AxVMCrateConfig;
///
/// let text = r#"
/// [base]
/// id = 1
/// name = "cmdline"
/// vm_type = 1
/// cpu_num = 1
/// [kernel]
/// entry_point = 0x100000
/// image_location = "memory"
/// kernel_path = "kernel"
/// kernel_load_addr = 0x100000
/// cmdline = "console=hvc0"
/// memory_regions = [[0x0, 0x800_0000, 0x7, 0]]
/// [devices]
/// passthrough_devices = []
/// emu_devices = [["hvc0", 0xd000_2000, 0x1000, 7, 0xE3, []]]
/// interrupt_mode = "emu"
/// "#;
/// let config = AxVMCrateConfig::from_toml(text)?.into_vm_config()?;
/// assert_eq!(
///     axvm_pc::cmdline::kernel_cmdline(&config).as_deref(),
///     Some("console=hvc0 virtio_mmio.device=4K@0xd0002000:7")
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn kernel_cmdline(config: &AxVMConfig) -> Option<String> {
    let user = config.cmdline.as_deref().unwrap_or("");
    if user.contains("virtio_mmio.device=") {
        return config.cmdline.clone();
    }
    let entries: Vec<String> = virtio_rows(config)
        .map(|(_, row)| {
            format!(
                "virtio_mmio.device={}@{:#x}:{}",
                size_text(row.length),
                row.base_gpa.as_u64(),
                row.irq_id
            )
        })
        .collect();
    if entries.is_empty() {
        return config.cmdline.clone();
    }
    let mut words: Vec<&str> = user.split_whitespace().collect();
    words.extend(entries.iter().map(String::as_str));
    Some(words.join(" "))
}

/// A size as Linux's `memparse` reads it, in K when it is whole kibibytes.
fn size_text(bytes: u64) -> String {
    if bytes % 1024 == 0 {
        format!("{}K", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

/// Multiboot's command line: the kernel's name (`kernel_name`, the config's `kernel_path`
/// as the user wrote it, or [`DEFAULT_KERNEL_NAME`]), a space and [`kernel_cmdline`]
/// (empty when there is none), as QEMU's `-kernel PATH -append TEXT` passes `"PATH TEXT"`
/// and GRUB the kernel's path and arguments (kernels skip the first word).
///
/// ```
/// use axvm::AxVMConfig;
/// use axvm_pc::cmdline::multiboot_cmdline;
///
/// let mut config = AxVMConfig::new("cmdline", 1);
/// config.cmdline = Some("console=ttyS0".into());
/// assert_eq!(multiboot_cmdline(&config, Some("images/kernel.elf")), "images/kernel.elf console=ttyS0");
/// config.cmdline = None;
/// assert_eq!(multiboot_cmdline(&config, None), "kernel ", "as QEMU without -append");
/// ```
pub fn multiboot_cmdline(config: &AxVMConfig, kernel_name: Option<&str>) -> String {
    let name = kernel_name.unwrap_or(DEFAULT_KERNEL_NAME);
    let args = kernel_cmdline(config).unwrap_or_default();
    format!("{name} {args}")
}

/// Refuses a command line that cannot fit in the boot data area, whatever else the boot
/// protocol puts there (the loader refuses the rest, when the protocol's own data leaves
/// too little room).
pub fn check_cmdline_fits(line: &str) -> Result<(), ConfigError> {
    let room = BOOT_INFO_END - BOOT_INFO_START;
    let needed = line.len() as u64 + 1; // NUL-terminated
    if needed > room {
        return Err(ConfigError::invalid(
            "kernel.cmdline",
            format!("the command line takes {needed} bytes with its NUL, more than the {room} bytes of the boot data area at {BOOT_INFO_START:#x}..{BOOT_INFO_END:#x}; shorten it"),
        ));
    }
    Ok(())
}
