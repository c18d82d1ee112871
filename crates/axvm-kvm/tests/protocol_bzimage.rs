//! The Linux boot protocol: a minimal synthetic bzImage (setup header with "HdrS", protocol
//! 2.15, XLF_KERNEL_64) whose 64-bit code at +0x200 checks the zero page RSI points at, the
//! zero page read back from guest memory, and the bzImages axvm refuses with the field named.

mod common;
mod protocol_common;

use axvm::GuestPhysAddr;
use axvm_kvm::{CpuMode, ImageFormat, StartPolicy, VmOutcome};
use common::{parse_config, require_kvm};
use protocol_common::*;

const SETUP_SECTS: usize = 1;
/// Where the boot protocol loads a bzImage's protected-mode kernel: 1 MiB.
const BZIMAGE_LOAD_ADDR: u64 = 0x10_0000;
/// The highest address the test kernel accepts a ramdisk at (32 MiB − 1): below the top of
/// [`RAM`], so the loader must honour it.
const INITRD_ADDR_MAX: u32 = 0x1ff_ffff;

/// A bzImage with `SETUP_SECTS` setup sectors and the given protocol `version`,
/// `xloadflags` and `cmdline_size`; its protected-mode kernel is 0x200 bytes of `hlt`
/// (where a 32-bit entry would be), then [`LINUX64_CODE`] at the 64-bit entry.
fn bzimage(version: u16, xloadflags: u16, cmdline_size: u32) -> Vec<u8> {
    let mut image = vec![0u8; (SETUP_SECTS + 1) * 512];
    image[0x1f1] = SETUP_SECTS as u8;
    image[0x1fe..0x200].copy_from_slice(&0xaa55u16.to_le_bytes()); // boot_flag
    image[0x200..0x202].copy_from_slice(&[0xeb, 0x6a]); // jump over the header
    image[0x202..0x206].copy_from_slice(b"HdrS");
    image[0x206..0x208].copy_from_slice(&version.to_le_bytes());
    image[0x211] = 0x01; // loadflags: LOADED_HIGH
    set32(&mut image, 0x214, 0x10_0000); // code32_start
    set32(&mut image, 0x22c, INITRD_ADDR_MAX);
    set32(&mut image, 0x230, 0x20_0000); // kernel_alignment
    image[0x234] = 1; // relocatable_kernel
    image[0x236..0x238].copy_from_slice(&xloadflags.to_le_bytes());
    set32(&mut image, 0x238, cmdline_size);
    image.extend_from_slice(&[0xf4; 0x200]);
    image.extend_from_slice(LINUX64_CODE);
    image
}

fn good_bzimage() -> Vec<u8> {
    bzimage(0x020f, 0x1, 2048)
}

fn bzimages_are_detected_and_laid_out_without_a_vm() {
    let image = good_bzimage();
    let (format, entry, ranges) = kernel_plan(&image);
    assert_eq!(format, ImageFormat::BzImage);
    assert_eq!(entry, GuestPhysAddr::new(0x10_0200));
    let kernel_len = (image.len() - (SETUP_SECTS + 1) * 512) as u64;
    assert_eq!(ranges, [(GuestPhysAddr::new(0x10_0000), kernel_len)]);
}

fn bzimage_starts_at_the_64_bit_entry_with_the_zero_page_in_rsi() {
    require_kvm();
    let image = good_bzimage();
    let (vm, console) = create(config(2), &images(&image));
    let plan = vm.plan();
    assert_eq!(plan.format, ImageFormat::BzImage);
    assert_eq!(
        plan.bsp_entry,
        GuestPhysAddr::new(BZIMAGE_LOAD_ADDR + 0x200)
    );
    assert!(matches!(plan.bsp.mode, CpuMode::Long { .. }), "{plan:?}");
    assert_eq!(plan.bsp.start, StartPolicy::AtBoot);
    assert_eq!(plan.ap.start, StartPolicy::WaitForSipi);
    let zero_page = plan.info.expect("zero page").as_u64();
    assert_eq!(plan.bsp.regs.rsi, zero_page);
    assert_eq!(zero_page % 0x1000, 0, "the zero page is page-aligned");
    // The protected-mode kernel is at 1 MiB.
    let protected_mode = &image[(SETUP_SECTS + 1) * 512..];
    assert_eq!(
        read(&vm, BZIMAGE_LOAD_ADDR, protected_mode.len()),
        protected_mode
    );
    check_zero_page(&vm, zero_page);
    let (outcome, printed) = run(vm, &console);
    assert_eq!(outcome, VmOutcome::Exited(42), "console: {printed:?}");
    assert_eq!(printed, LINUX64_LINE);
}

/// Checks the zero page for [`config`] with [`RAM`], [`CMDLINE`] and [`RAMDISK`].
fn check_zero_page(vm: &axvm_kvm::KvmVm, zero_page: u64) {
    let at = |offset: u64| zero_page + offset;
    assert_eq!(
        read(vm, at(0x202), 4),
        b"HdrS",
        "the setup header is copied"
    );
    assert_eq!(read(vm, at(0x1ef), 1), [0], "sentinel");
    assert_eq!(read(vm, at(0x210), 1), [0xff], "type_of_loader");
    assert_eq!(read_u32(vm, at(0x214)), 0x10_0000, "code32_start");
    assert_eq!(read_cstr(vm, read_u32(vm, at(0x228)).into()), CMDLINE);
    let (ramdisk, size) = (read_u32(vm, at(0x218)), read_u32(vm, at(0x21c)));
    assert_eq!(size as usize, RAMDISK.len());
    assert_eq!(
        ramdisk,
        (INITRD_ADDR_MAX + 1 - size) & !0xfff,
        "below initrd_addr_max"
    );
    assert_eq!(read(vm, ramdisk.into(), RAMDISK.len()), RAMDISK);
    let expected = [
        (0, 0x9_fc00, 1),
        (0x9_fc00, 0x6_0400, 2),
        (0x10_0000, RAM - 0x10_0000, 1),
    ];
    assert_eq!(
        read(vm, at(0x1e8), 1),
        [expected.len() as u8],
        "e820_entries"
    );
    for (index, (addr, len, kind)) in expected.into_iter().enumerate() {
        let entry = at(0x2d0 + 20 * index as u64);
        assert_eq!(read_u64(vm, entry), addr, "e820 {index}: addr");
        assert_eq!(read_u64(vm, entry + 8), len, "e820 {index}: size");
        assert_eq!(read_u32(vm, entry + 16), kind, "e820 {index}: type");
    }
}

fn bzimages_without_a_usable_64_bit_entry_are_refused() {
    require_kvm();
    let cases = [
        (
            "no XLF_KERNEL_64",
            bzimage(0x020f, 0, 2048),
            "XLF_KERNEL_64",
        ),
        ("protocol 2.10", bzimage(0x020a, 1, 2048), "older than 2.12"),
    ];
    for (what, image, words) in cases {
        eprintln!("case: {what}");
        assert_refused(config(1), &images(&image), "kernel.kernel_path", words);
    }
}

fn a_command_line_longer_than_the_kernel_accepts_is_refused() {
    require_kvm();
    let config = parse_config(&config_text(1, RAM, Some(CMDLINE), None));
    assert_refused(
        config,
        &images(&bzimage(0x020f, 1, 8)),
        "kernel.cmdline",
        "at most 8",
    );
}

fn a_ramdisk_above_initrd_addr_max_is_refused() {
    require_kvm();
    let config = parse_config(&config_text(1, RAM, None, Some(0x300_0000)));
    assert_refused(
        config,
        &images(&good_bzimage()),
        "kernel.ramdisk_load_addr",
        "must end at or below 0x2000000",
    );
}

axvm_test_harness::main!(
    bzimages_are_detected_and_laid_out_without_a_vm,
    bzimage_starts_at_the_64_bit_entry_with_the_zero_page_in_rsi,
    bzimages_without_a_usable_64_bit_entry_are_refused,
    a_command_line_longer_than_the_kernel_accepts_is_refused,
    a_ramdisk_above_initrd_addr_max_is_refused,
);
