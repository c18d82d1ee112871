//! Checks that the built guest images have the shape the VMM and its tests
//! rely on, without running them (running needs /dev/kvm and the VMM).

use axvm_guests::{
    ARM_DEMO, ARM_DEMO_CONFIG, ARM_DEMO_PATH, ARM_EXIT, ARM_EXITLOOP, ARM_EXITLOOP_CONFIG,
    ARM_EXITLOOP_PATH, ARM_EXIT_CONFIG, ARM_EXIT_PATH, ARM_TIMER, ARM_TIMER_CONFIG, ARM_TIMER_PATH,
    BZIMAGE, BZIMAGE_CONFIG, BZIMAGE_ELF_PATH, BZIMAGE_PATH, DEMO, DEMO_CONFIG, DEMO_PATH,
    EXITLOOP, EXITLOOP_CONFIG, EXITLOOP_COUNT_OFFSET, EXITLOOP_PATH, EXITLOOP_PORT_OFFSET,
    EXITLOOP_VALUE_OFFSET, RAMDISK, RAMDISK_PATH, REALMODE, REALMODE_CONFIG, REALMODE_PATH, ROM,
    ROM_CONFIG, ROM_PATH, TIMER, TIMER_CONFIG, TIMER_PATH, WAKEUP, WAKEUP_CONFIG, WAKEUP_PATH,
    WAKEUP_SMP_CONFIG,
};

/// Where rt/link64.ld places the 64-bit guests, and where their configs say
/// to enter.
const LOAD_ADDR: u64 = 0x20_0000;
/// End of guest RAM in demo.toml and rom.toml (the ROM page starts here).
const RAM_END: u64 = 0x100_0000;

fn u16_at(image: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(image[offset..offset + 2].try_into().unwrap())
}

fn u32_at(image: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(image[offset..offset + 4].try_into().unwrap())
}

fn u64_at(image: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(image[offset..offset + 8].try_into().unwrap())
}

/// ELF64 x86-64 executable, entered at its load address, made only of
/// page-aligned PT_LOAD segments with p_paddr = p_vaddr inside guest RAM.
fn check_elf(name: &str, image: &[u8]) {
    assert_eq!(&image[..4], b"\x7fELF", "{name}: not an ELF file");
    assert_eq!(image[4], 2, "{name}: not ELF64");
    assert_eq!(u16_at(image, 18), 62, "{name}: not x86-64");
    assert_eq!(u64_at(image, 24), LOAD_ADDR, "{name}: entry point");

    let phoff = u64_at(image, 32) as usize;
    let phentsize = usize::from(u16_at(image, 54));
    let phnum = usize::from(u16_at(image, 56));
    assert!(phnum > 0, "{name}: no program headers");
    let mut lowest = u64::MAX;
    for index in 0..phnum {
        let ph = phoff + index * phentsize;
        assert_eq!(
            u32_at(image, ph),
            1,
            "{name}: program header {index} is not PT_LOAD"
        );
        let (offset, vaddr, paddr) = (
            u64_at(image, ph + 8),
            u64_at(image, ph + 16),
            u64_at(image, ph + 24),
        );
        let (filesz, memsz) = (u64_at(image, ph + 32), u64_at(image, ph + 40));
        assert_eq!(paddr, vaddr, "{name}: segment {index} p_paddr != p_vaddr");
        assert_eq!(vaddr % 4096, 0, "{name}: segment {index} not page-aligned");
        assert_eq!(
            offset % 4096,
            0,
            "{name}: segment {index} file offset not page-aligned"
        );
        assert!(
            filesz <= memsz && offset + filesz <= image.len() as u64,
            "{name}: segment {index} sizes"
        );
        assert!(
            vaddr >= LOAD_ADDR && vaddr + memsz <= RAM_END,
            "{name}: segment {index} outside RAM"
        );
        lowest = lowest.min(vaddr);
    }
    assert_eq!(
        lowest, LOAD_ADDR,
        "{name}: image does not start at the entry point"
    );
}

fn long_mode_guests_are_elf64_at_the_load_address() {
    check_elf("demo", DEMO);
    check_elf("rom", ROM);
    check_elf("timer", TIMER);
    check_elf("wakeup", WAKEUP);
}

/// The Linux boot protocol's layout: one boot sector and one setup sector with the setup
/// header, then the protected-mode kernel (loaded at code32_start, 1 MiB), whose 64-bit
/// entry at +0x200 is the guest's `startup_64` (`mov [rip + BOOT_PARAMS], rsi`).
fn bzimage_guest_has_the_linux_setup_header() {
    let image = BZIMAGE;
    let setup_sects = usize::from(image[0x1f1]);
    assert_eq!(setup_sects, 1, "setup_sects");
    let kernel = &image[(setup_sects + 1) * 512..];
    assert_eq!(u16_at(image, 0x1fe), 0xaa55, "boot_flag");
    assert_eq!(image[0x200], 0xeb, "a short jump at 0x200");
    assert_eq!(&image[0x202..0x206], b"HdrS");
    assert!(u16_at(image, 0x206) >= 0x020c, "protocol 2.12 or later");
    assert_eq!(image[0x211] & 0x01, 0x01, "loadflags: LOADED_HIGH");
    assert_eq!(u32_at(image, 0x214), 0x10_0000, "code32_start");
    assert_eq!(image[0x234], 0, "relocatable_kernel");
    assert_eq!(u16_at(image, 0x236) & 0x1, 0x1, "xloadflags: XLF_KERNEL_64");
    assert!(u32_at(image, 0x238) > 0, "cmdline_size");
    assert_eq!(u64_at(image, 0x258), 0x10_0000, "pref_address");
    let syssize = u32_at(image, 0x1f4) as usize;
    assert_eq!(
        syssize,
        kernel.len().div_ceil(16),
        "syssize (16-byte units)"
    );
    let init_size = u32_at(image, 0x260) as usize;
    assert!(
        init_size >= kernel.len() && init_size.is_multiple_of(4096),
        "init_size {init_size:#x} for a {:#x}-byte kernel",
        kernel.len()
    );
    assert_eq!(
        &kernel[0x200..0x203],
        &[0x48, 0x89, 0x35],
        "startup_64 at +0x200"
    );
    let elf = std::fs::read(BZIMAGE_ELF_PATH).unwrap();
    assert_eq!(
        u64_at(&elf, 24),
        0x10_0200,
        "the ELF entry is the 64-bit entry"
    );
}

/// The test ramdisk: "AXVMRD", payload length, payload, byte sum of the payload.
fn test_ramdisk_is_well_formed() {
    assert_eq!(&RAMDISK[..6], b"AXVMRD");
    let len = u32_at(RAMDISK, 6) as usize;
    assert_eq!(RAMDISK.len(), 6 + 4 + len + 4);
    let sum = RAMDISK[10..10 + len]
        .iter()
        .fold(0u32, |sum, &b| sum.wrapping_add(u32::from(b)));
    assert_eq!(u32_at(RAMDISK, 10 + len), sum);
}

fn realmode_guest_is_a_raw_image() {
    assert_ne!(
        &REALMODE[..4],
        b"\x7fELF",
        "realmode must have no ELF header"
    );
    assert_eq!(REALMODE[0], 0xfa, "realmode must start with its code (cli)");
    assert!(
        REALMODE.len() < 0x1000,
        "realmode is {} bytes",
        REALMODE.len()
    );
    let message = b"axvm real-mode guest: hello\n";
    assert!(REALMODE.windows(message.len()).any(|w| w == message));
}

/// The exit-loop guest is exactly the listing in `guests/exitloop/src/main.rs`: the `exits`
/// benchmark rewrites its count, port and byte at the exported offsets, and every exit
/// figure assumes these instructions.
fn exitloop_guest_is_the_documented_loop() {
    let listing = [
        0xb9, 0x20, 0x4e, // mov $20000, %cx
        0xba, 0xff, 0x03, // mov $0x3ff, %dx
        0x30, 0xc0, // xor %al, %al
        0xee, // 1: out %al, (%dx)
        0xe2, 0xfd, // loop 1b
        0xb0, 0x00, // mov $0, %al
        0xe6, 0xf4, // out %al, $0xf4
        0xf4, // hlt
    ];
    assert_eq!(
        EXITLOOP, listing,
        "exitloop differs from its documented listing"
    );
    let u16_le = |offset: usize| u16::from_le_bytes([EXITLOOP[offset], EXITLOOP[offset + 1]]);
    assert_eq!(u16_le(EXITLOOP_COUNT_OFFSET), 20_000);
    assert_eq!(u16_le(EXITLOOP_PORT_OFFSET), 0x3ff);
    assert_eq!(EXITLOOP[EXITLOOP_VALUE_OFFSET..][..2], [0x30, 0xc0]);
}

fn paths_hold_the_embedded_images() {
    for (path, image) in [
        (DEMO_PATH, DEMO),
        (REALMODE_PATH, REALMODE),
        (EXITLOOP_PATH, EXITLOOP),
        (ROM_PATH, ROM),
        (TIMER_PATH, TIMER),
        (WAKEUP_PATH, WAKEUP),
        (BZIMAGE_PATH, BZIMAGE),
        (RAMDISK_PATH, RAMDISK),
        (ARM_DEMO_PATH, ARM_DEMO),
        (ARM_TIMER_PATH, ARM_TIMER),
        (ARM_EXIT_PATH, ARM_EXIT),
        (ARM_EXITLOOP_PATH, ARM_EXITLOOP),
    ] {
        let on_disk = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(on_disk, image, "{path} differs from the embedded image");
    }
}

/// Each config names its image by the file name of the matching `*_PATH`,
/// so a test can copy the image next to the config.
fn configs_name_their_images() {
    for (config, key, path) in [
        (DEMO_CONFIG, "kernel_path", DEMO_PATH),
        (REALMODE_CONFIG, "kernel_path", REALMODE_PATH),
        (EXITLOOP_CONFIG, "kernel_path", EXITLOOP_PATH),
        (ROM_CONFIG, "kernel_path", ROM_PATH),
        (TIMER_CONFIG, "kernel_path", TIMER_PATH),
        (WAKEUP_CONFIG, "kernel_path", WAKEUP_PATH),
        (WAKEUP_SMP_CONFIG, "kernel_path", WAKEUP_PATH),
        (BZIMAGE_CONFIG, "kernel_path", BZIMAGE_PATH),
        (BZIMAGE_CONFIG, "ramdisk_path", RAMDISK_PATH),
        (ARM_DEMO_CONFIG, "kernel_path", ARM_DEMO_PATH),
        (ARM_TIMER_CONFIG, "kernel_path", ARM_TIMER_PATH),
        (ARM_EXIT_CONFIG, "kernel_path", ARM_EXIT_PATH),
        (ARM_EXITLOOP_CONFIG, "kernel_path", ARM_EXITLOOP_PATH),
    ] {
        let file_name = std::path::Path::new(path)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let line = format!("{key} = \"{file_name}\"");
        assert!(config.contains(&line), "config for {path} lacks `{line}`");
    }
}

/// KVM's instruction emulator (which runs CPL0 guest code on nested hosts)
/// cannot execute SSE, so no guest may contain any. Needs objdump
/// (binutils); skipped without it.
fn long_mode_guests_contain_no_sse() {
    for path in [
        DEMO_PATH,
        ROM_PATH,
        TIMER_PATH,
        WAKEUP_PATH,
        BZIMAGE_ELF_PATH,
    ] {
        let output = match std::process::Command::new("objdump")
            .args(["-d", "-M", "intel", path])
            .output()
        {
            Ok(output) if output.status.success() => output,
            Ok(output) => panic!(
                "objdump -d {path} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => axvm_test_harness::skip(format!("needs objdump (binutils): {e}")),
        };
        let text = String::from_utf8_lossy(&output.stdout);
        let sse: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("xmm") || l.contains("ymm") || l.contains("zmm"))
            .collect();
        assert!(
            sse.is_empty(),
            "{path} contains SSE/AVX instructions:\n{}",
            sse.join("\n")
        );
    }
}

axvm_test_harness::main!(
    long_mode_guests_are_elf64_at_the_load_address,
    bzimage_guest_has_the_linux_setup_header,
    test_ramdisk_is_well_formed,
    realmode_guest_is_a_raw_image,
    exitloop_guest_is_the_documented_loop,
    paths_hold_the_embedded_images,
    configs_name_their_images,
    long_mode_guests_contain_no_sse,
);
