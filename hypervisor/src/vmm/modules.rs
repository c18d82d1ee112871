//! Finding the VM's files among the Multiboot modules: `-initrd "vm.toml,guest"` gives the
//! config first and the images after it, each named by the path QEMU was given.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use axvm::config::toml::AxVMCrateConfig;

use super::image::VmImages;
use crate::boot::Module;
use crate::hv_println;

/// The config file's text and the modules that may be its images.
pub struct VmFiles {
    /// The config module's name (its path as QEMU was given it).
    pub config_name: &'static str,
    /// The config's text.
    pub config_text: &'static str,
    images: &'static [Module],
}

impl VmFiles {
    /// The config is the first module; it must be UTF-8 text. Lists every module.
    pub fn find(modules: &'static [Module]) -> Result<Self, String> {
        for module in modules {
            hv_println!("module {} ({} bytes)", module.name, module.bytes.len());
        }
        let (config, images) = modules.split_first().ok_or(
            "no Multiboot modules: give QEMU the VM's config and images as -initrd \"vm.toml,guest\"",
        )?;
        let config_text = core::str::from_utf8(config.bytes).map_err(|err| {
            format!(
                "module 0 ({}) should be the VM's TOML config, but it is not UTF-8 text ({err})",
                config.name
            )
        })?;
        Ok(Self {
            config_name: config.name,
            config_text,
            images,
        })
    }

    /// The image the config's `field` names by `path`: the module whose file name is the
    /// path's (configs name images relative to themselves, QEMU by the path it was given).
    pub fn image(&self, path: &str, field: &str) -> Result<&'static [u8], String> {
        let wanted = file_name(path);
        self.images
            .iter()
            .find(|module| file_name(module.name) == wanted)
            .map(|module| module.bytes)
            .ok_or_else(|| {
                let given: Vec<&str> = self.images.iter().map(|m| m.name).collect();
                format!(
                    "{}: {field} = \"{path}\" names no Multiboot module (modules after the config: {given:?}); add it: -initrd \"{},{path}\"",
                    self.config_name, self.config_name
                )
            })
    }
}

impl VmFiles {
    /// The images `file` names: the kernel, and the BIOS and ramdisk when it names them.
    pub fn images(&self, file: &AxVMCrateConfig) -> Result<VmImages, String> {
        let kernel = &file.kernel;
        let optional = |path: &Option<String>, field| {
            path.as_deref()
                .map(|path| self.image(path, field))
                .transpose()
        };
        if kernel.dtb_path.is_some() {
            return Err(format!(
                "{}: kernel.dtb_path: x86 guests take no device tree; remove it",
                self.config_name
            ));
        }
        Ok(VmImages {
            kernel_path: kernel.kernel_path.clone(),
            kernel: self.image(&kernel.kernel_path, "kernel.kernel_path")?,
            bios: optional(&kernel.bios_path, "kernel.bios_path")?,
            ramdisk: optional(&kernel.ramdisk_path, "kernel.ramdisk_path")?,
        })
    }
}

/// The last component of a path (a module's name has no directory to QEMU either way).
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
