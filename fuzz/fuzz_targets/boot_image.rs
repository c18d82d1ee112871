//! Kernel and ramdisk bytes against a fixed, valid config: format detection (raw, ELF64,
//! PVH, Multiboot, bzImage) and each boot protocol's checks and placement, as `axvm check`
//! and `axvm run` plan a VM before creating it (no KVM needed).
//!
//! Input: a flags byte (bit 0: the second config, bit 1: a ramdisk), a 16-bit kernel length
//! (used only with a ramdisk), then the kernel and (the rest) the ramdisk; so a guest image
//! after three zero bytes is a seed (`fuzz/seed.sh`). Nothing may panic, and every image a
//! plan accepts lies inside one RAM region.
#![no_main]

use axvm::AxVMConfig;
use axvm_kvm::{BootImages, VmPlan};
use libfuzzer_sys::fuzz_target;

/// 64 MiB at 0, every load address set: what a raw or ELF kernel needs.
fn addressed() -> AxVMConfig {
    AxVMConfig::builder("fuzz")
        .cpus(2)
        .ram(0, 0x400_0000)
        .kernel_at(0x20_0000)
        .ramdisk_at(0x300_0000)
        .cmdline("console=ttyS0 root=/dev/vda")
        .build()
        .expect("valid config")
}

/// 16 MiB at 0 and 16 MiB above 4 GiB, no ramdisk address: the boot protocols place it.
fn placed() -> AxVMConfig {
    AxVMConfig::builder("fuzz")
        .ram(0, 0x100_0000)
        .ram(0x1_0000_0000, 0x100_0000)
        .kernel_at(0x10_0000)
        .cmdline("console=ttyS0")
        .build()
        .expect("valid config")
}

fuzz_target!(|data: &[u8]| {
    let (head, rest) = data.split_at(data.len().min(3));
    let mut header = [0u8; 3];
    header[..head.len()].copy_from_slice(head);
    let with_ramdisk = header[0] & 2 != 0;
    let kernel_len = match with_ramdisk {
        true => usize::from(u16::from_le_bytes([header[1], header[2]])).min(rest.len()),
        false => rest.len(),
    };
    let (kernel, ramdisk) = rest.split_at(kernel_len);
    let config = if header[0] & 1 == 0 {
        addressed()
    } else {
        placed()
    };
    let images = BootImages {
        kernel: kernel.to_vec(),
        ramdisk: with_ramdisk.then(|| ramdisk.to_vec()),
        ..Default::default()
    };
    let _ = VmPlan::sketch(&config, &images);
    let plan = match VmPlan::for_valid_config_on(&config, &images, None) {
        Ok(plan) => plan,
        Err(err) => return drop(err.to_string()),
    };
    for image in plan.images.iter().filter(|image| image.start < image.end) {
        let inside = config
            .memory_regions()
            .iter()
            .any(|region| region.gpa.as_u64() <= image.start && image.end <= region.end().as_u64());
        assert!(inside, "{image:x?} lies outside RAM");
    }
});
