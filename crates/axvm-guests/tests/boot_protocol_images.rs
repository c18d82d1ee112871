//! Checks the Multiboot and PVH guest images (`multiboot`, `multiboot-low`, `pvh`, its
//! ELF32 form `pvh-elf32`, `pvh-lowhdr`, and `virtio` and `hpet`, which boot through PVH
//! too) without running them: the headers and notes a VMM (axvm or QEMU) detects them by,
//! their configs, and that their 64-bit code has no SSE.

use axvm_guests::{
    HPET, HPET_CONFIG, HPET_PATH, MULTIBOOT, MULTIBOOT_CONFIG, MULTIBOOT_LOW, MULTIBOOT_LOW_PATH,
    MULTIBOOT_PATH, PVH, PVH_CONFIG, PVH_ELF32, PVH_ELF32_PATH, PVH_LOWHDR, PVH_LOWHDR_PATH,
    PVH_PATH, RAMDISK, VIRTIO, VIRTIO_CONFIG, VIRTIO_PATH,
};

/// Where both images are linked and loaded.
const LOAD_ADDR: u32 = 0x10_0000;
const MULTIBOOT_MAGIC: u32 = 0x1bad_b002;
/// Multiboot header flag: the address fields (a.out kludge) are valid.
const AOUT_KLUDGE: u32 = 1 << 16;
/// ELF note type of the PVH 32-bit entry point.
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;

fn u16_at(image: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes(image[offset..offset + 2].try_into().unwrap())
}

fn u32_at(image: &[u8], offset: usize) -> u32 {
    u32::from_le_bytes(image[offset..offset + 4].try_into().unwrap())
}

fn u64_at(image: &[u8], offset: usize) -> u64 {
    u64::from_le_bytes(image[offset..offset + 8].try_into().unwrap())
}

/// The Multiboot header: offset in the file and its fields from the magic
/// on (magic, flags, checksum, header_addr, load_addr, load_end_addr,
/// bss_end_addr, entry_addr, then the guest's own text range).
fn multiboot_header() -> (usize, [u32; 10]) {
    let offset = (0..8192.min(MULTIBOOT.len() - 40))
        .step_by(4)
        .find(|&o| u32_at(MULTIBOOT, o) == MULTIBOOT_MAGIC)
        .expect("no Multiboot magic in the first 8 KiB at a 4-byte boundary");
    let mut fields = [0; 10];
    for (i, field) in fields.iter_mut().enumerate() {
        *field = u32_at(MULTIBOOT, offset + 4 * i);
    }
    (offset, fields)
}

fn multiboot_header_describes_the_flat_image() {
    assert_ne!(
        &MULTIBOOT[..4],
        b"\x7fELF",
        "the Multiboot guest must be a flat binary"
    );
    let (offset, [magic, flags, checksum, header, load, load_end, bss_end, entry, ..]) =
        multiboot_header();
    assert_eq!(
        magic.wrapping_add(flags).wrapping_add(checksum),
        0,
        "header checksum"
    );
    assert_ne!(
        flags & AOUT_KLUDGE,
        0,
        "flags {flags:#x} lack the a.out kludge bit"
    );
    assert_eq!(
        flags & 0xfffc,
        0,
        "flags {flags:#x} ask for more than page-aligned modules and memory info"
    );
    assert_eq!(load, LOAD_ADDR, "load_addr");
    assert_eq!(
        header - load,
        offset as u32,
        "header_addr - load_addr must be the header's file offset"
    );
    assert_eq!(
        (load_end - load) as usize,
        MULTIBOOT.len(),
        "load_end_addr must cover exactly the file"
    );
    assert!(
        bss_end >= load_end,
        "bss_end_addr {bss_end:#x} below load_end_addr {load_end:#x}"
    );
    assert!(
        (load..load_end).contains(&entry),
        "entry_addr {entry:#x} outside the loaded image"
    );
    // The real-mode stub a VMM that ignores the header would run: `cli` first.
    assert_eq!(
        MULTIBOOT[0], 0xfa,
        "the image must start with its real-mode stub (cli)"
    );
}

fn pvh_images_are_elf64_with_one_xen_entry_note() {
    check_pvh_image(PVH);
    check_pvh_image(VIRTIO);
    check_pvh_image(HPET);
}

fn check_pvh_image(image: &[u8]) {
    assert_eq!(&image[..4], b"\x7fELF", "not an ELF file");
    assert_eq!(image[4], 2, "not ELF64");
    assert_eq!(u16_at(image, 18), 62, "not x86-64");
    let entry = u64_at(image, 24);
    assert!(
        entry >= u64::from(LOAD_ADDR),
        "ELF entry {entry:#x} below 1 MiB"
    );

    let phoff = u64_at(image, 32) as usize;
    let phentsize = usize::from(u16_at(image, 54));
    let phnum = usize::from(u16_at(image, 56));
    let mut notes = Vec::new();
    let mut text = None;
    for index in 0..phnum {
        let ph = phoff + index * phentsize;
        let kind = u32_at(image, ph);
        let (offset, vaddr, paddr) = (
            u64_at(image, ph + 8),
            u64_at(image, ph + 16),
            u64_at(image, ph + 24),
        );
        let (filesz, memsz, align) = (
            u64_at(image, ph + 32),
            u64_at(image, ph + 40),
            u64_at(image, ph + 48),
        );
        match kind {
            PT_LOAD => {
                assert_eq!(paddr, vaddr, "segment {index}: p_paddr != p_vaddr");
                assert!(
                    vaddr >= u64::from(LOAD_ADDR) && vaddr + memsz <= 0x800_0000,
                    "segment {index} outside RAM"
                );
                assert!(
                    filesz <= memsz && offset + filesz <= image.len() as u64,
                    "segment {index} sizes"
                );
                if u32_at(image, ph + 4) & 1 != 0 {
                    text = Some(vaddr..vaddr + filesz);
                }
            }
            PT_NOTE => {
                // QEMU pads the note name to p_align; the note is laid out for 4.
                assert_eq!(align, 4, "PT_NOTE alignment");
                notes.push((offset as usize, filesz as usize));
            }
            other => panic!("unexpected program header type {other:#x}"),
        }
    }
    // linux-loader keeps only the last PT_NOTE's result: there must be one.
    assert_eq!(notes.len(), 1, "exactly one PT_NOTE");
    let (offset, size) = notes[0];
    assert_eq!(
        size, 24,
        "one note: 12-byte header, \"Xen\\0\", an 8-byte descriptor"
    );
    assert_eq!(u32_at(image, offset), 4, "namesz");
    assert_eq!(u32_at(image, offset + 4), 8, "descsz");
    assert_eq!(
        u32_at(image, offset + 8),
        XEN_ELFNOTE_PHYS32_ENTRY,
        "note type"
    );
    assert_eq!(&image[offset + 12..offset + 16], b"Xen\0", "note name");
    let pvh_entry = u64_at(image, offset + 16);
    let text = text.expect("no executable segment");
    assert!(
        text.contains(&pvh_entry),
        "PVH entry {pvh_entry:#x} not in the code segment {text:x?}"
    );
    assert_ne!(
        pvh_entry, entry,
        "the PVH entry must differ from the (64-bit) ELF entry"
    );
}

/// `multiboot-low` is the Multiboot image's program at 0x9000: its header's addresses say
/// so and the file is as long. `pvh-lowhdr` is the PVH image with one more PT_LOAD: its
/// ELF and program headers (file offset 0), read-only, at 0xff000, below the text at 1 MiB.
fn the_low_images_load_below_1_mib_as_they_say() {
    let offset = (0..8192)
        .step_by(4)
        .find(|&o| u32_at(MULTIBOOT_LOW, o) == MULTIBOOT_MAGIC)
        .expect("no Multiboot magic in multiboot-low");
    let field = |index: usize| u32_at(MULTIBOOT_LOW, offset + 4 * index);
    assert_eq!(field(4), 0x9000, "load_addr");
    assert_eq!(field(3) - field(4), offset as u32, "header_addr");
    assert_eq!((field(5) - field(4)) as usize, MULTIBOOT_LOW.len());
    assert_eq!(MULTIBOOT_LOW.len(), MULTIBOOT.len(), "the same program");

    let image = PVH_LOWHDR;
    let (phoff, phnum) = (u64_at(image, 32) as usize, u16_at(image, 56) as usize);
    let loads: Vec<(u32, u64, u64, u64)> = (0..phnum)
        .map(|index| phoff + 56 * index)
        .filter(|&at| u32_at(image, at) == 1)
        .map(|at| {
            let flags = u32_at(image, at + 4);
            (
                flags,
                u64_at(image, at + 8),
                u64_at(image, at + 24),
                u64_at(image, at + 40),
            )
        })
        .collect();
    let (flags, file_offset, paddr, memsz) = loads[0];
    assert_eq!((flags, file_offset, paddr), (4, 0, 0xf_f000), "{loads:x?}");
    assert!(
        memsz as usize >= phoff + 56 * phnum,
        "it holds the headers: {loads:x?}"
    );
    assert!(paddr + memsz <= u64::from(LOAD_ADDR), "{loads:x?}");
    assert_eq!(
        loads[1].2,
        u64::from(LOAD_ADDR),
        "the text at 1 MiB: {loads:x?}"
    );
}

/// A program header's (type, offset, vaddr, paddr, filesz, memsz, flags, align).
type Phdr = (u32, u64, u64, u64, u64, u64, u32, u64);

/// The program headers of an ELF64 or ELF32 image, widened.
fn program_headers(image: &[u8]) -> Vec<Phdr> {
    let elf64 = image[4] == 2;
    let (phoff, phentsize, phnum) = if elf64 {
        (
            u64_at(image, 32) as usize,
            u16_at(image, 54),
            u16_at(image, 56),
        )
    } else {
        (
            u32_at(image, 28) as usize,
            u16_at(image, 42),
            u16_at(image, 44),
        )
    };
    (0..usize::from(phnum))
        .map(|index| {
            let ph = phoff + index * usize::from(phentsize);
            let word = |i: usize| u64::from(u32_at(image, ph + 4 * i));
            if elf64 {
                let field = |i: usize| u64_at(image, ph + 8 + 8 * i);
                let flags = u32_at(image, ph + 4);
                let kind = u32_at(image, ph);
                (
                    kind,
                    field(0),
                    field(1),
                    field(2),
                    field(3),
                    field(4),
                    flags,
                    field(5),
                )
            } else {
                let flags = word(6) as u32;
                (
                    word(0) as u32,
                    word(1),
                    word(2),
                    word(3),
                    word(4),
                    word(5),
                    flags,
                    word(7),
                )
            }
        })
        .collect()
}

fn the_elf32_pvh_image_is_the_pvh_guest_as_i386_elf32() {
    let image = PVH_ELF32;
    assert_eq!(&image[..4], b"\x7fELF");
    assert_eq!(image[4], 1, "not ELF32");
    assert_eq!(u16_at(image, 18), 3, "not i386");
    assert_eq!(u32_at(image, 32), 0, "no section headers");
    assert_eq!(
        u64::from(u32_at(image, 24)),
        u64_at(PVH, 24),
        "same ELF entry"
    );
    let (ours, theirs) = (program_headers(image), program_headers(PVH));
    assert_eq!(ours, theirs, "the same program headers");
    // Each segment's file bytes are the ELF64's, so the note and its entry are too.
    for (_, offset, _, _, filesz, ..) in ours {
        let range = offset as usize..(offset + filesz) as usize;
        assert_eq!(
            image[range.clone()],
            PVH[range],
            "segment at file offset {offset:#x}"
        );
    }
}

fn paths_hold_the_embedded_images() {
    for (path, image) in [
        (MULTIBOOT_PATH, MULTIBOOT),
        (MULTIBOOT_LOW_PATH, MULTIBOOT_LOW),
        (PVH_PATH, PVH),
        (PVH_LOWHDR_PATH, PVH_LOWHDR),
        (PVH_ELF32_PATH, PVH_ELF32),
        (VIRTIO_PATH, VIRTIO),
        (HPET_PATH, HPET),
    ] {
        let on_disk = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(on_disk, image, "{path} differs from the embedded image");
    }
}

fn configs_name_their_images_the_ramdisk_and_a_command_line() {
    for (config, image, cpus) in [(MULTIBOOT_CONFIG, "multiboot", 4), (PVH_CONFIG, "pvh", 2)] {
        for line in [
            format!("kernel_path = \"{image}\""),
            "ramdisk_path = \"ramdisk\"".to_string(),
            "cmdline = \"console=ttyS0 axvm-compat\"".to_string(),
            format!("cpu_num = {cpus}"),
            "[0x0, 0x800_0000, 0x7, 0]".to_string(),
        ] {
            assert!(config.contains(&line), "{image}.toml lacks `{line}`");
        }
    }
    assert_eq!(&RAMDISK[..6], b"AXVMRD", "the test ramdisk's magic");
}

/// Runs objdump; skips the test when it is not installed.
fn objdump(args: &[&str]) -> String {
    match std::process::Command::new("objdump").args(args).output() {
        Ok(output) if output.status.success() => {
            String::from_utf8_lossy(&output.stdout).into_owned()
        }
        Ok(output) => panic!(
            "objdump {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(e) => axvm_test_harness::skip(format!("needs objdump (binutils): {e}")),
    }
}

fn assert_no_sse(what: &str, disassembly: &str) {
    let instructions = disassembly.lines().filter(|l| l.contains(":\t")).count();
    assert!(
        instructions > 100,
        "{what}: only {instructions} instructions disassembled"
    );
    let sse: Vec<&str> = disassembly
        .lines()
        .filter(|l| {
            l.contains("xmm") || l.contains("ymm") || l.contains("zmm") || l.contains("(bad)")
        })
        .collect();
    assert!(
        sse.is_empty(),
        "{what} contains SSE/AVX (or undecodable) instructions:\n{}",
        sse.join("\n")
    );
}

/// KVM's instruction emulator (which runs CPL0 guest code on nested hosts)
/// cannot execute SSE. Only the 64-bit code is disassembled (as 64-bit): the
/// 16- and 32-bit entry code would decode as nonsense. The Multiboot image
/// records its 64-bit range right after its Multiboot header; the PVH image
/// keeps it in `.text` (16/32-bit code is in `.boot`).
fn boot_protocol_guests_contain_no_sse() {
    let (_, fields) = multiboot_header();
    let (load, start, stop) = (fields[4], fields[8], fields[9]);
    assert!(
        load < start && start < stop && (stop - load) as usize <= MULTIBOOT.len(),
        "64-bit range {start:#x}..{stop:#x}"
    );
    let start_arg = format!("--start-address={:#x}", start - load);
    let stop_arg = format!("--stop-address={:#x}", stop - load);
    let flat = objdump(&[
        "-D",
        "-b",
        "binary",
        "-m",
        "i386:x86-64",
        "-M",
        "intel",
        &start_arg,
        &stop_arg,
        MULTIBOOT_PATH,
    ]);
    assert_no_sse(MULTIBOOT_PATH, &flat);
    for path in [PVH_PATH, PVH_LOWHDR_PATH, VIRTIO_PATH, HPET_PATH] {
        let elf = objdump(&["-d", "-j", ".text", "-M", "intel", path]);
        assert_no_sse(path, &elf);
    }
}

/// The virtio config: the PVH image, a command line without device addresses (axvm appends
/// the `virtio_mmio.device=` entries), the three virtio rows with their emu_types and the
/// backends keyed by the rows' names.
fn virtio_config_names_its_image_devices_and_backends() {
    for line in [
        "kernel_path = \"virtio\"",
        "cmdline = \"console=ttyS0\"",
        "cpu_num = 1",
        "[0x0, 0x800_0000, 0x7, 0]",
        "[\"vda\",  0xd000_0000, 0x1000, 5, 0xE1, []]",
        "[\"net0\", 0xd000_1000, 0x1000, 6, 0xE2, []]",
        "[\"hvc0\", 0xd000_2000, 0x1000, 7, 0xE3, []]",
        "interrupt_mode = \"emu\"",
        "[devices.backends]",
        "vda = { path = \"disk.img\" }",
        "net0 = { net = \"switch:lan\" }",
    ] {
        assert!(VIRTIO_CONFIG.contains(line), "virtio.toml lacks `{line}`");
    }
}

/// The HPET config: its image, and the ArceOS hypervisor's x86 pass-through rows.
fn hpet_config_names_its_image_and_the_upstream_pass_through_rows() {
    for line in [
        "kernel_path = \"hpet\"",
        "cpu_num = 1",
        "[\"IO APIC\", 0xfec0_0000, 0xfec0_0000, 0x1000, 0x1]",
        "[\"Local APIC\", 0xfee0_0000, 0xfee0_0000, 0x1000, 0x1]",
        "[\"HPET\", 0xfed0_0000, 0xfed0_0000, 0x1000, 0x1]",
    ] {
        assert!(HPET_CONFIG.contains(line), "hpet.toml lacks `{line}`");
    }
}

axvm_test_harness::main!(
    hpet_config_names_its_image_and_the_upstream_pass_through_rows,
    multiboot_header_describes_the_flat_image,
    pvh_images_are_elf64_with_one_xen_entry_note,
    the_low_images_load_below_1_mib_as_they_say,
    the_elf32_pvh_image_is_the_pvh_guest_as_i386_elf32,
    paths_hold_the_embedded_images,
    configs_name_their_images_the_ramdisk_and_a_command_line,
    boot_protocol_guests_contain_no_sse,
    virtio_config_names_its_image_devices_and_backends,
);
