//! Turning a config file (or the embedded demo) into a VM config and its images.

use std::fmt;
use std::path::{Path, PathBuf};

use axvm::config::toml::AxVMCrateConfig;
use axvm::config::DeviceBackend;
use axvm::{AxVMConfig, ConfigError};
use axvm_linux::BootImages;

use crate::bounded_read::{self, Bound};

/// A config with everything it names read.
pub struct VmFiles {
    /// Where it came from, for messages.
    pub origin: String,
    /// The VM config.
    pub config: AxVMConfig,
    /// The images.
    pub images: BootImages,
}

/// Why a config cannot be used; the message names the file and the field or line.
#[derive(Debug)]
pub struct ConfigFileError(pub String);

impl fmt::Display for ConfigFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `err` prefixed with where the config came from.
pub fn config_error(origin: &str, err: ConfigError) -> ConfigFileError {
    match err {
        ConfigError::Parse {
            line,
            column,
            message,
        } => ConfigFileError(format!("{origin}:{line}:{column}: {message}")),
        other => ConfigFileError(format!("{origin}: {other}")),
    }
}

/// Parses config text; `origin` names it in messages.
pub fn parse(origin: &str, text: &str) -> Result<AxVMCrateConfig, ConfigFileError> {
    AxVMCrateConfig::from_toml(text).map_err(|err| config_error(origin, err))
}

/// Reads the config at `path` and every image it names (paths relative to it), each only if
/// it is a regular file no larger than it could be (see [`bounded_read`]). Values that
/// have no meaning (unknown flag bits, map types) are refused; the rest of validation is left
/// to the caller, so that `check` can list every problem and `run` can stop at the first.
pub fn load(path: &Path) -> Result<VmFiles, ConfigFileError> {
    let origin = path.display().to_string();
    let cannot_read =
        |reason: String| ConfigFileError(format!("cannot read config {origin}: {reason}"));
    let bytes = bounded_read::read(path, |_| Bound::config()).map_err(cannot_read)?;
    let text = String::from_utf8(bytes)
        .map_err(|err| cannot_read(format!("it is not UTF-8 text ({err})")))?;
    let file = parse(&origin, &text)?;
    let mut config = file
        .to_vm_config_unchecked()
        .map_err(|err| config_error(&origin, err))?;
    let base = path.parent().unwrap_or(Path::new("."));
    resolve_backend_paths(&mut config, base);
    let images = read_images(&origin, base, &file, guest_ram(&config))?;
    Ok(VmFiles {
        origin,
        config,
        images,
    })
}

/// The demo guest of this host's architecture: the PC demo on x86, the virt-board demo on
/// arm64 (both check the VMM and say `all checks passed`).
#[cfg(target_arch = "x86_64")]
const DEMO_IMAGE: &[u8] = axvm_guests::DEMO;
#[cfg(target_arch = "x86_64")]
const DEMO_CONFIG: &str = axvm_guests::DEMO_CONFIG;
#[cfg(target_arch = "aarch64")]
const DEMO_IMAGE: &[u8] = axvm_guests::ARM_DEMO;
#[cfg(target_arch = "aarch64")]
const DEMO_CONFIG: &str = axvm_guests::ARM_DEMO_CONFIG;

/// The embedded demo VM: its config and guest image are built into axvm.
pub fn demo() -> Result<VmFiles, ConfigFileError> {
    let origin = "embedded demo config".to_string();
    let file = parse(&origin, DEMO_CONFIG)?;
    let config = file
        .clone()
        .into_vm_config()
        .map_err(|err| config_error(&origin, err))?;
    let images = BootImages {
        kernel: DEMO_IMAGE.to_vec(),
        ..Default::default()
    };
    Ok(VmFiles {
        origin,
        config,
        images,
    })
}

/// Makes the disk paths of device backends relative to the config file's directory, as
/// image paths are, so the host opens what the config means wherever axvm runs.
fn resolve_backend_paths(config: &mut AxVMConfig, base: &Path) {
    for device in &mut config.emu_devices {
        if let Some(DeviceBackend::Disk { path, .. }) = &mut device.backend {
            *path = base.join(&*path).display().to_string();
        }
    }
}

/// How much guest RAM the config's regions give in all: no image can be larger.
fn guest_ram(config: &AxVMConfig) -> u64 {
    config
        .memory_regions
        .iter()
        .fold(0, |sum: u64, region| sum.saturating_add(region.size))
}

/// Reads the images `file` names, relative to `base`; none may be larger than `ram`, the
/// guest RAM it is loaded into (see [`bounded_read`]).
fn read_images(
    origin: &str,
    base: &Path,
    file: &AxVMCrateConfig,
    ram: u64,
) -> Result<BootImages, ConfigFileError> {
    let kernel = &file.kernel;
    let read =
        |field: &str, relative: &Option<String>| -> Result<Option<Vec<u8>>, ConfigFileError> {
            let Some(relative) = relative else {
                return Ok(None);
            };
            let path: PathBuf = base.join(relative);
            let bound = |header: &[u8]| match field {
                "kernel_path" => Bound::kernel(ram, header),
                _ => Bound::guest_ram(ram),
            };
            bounded_read::read(&path, bound)
                .map(Some)
                .map_err(|reason| {
                    ConfigFileError(format!(
                        "{origin}: config field `kernel.{field}`: cannot read {}: {reason}",
                        path.display()
                    ))
                })
        };
    let kernel_image = read("kernel_path", &Some(kernel.kernel_path.clone()))?.unwrap_or_default();
    Ok(BootImages {
        kernel: kernel_image,
        bios: read("bios_path", &kernel.bios_path)?,
        dtb: read("dtb_path", &kernel.dtb_path)?,
        ramdisk: read("ramdisk_path", &kernel.ramdisk_path)?,
        kernel_name: Some(kernel.kernel_path.clone()),
    })
}
