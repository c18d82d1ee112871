//! Loading a kernel's segments into guest RAM, checked first: every segment inside one RAM
//! region and the entry in RAM, so a misplaced image is refused, naming the config field,
//! before anything is written. Every axvm host loads images with these.

use alloc::format;

use axvm::{AxVM, AxVMConfig, AxVMHal, ConfigError, GuestPhysAddr};

use crate::elf::Segment;

/// The field that names the kernel image in errors.
pub const KERNEL_FIELD: &str = "kernel.kernel_path";

/// Refuses a kernel whose `segments` are not each inside one RAM region. `what` says what a
/// segment is ("ELF segment", "Multiboot image").
pub fn check_segments(
    config: &AxVMConfig,
    what: &str,
    segments: &[Segment],
) -> Result<(), ConfigError> {
    for (index, segment) in segments.iter().enumerate() {
        let field = format!(
            "{KERNEL_FIELD} ({what} {index} at {:#x}, {:#x} bytes)",
            segment.paddr, segment.memsz
        );
        config.check_image_fits(&field, GuestPhysAddr::new(segment.paddr), segment.memsz)?;
    }
    Ok(())
}

/// Refuses an entry point outside RAM: the vCPU would fetch from nothing.
pub fn check_entry(config: &AxVMConfig, entry: u64) -> Result<(), ConfigError> {
    match config.region_containing(GuestPhysAddr::new(entry)) {
        Some(_) => Ok(()),
        None => Err(ConfigError::invalid(
            KERNEL_FIELD,
            format!("the kernel entry {entry:#x} is not inside any memory region"),
        )),
    }
}

/// Copies each segment's file bytes from `image` and zeroes the rest of it (the bss). The
/// segments were checked by [`check_segments`] and come from a parser that bounds-checked
/// their offsets.
pub fn copy_segments<H: AxVMHal>(
    vm: &AxVM<H>,
    image: &[u8],
    segments: &[Segment],
) -> Result<(), ConfigError> {
    for segment in segments {
        let (offset, filesz) = (segment.offset as usize, segment.filesz as usize);
        vm.memory()
            .write(
                GuestPhysAddr::new(segment.paddr),
                &image[offset..offset + filesz],
            )
            .map_err(load_failed)?;
    }
    zero_bss(vm, segments)
}

/// Zeroes each segment's bytes past its file bytes: a kernel expects its bss zero, and
/// guest RAM may hold earlier images.
pub fn zero_bss<H: AxVMHal>(vm: &AxVM<H>, segments: &[Segment]) -> Result<(), ConfigError> {
    static ZEROS: [u8; 0x1_0000] = [0; 0x1_0000];
    for segment in segments {
        let mut at = segment.paddr + segment.filesz;
        let end = segment.paddr + segment.memsz;
        while at < end {
            let chunk = (end - at).min(ZEROS.len() as u64);
            vm.memory()
                .write(GuestPhysAddr::new(at), &ZEROS[..chunk as usize])
                .map_err(load_failed)?;
            at += chunk;
        }
    }
    Ok(())
}

fn load_failed(err: axvm::GuestMemoryError) -> ConfigError {
    ConfigError::invalid(KERNEL_FIELD, format!("cannot load the image: {err}"))
}

/// Copies `image` to `gpa` after checking it fits in one RAM region; errors name `field`.
pub fn copy_image<H: AxVMHal>(
    vm: &AxVM<H>,
    field: &str,
    gpa: GuestPhysAddr,
    image: &[u8],
) -> Result<(), ConfigError> {
    vm.config()
        .check_image_fits(field, gpa, image.len() as u64)?;
    vm.memory()
        .write(gpa, image)
        .map_err(|err| ConfigError::invalid(field, format!("{err}")))
}
