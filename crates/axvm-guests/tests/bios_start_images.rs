//! The images of the ArceOS hypervisor's x86 start have the shape the VMMs and tests rely
//! on, without running them: the BIOS stub (16-bit code for 0x8000 that enters the kernel at
//! 0x200000), QEMU's reset ROM for it, and the kernel, whose Multiboot header would make a
//! VMM detecting formats by content boot it as Multiboot.

use axvm_guests::{
    BIOSBOOT, BIOSBOOT_CONFIG, BIOSBOOT_PATH, BIOS_RESET_PATH, BIOS_STUB, BIOS_STUB_PATH,
};

const MULTIBOOT_MAGIC: u32 = 0x1bad_b002;
const KERNEL_LOAD: u32 = 0x20_0000;

fn u32_at(image: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(image[offset..offset + 4].try_into().unwrap())
}

/// The stub: real-mode code from its first byte (`cli`), small, and it loads ESP 0x7000,
/// EAX 0x2BADB002 and ECX 0x200000 (its jump target) in 32-bit code.
fn the_stub_is_raw_16_bit_code_that_enters_the_kernel() {
    assert_eq!(BIOS_STUB[0], 0xfa, "the stub starts with its code (cli)");
    assert!(BIOS_STUB.len() <= 0x200, "{} bytes", BIOS_STUB.len());
    for (what, bytes) in [
        ("mov $0x7000, %esp", [0xbc, 0x00, 0x70, 0x00, 0x00]),
        ("mov $0x2badb002, %eax", [0xb8, 0x02, 0xb0, 0xad, 0x2b]),
        ("mov $0x200000, %ecx", [0xb9, 0x00, 0x00, 0x20, 0x00]),
    ] {
        assert!(
            BIOS_STUB.windows(5).any(|w| w == bytes),
            "no `{what}` in the stub"
        );
    }
}

/// QEMU's `-bios` image: 64 KiB, `cli; ljmp $0, $0x8000` at the reset vector (offset
/// 0xfff0, which QEMU maps at 0xfffffff0).
fn the_reset_rom_jumps_to_the_stub() {
    let rom = std::fs::read(BIOS_RESET_PATH).unwrap();
    assert_eq!(rom.len(), 0x1_0000);
    assert_eq!(rom[0xfff0..0xfff6], [0xfa, 0xea, 0x00, 0x80, 0x00, 0x00]);
}

/// The kernel: code first (the stub's jump target), then an a.out-kludge Multiboot header
/// with a valid checksum loading the image at 0x200000 and entering it elsewhere.
fn the_kernel_has_code_first_and_a_multiboot_header() {
    let offset = (0..8192.min(BIOSBOOT.len() - 40))
        .step_by(4)
        .find(|&at| u32_at(BIOSBOOT, at) == MULTIBOOT_MAGIC)
        .expect("a Multiboot header in the first 8 KiB");
    assert!(offset > 0, "code comes first, at the stub's jump target");
    let field = |index: usize| u32_at(BIOSBOOT, offset + 4 * index);
    assert_eq!(
        MULTIBOOT_MAGIC
            .wrapping_add(field(1))
            .wrapping_add(field(2)),
        0
    );
    assert_eq!(field(1) & (1 << 16), 1 << 16, "the a.out kludge");
    assert_eq!(field(4), KERNEL_LOAD, "load_addr");
    assert_ne!(
        field(7),
        KERNEL_LOAD,
        "entry_addr is not the stub's jump target"
    );
}

/// The 64-bit code (its range follows the Multiboot header) has no SSE, which KVM's
/// instruction emulator cannot run at CPL0. Needs objdump (binutils).
fn the_kernel_contains_no_sse() {
    let offset = (0..8192)
        .step_by(4)
        .find(|&at| u32_at(BIOSBOOT, at) == MULTIBOOT_MAGIC)
        .unwrap();
    let (start, stop) = (u32_at(BIOSBOOT, offset + 32), u32_at(BIOSBOOT, offset + 36));
    assert!(KERNEL_LOAD < start && start < stop, "{start:#x}..{stop:#x}");
    let output = std::process::Command::new("objdump")
        .args(["-D", "-b", "binary", "-m", "i386:x86-64"])
        .arg(format!("--start-address={:#x}", start - KERNEL_LOAD))
        .arg(format!("--stop-address={:#x}", stop - KERNEL_LOAD))
        .arg(BIOSBOOT_PATH)
        .output()
        .unwrap_or_else(|e| axvm_test_harness::skip(format!("needs objdump (binutils): {e}")));
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let instructions = text.lines().filter(|l| l.contains(":\t")).count();
    assert!(instructions > 100, "only {instructions} instructions");
    let sse: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("xmm") || l.contains("ymm") || l.contains("(bad)"))
        .collect();
    assert!(sse.is_empty(), "SSE in biosboot:\n{}", sse.join("\n"));
}

/// The paths hold the embedded images, and the config names them as axvisor's x86 configs
/// do: entry_point and bios_load_addr 0x8000, the kernel at 0x200000.
fn the_config_names_the_images_at_axvisors_addresses() {
    for (path, image) in [(BIOS_STUB_PATH, BIOS_STUB), (BIOSBOOT_PATH, BIOSBOOT)] {
        assert_eq!(std::fs::read(path).unwrap(), image, "{path}");
    }
    for line in [
        "entry_point = 0x8000",
        "image_location = \"memory\"",
        "kernel_path = \"biosboot\"",
        "kernel_load_addr = 0x20_0000",
        "bios_path = \"bios-stub\"",
        "bios_load_addr = 0x8000",
        "interrupt_mode = \"passthrough\"",
    ] {
        assert!(BIOSBOOT_CONFIG.contains(line), "no `{line}` in the config");
    }
}

axvm_test_harness::main!(
    the_stub_is_raw_16_bit_code_that_enters_the_kernel,
    the_reset_rom_jumps_to_the_stub,
    the_kernel_has_code_first_and_a_multiboot_header,
    the_kernel_contains_no_sse,
    the_config_names_the_images_at_axvisors_addresses,
);
