use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use axvm::config::AxVMConfigBuilder;

use super::linux::IMAGE_MAGIC;
use super::*;

const RAM: u64 = 0x4000_0000;
const RAM_SIZE: u64 = 0x800_0000;
const MIB: u64 = 1 << 20;

fn ram() -> AxVMConfigBuilder {
    AxVMConfig::builder("vm").ram(RAM, RAM_SIZE)
}

fn build(builder: AxVMConfigBuilder) -> AxVMConfig {
    builder.build().expect("the config is valid for the core")
}

/// A Linux arm64 Image of `len` bytes with the given header fields.
fn linux_image(text_offset: u64, image_size: u64, len: usize) -> Vec<u8> {
    let mut image = vec![0u8; len.max(64)];
    image[8..16].copy_from_slice(&text_offset.to_le_bytes());
    image[16..24].copy_from_slice(&image_size.to_le_bytes());
    image[24..32].copy_from_slice(&2u64.to_le_bytes()); // 4 KiB pages, LE
    image[56..60].copy_from_slice(&IMAGE_MAGIC.to_le_bytes());
    image
}

/// One program header of [`elf`]: (p_type, offset, vaddr, paddr, filesz, memsz).
type Phdr = (u32, u64, u64, u64, u64, u64);

/// An ELF64 file for `machine` with `phdrs`, `e_entry` = `entry`, `len` bytes long.
fn elf(machine: u16, entry: u64, phdrs: &[Phdr], len: usize) -> Vec<u8> {
    let mut file = vec![0u8; len.max(64 + 56 * phdrs.len())];
    file[..4].copy_from_slice(b"\x7fELF");
    file[4] = 2; // ELF64
    file[5] = 1; // little-endian
    file[6] = 1;
    file[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    file[18..20].copy_from_slice(&machine.to_le_bytes());
    file[24..32].copy_from_slice(&entry.to_le_bytes());
    file[32..40].copy_from_slice(&64u64.to_le_bytes());
    file[54..56].copy_from_slice(&56u16.to_le_bytes());
    file[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
    for (index, &(kind, offset, vaddr, paddr, filesz, memsz)) in phdrs.iter().enumerate() {
        let at = 64 + 56 * index;
        file[at..at + 4].copy_from_slice(&kind.to_le_bytes());
        for (field, value) in [
            (8, offset),
            (16, vaddr),
            (24, paddr),
            (32, filesz),
            (40, memsz),
        ] {
            file[at + field..at + field + 8].copy_from_slice(&value.to_le_bytes());
        }
    }
    file
}

fn refused(config: &AxVMConfig, kernel: &[u8], initrd: Option<usize>, dtb: usize) -> String {
    match plan(config, kernel, initrd, dtb) {
        Err(err) => err,
        Ok(plan) => panic!("planned {plan:?}"),
    }
}

fn assert_names(err: &str, field: &str) {
    assert!(err.contains(&format!("`{field}`")), "{err}");
}

#[test]
fn formats_are_told_apart_by_their_magic() {
    assert_eq!(
        detect(&linux_image(0, 0x1000, 0x1000)),
        ArmImageFormat::LinuxImage
    );
    assert_eq!(detect(&elf(183, 0, &[], 64)), ArmImageFormat::Elf);
    assert_eq!(detect(&[0x14, 0, 0, 0x14]), ArmImageFormat::Raw);
    assert_eq!(detect(&[]), ArmImageFormat::Raw);
    // The magic must be at 56 of a full header.
    assert_eq!(detect(&linux_image(0, 0, 64)[..60]), ArmImageFormat::Raw);
}

#[test]
fn a_linux_image_loads_at_kernel_load_addr_with_its_image_size() {
    let config = build(ram().kernel_at(0x4020_0000));
    let kernel = linux_image(0, 0x30_0000, 0x1000);
    let plan = plan(&config, &kernel, None, 0x1000).unwrap();
    assert_eq!(plan.format, ArmImageFormat::LinuxImage);
    assert_eq!(plan.segments, [(0x4020_0000, 0..0x1000, 0x30_0000)]);
    assert_eq!(plan.entry, 0x4020_0000);
}

#[test]
fn a_linux_image_load_address_is_a_2_mib_base_plus_text_offset() {
    let kernel = linux_image(0x8_0000, 0x10_0000, 0x1000);
    let config = build(ram().kernel_at(0x4008_0000));
    assert_eq!(
        plan(&config, &kernel, None, 0x1000).unwrap().entry,
        0x4008_0000
    );

    let config = build(ram().kernel_at(0x4020_0000));
    let err = refused(&config, &kernel, None, 0x1000);
    assert_names(&err, "kernel.kernel_load_addr");
    assert!(err.contains("use 0x40280000"), "{err}");
    // Below text_offset there is no base at all.
    let mut low = build(
        AxVMConfig::builder("vm")
            .ram(0, 0x400_0000)
            .kernel_at(0x1000),
    );
    low.image_config.kernel_load_gpa = axvm::GuestPhysAddr::new(0x1000);
    assert_names(
        &refused(&low, &kernel, None, 0x1000),
        "kernel.kernel_load_addr",
    );
}

#[test]
fn an_old_linux_image_without_image_size_has_text_offset_0x80000() {
    // Before 3.17 image_size is 0 and text_offset is 0x80000 whatever the field holds.
    let kernel = linux_image(0x1234, 0, 0x2000);
    let config = build(ram().kernel_at(0x4008_0000));
    let plan = plan(&config, &kernel, None, 0x1000).unwrap();
    assert_eq!(plan.segments, [(0x4008_0000, 0..0x2000, 0x2000)]);
}

#[test]
fn a_linux_image_larger_than_its_region_is_refused() {
    let config = build(ram().kernel_at(0x4020_0000));
    let kernel = linux_image(0, RAM_SIZE, 0x1000);
    assert_names(
        &refused(&config, &kernel, None, 0x1000),
        "kernel.kernel_load_addr",
    );
}

#[test]
fn an_elf_loads_its_segments_at_p_paddr_and_enters_at_e_entry() {
    let phdrs = [
        (1, 0x1000, 0x4008_0000, 0x4008_0000, 0x800, 0x800),
        (4, 0, 0, 0, 0, 0), // PT_NOTE: not loaded
        (1, 0x1800, 0x4009_0000, 0x4009_0000, 0x100, 0x5000),
    ];
    let kernel = elf(183, 0x4008_0010, &phdrs, 0x2000);
    let config = build(ram().kernel_at(0x4008_0000));
    let plan = plan(&config, &kernel, None, 0x1000).unwrap();
    assert_eq!(plan.format, ArmImageFormat::Elf);
    assert_eq!(
        plan.segments,
        [
            (0x4008_0000, 0x1000..0x1800, 0x800),
            (0x4009_0000, 0x1800..0x1900, 0x5000)
        ]
    );
    assert_eq!(plan.entry, 0x4008_0010);
}

#[test]
fn an_elf_entered_at_a_virtual_address_starts_at_its_physical_one() {
    let virt = 0xffff_8000_1000_0000;
    let phdrs = [(1, 0x1000, virt, 0x4020_0000, 0x800, 0x800)];
    let kernel = elf(183, virt + 0x40, &phdrs, 0x1800);
    let config = build(ram().kernel_at(0x4020_0000));
    assert_eq!(
        plan(&config, &kernel, None, 0x1000).unwrap().entry,
        0x4020_0040
    );
}

#[test]
fn elves_that_cannot_load_name_the_kernel_file() {
    let config = build(ram().kernel_at(0x4020_0000));
    let good = (1, 0x1000, 0x4020_0000, 0x4020_0000, 0x800, 0x800);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (elf(62, 0x4020_0000, &[good], 0x1800), "AArch64"),
        (
            {
                let mut file = elf(183, 0x4020_0000, &[good], 0x1800);
                file[4] = 1;
                file
            },
            "32-bit",
        ),
        (elf(183, 0x4020_0000, &[], 64), "no loadable"),
        (
            elf(
                183,
                0x4020_0000,
                &[(1, 0x1000, 0, 0x4020_0000, 0x900, 0x800)],
                0x2000,
            ),
            "more file bytes",
        ),
        (
            elf(
                183,
                0x4020_0000,
                &[(1, 0x1000, 0, 0x4020_0000, 0x1000, 0x1000)],
                0x1800,
            ),
            "beyond the file",
        ),
        (
            elf(183, 0x1000, &[(1, 0x1000, 0, 0x1000, 0x800, 0x800)], 0x1800),
            "not inside any memory region",
        ),
        (
            elf(
                183,
                0x4020_0000,
                &[good, (1, 0x1000, 0, 0x4020_0400, 0x800, 0x800)],
                0x1800,
            ),
            "overlap",
        ),
        (elf(183, 0x5000_0000, &[good], 0x1800), "entry point"),
        (
            {
                let mut file = elf(183, 0x4020_0000, &[good], 0x1800);
                file[32..40].copy_from_slice(&u64::MAX.to_le_bytes()); // e_phoff
                file
            },
            "beyond the end",
        ),
        (elf(183, 0, &[], 40)[..40].to_vec(), "shorter than"),
    ];
    for (kernel, why) in cases {
        let err = refused(&config, &kernel, None, 0x1000);
        assert_names(&err, "kernel.kernel_path");
        assert!(err.contains(why), "expected {why:?} in {err}");
    }
}

#[test]
fn a_raw_kernel_is_copied_at_kernel_load_addr_and_entered_at_entry_point() {
    let config = build(ram().kernel_at(0x4020_0000).entry(0x4020_0100));
    let plan = plan(&config, &[0xaa; 0x300], None, 0x1000).unwrap();
    assert_eq!(plan.format, ArmImageFormat::Raw);
    assert_eq!(plan.segments, [(0x4020_0000, 0..0x300, 0x300)]);
    assert_eq!(plan.entry, 0x4020_0100);
    assert_names(&refused(&config, &[], None, 0x1000), "kernel.kernel_path");
}

#[test]
fn the_dtb_goes_at_the_top_2_mib_aligned_2_mib_of_the_first_region() {
    let config = build(ram().kernel_at(0x4020_0000));
    let plan = plan(&config, &[0; 0x100], None, 0x1234).unwrap();
    assert_eq!(plan.dtb_gpa, RAM + RAM_SIZE - 2 * MIB);
    // An unaligned region end rounds down.
    let odd = build(
        AxVMConfig::builder("vm")
            .ram(RAM, RAM_SIZE - MIB)
            .kernel_at(RAM),
    );
    let plan = super::plan(&odd, &[0; 0x100], None, 0x1234).unwrap();
    assert_eq!(plan.dtb_gpa, RAM + RAM_SIZE - 4 * MIB);
}

#[test]
fn the_dtb_goes_at_dtb_load_addr_when_given() {
    let config = build(ram().kernel_at(0x4020_0000).dtb_at(RAM));
    assert_eq!(
        plan(&config, &[0; 0x100], None, 0x1000).unwrap().dtb_gpa,
        RAM
    );
    let cases = [
        (RAM + 4, "8-byte aligned"),
        (0x4020_0080, "overlaps the kernel"),
        (RAM + RAM_SIZE - 0x800, "does not fit"),
    ];
    for (at, why) in cases {
        let config = build(ram().kernel_at(0x4020_0000).dtb_at(at));
        let err = refused(&config, &[0; 0x100], None, 0x1000);
        assert_names(&err, "kernel.dtb_load_addr");
        assert!(err.contains(why), "expected {why:?} in {err}");
    }
}

#[test]
fn a_dtb_that_is_empty_or_over_2_mib_is_refused() {
    let config = build(ram().kernel_at(0x4020_0000));
    assert_names(&refused(&config, &[0; 16], None, 0), "kernel.dtb_path");
    let err = refused(&config, &[0; 16], None, 2 * MIB as usize + 1);
    assert_names(&err, "kernel.dtb_path");
    assert!(plan(&config, &[0; 16], None, MAX_DTB_SIZE as usize).is_ok());
}

#[test]
fn no_dtb_is_placed_in_a_small_region_or_over_the_kernel() {
    let small = build(AxVMConfig::builder("vm").ram(RAM, 3 * MIB).kernel_at(RAM));
    let err = refused(&small, &[0; 16], None, 0x1000);
    assert_names(&err, "kernel.dtb_load_addr");
    assert!(err.contains("4 MiB"), "{err}");
    let top = build(ram().kernel_at(RAM + RAM_SIZE - MIB));
    let err = refused(&top, &[0; 16], None, 0x1000);
    assert_names(&err, "kernel.dtb_load_addr");
    assert!(err.contains("the kernel"), "{err}");
}

#[test]
fn the_initrd_goes_at_the_first_page_after_the_kernel() {
    let config = build(ram().kernel_at(0x4020_0000));
    let kernel = linux_image(0, 0x12_3456, 0x1000);
    let plan = plan(&config, &kernel, Some(0x5000), 0x1000).unwrap();
    assert_eq!(plan.initrd, Some((0x4032_4000, 0x4032_9000)));
}

#[test]
fn the_initrd_steps_over_a_dtb_right_after_the_kernel() {
    let config = build(ram().kernel_at(0x4020_0000).dtb_at(0x4020_1000));
    let plan = plan(&config, &[0; 0x1000], Some(0x100), 0x1800).unwrap();
    assert_eq!(plan.initrd, Some((0x4020_3000, 0x4020_3100)));
}

#[test]
fn the_initrd_goes_at_ramdisk_load_addr_when_given() {
    let config = build(ram().kernel_at(0x4020_0000).ramdisk_at(0x4400_0000));
    let plan = plan(&config, &[0; 0x1000], Some(0x2345), 0x1000).unwrap();
    assert_eq!(plan.initrd, Some((0x4400_0000, 0x4400_2345)));

    let over_kernel = build(ram().kernel_at(0x4020_0000).ramdisk_at(0x4020_0800));
    let err = refused(&over_kernel, &[0; 0x1000], Some(0x100), 0x1000);
    assert_names(&err, "kernel.ramdisk_load_addr");
    assert!(err.contains("overlaps the kernel"), "{err}");

    let outside = build(
        ram()
            .kernel_at(0x4020_0000)
            .ramdisk_at(RAM + RAM_SIZE - 0x100),
    );
    let err = refused(&outside, &[0; 0x1000], Some(0x200), 0x1000);
    assert_names(&err, "kernel.ramdisk_load_addr");

    // A given initrd where the DTB would be placed: the DTB is refused, naming its field.
    let at_top = build(
        ram()
            .kernel_at(0x4020_0000)
            .ramdisk_at(RAM + RAM_SIZE - MIB),
    );
    let err = refused(&at_top, &[0; 0x1000], Some(0x200), 0x1000);
    assert_names(&err, "kernel.dtb_load_addr");
    assert!(err.contains("the ramdisk"), "{err}");
}

#[test]
fn an_initrd_without_room_below_the_dtb_or_empty_is_refused() {
    let config = build(ram().kernel_at(0x4020_0000));
    let err = refused(
        &config,
        &[0; 0x1000],
        Some(RAM_SIZE as usize - 4 * MIB as usize),
        0x1000,
    );
    assert_names(&err, "kernel.ramdisk_load_addr");
    assert!(err.contains("no room"), "{err}");
    assert_names(
        &refused(&config, &[0; 0x1000], Some(0), 0x1000),
        "kernel.ramdisk_path",
    );
}

#[test]
fn planned_ranges_never_overlap() {
    let config = build(ram().kernel_at(0x4020_0000));
    let kernel = linux_image(0, 0x20_0000, 0x1000);
    let plan = plan(&config, &kernel, Some(0x40_0000), 0x1000).unwrap();
    let (kernel_start, _, kernel_size) = plan.segments[0].clone();
    let (initrd_start, initrd_end) = plan.initrd.unwrap();
    assert!(initrd_start >= kernel_start + kernel_size);
    assert!(initrd_end <= plan.dtb_gpa);
}

#[test]
fn ram_in_the_device_window_is_refused_before_planning() {
    let config = build(
        AxVMConfig::builder("vm")
            .ram(0, 0x1000_0000)
            .kernel_at(0x1000),
    );
    assert_names(
        &refused(&config, &[0; 16], None, 0x1000),
        "kernel.memory_regions[0]",
    );
}
