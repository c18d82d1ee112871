//! Checks that the built guest images have the shape the VMM and its tests
//! rely on, without running them (running needs /dev/kvm and the VMM).

use axvm_guests::{
    DEMO, DEMO_CONFIG, DEMO_PATH, REALMODE, REALMODE_CONFIG, REALMODE_PATH, ROM, ROM_CONFIG,
    ROM_PATH,
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

#[test]
fn long_mode_guests_are_elf64_at_the_load_address() {
    check_elf("demo", DEMO);
    check_elf("rom", ROM);
}

#[test]
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

#[test]
fn paths_hold_the_embedded_images() {
    for (path, image) in [
        (DEMO_PATH, DEMO),
        (REALMODE_PATH, REALMODE),
        (ROM_PATH, ROM),
    ] {
        let on_disk = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(on_disk, image, "{path} differs from the embedded image");
    }
}

/// Each config names its image by the file name of the matching `*_PATH`,
/// so a test can copy the image next to the config.
#[test]
fn configs_name_their_images() {
    for (config, path) in [
        (DEMO_CONFIG, DEMO_PATH),
        (REALMODE_CONFIG, REALMODE_PATH),
        (ROM_CONFIG, ROM_PATH),
    ] {
        let file_name = std::path::Path::new(path)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap();
        let line = format!("kernel_path = \"{file_name}\"");
        assert!(config.contains(&line), "config for {path} lacks `{line}`");
    }
}

/// KVM's instruction emulator (which runs CPL0 guest code on nested hosts)
/// cannot execute SSE, so no guest may contain any. Needs objdump
/// (binutils); skipped without it.
#[test]
fn long_mode_guests_contain_no_sse() {
    for path in [DEMO_PATH, ROM_PATH] {
        let output = match std::process::Command::new("objdump")
            .args(["-d", "-M", "intel", path])
            .output()
        {
            Ok(output) if output.status.success() => output,
            Ok(output) => panic!(
                "objdump -d {path} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => {
                eprintln!("skipping the SSE check: cannot run objdump: {e}");
                return;
            }
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
