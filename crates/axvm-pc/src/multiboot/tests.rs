use super::*;
use crate::layout::{MPTABLE_END, MPTABLE_START};
use crate::test_config::config;
use alloc::string::ToString;
use alloc::vec;

const MAGIC: u32 = 0x1BAD_B002;
const RAM: u64 = 0x400_0000;

/// An a.out-kludge kernel of 0x100 bytes loaded at 1 MiB, entered at its byte 0x20.
fn kernel() -> Vec<u8> {
    let flags = 1u32 << 16;
    let words = [
        MAGIC,
        flags,
        0u32.wrapping_sub(MAGIC).wrapping_sub(flags),
        0x10_0000,
        0x10_0000,
        0,
        0,
        0x10_0020,
    ];
    let mut image = vec![0u8; 0x100];
    for (at, word) in words.iter().enumerate() {
        image[4 * at..4 * at + 4].copy_from_slice(&word.to_le_bytes());
    }
    image
}

#[test]
fn a_kernel_with_its_ramdisk_and_name_keeps_the_pc_layout() {
    let mut config = config(2, &[(0, RAM, 0x7)]);
    config.cmdline = Some("console=ttyS0".into());
    let kernel = kernel();
    let images = MultibootImages {
        ramdisk: Some(&[0xaa; 0x1800]),
        kernel_name: Some("images/kernel"),
        ..MultibootImages::new(&kernel)
    };
    let plan = plan(&config, &images).unwrap();
    assert_eq!(plan.kernel.entry, 0x10_0020);
    assert_eq!(plan.cmdline, "images/kernel console=ttyS0");
    let ramdisk = plan.ramdisk.unwrap();
    assert_eq!((ramdisk.gpa.as_u64(), ramdisk.size), (RAM - 0x2000, 0x1800));
    assert_eq!(plan.layout.tables, (GDT_START, GDT_END));
    assert_eq!(plan.layout.boot_info, (BOOT_INFO_START, BOOT_INFO_END));
    assert_eq!(
        plan.layout.stack,
        Some((MULTIBOOT_STACK_START, MULTIBOOT_STACK_END))
    );
    let occupied = plan.occupied(&[]);
    assert_eq!(occupied[..2], [(0x10_0000, 0x100), (RAM - 0x2000, 0x1800)]);
    assert_eq!(occupied.len(), 2 + BOOT_DATA.len(), "{occupied:?}");
}

#[test]
fn another_image_over_the_mp_table_moves_it() {
    let config = config(1, &[(0, RAM, 0x7)]);
    let kernel = kernel();
    let bios = [0u8; 0x800];
    let others = [(
        "kernel.bios_load_addr",
        GuestPhysAddr::new(MPTABLE_START),
        &bios[..],
    )];
    let images = MultibootImages {
        others: &others,
        ..MultibootImages::new(&kernel)
    };
    let plan = plan(&config, &images).unwrap();
    let (start, end) = plan.layout.mptable.unwrap();
    assert_eq!(start, MPTABLE_START + 0x800, "right after the image");
    assert!(end <= 0x10_0000 && (start, end) != (MPTABLE_START, MPTABLE_END));
    assert!(plan
        .occupied(&others)
        .contains(&(MPTABLE_START, bios.len() as u64)));
}

#[test]
fn what_cannot_be_loaded_is_refused_with_the_field_named() {
    let pc = config(1, &[(0, RAM, 0x7)]);
    let not_multiboot = [0u8; 0x100];
    let err = plan(&pc, &MultibootImages::new(&not_multiboot)).unwrap_err();
    assert_eq!(err.field(), Some("kernel.kernel_path"));
    let mut long = pc.clone();
    long.cmdline = Some("x".repeat(0x10_0000));
    let kernel = kernel();
    let err = plan(&long, &MultibootImages::new(&kernel)).unwrap_err();
    assert_eq!(err.field(), Some("kernel.cmdline"));
    assert!(err.to_string().contains("shorten it"), "{err}");
    let no_kernel_ram = config(1, &[(0, 0x1_0000, 0x7)]);
    let err = plan(&no_kernel_ram, &MultibootImages::new(&kernel)).unwrap_err();
    assert!(
        err.field()
            .is_some_and(|f| f.starts_with("kernel.kernel_path")),
        "{err}"
    );
    assert!(
        err.to_string().contains("not inside any memory region"),
        "{err}"
    );
}
