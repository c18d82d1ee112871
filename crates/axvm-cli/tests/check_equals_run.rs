//! `axvm check` refuses exactly what `axvm run` refuses, in the same words: one table of
//! configs (with their images), each given to both commands. For a refused case, `run`
//! must exit 1 with one line naming the expected field, and `check` must exit 1 with a
//! `[FAIL]` line holding `run`'s reason; for an accepted case both must succeed. The table
//! holds the refusals of `bad_configs.rs` and of axvm-kvm's `refused.rs`, and the gaps
//! `check` once had (issue 10, item 5): pass-through page offsets and host-address
//! conflicts, BIOS/DTB/ramdisk that do not fit or have no load address, a command line
//! larger than the boot data area, a malformed PT_NOTE, regions without READ, above the
//! host's address width, or more than KVM's memory slots; kernels below 1 MiB (issue 11,
//! item 3), accepted unless they leave the firmware tables no room; and the ArceOS
//! hypervisor's BIOS start (issue 14, item 2), accepted, and refused for a kernel that does
//! not fit at its load address.

mod common;

use std::path::Path;

use common::{axvm, replace, require_kvm, Output, Scratch};

/// One config and its files, and what `run` must say of it.
struct Case {
    name: &'static str,
    config: String,
    files: Vec<(&'static str, Vec<u8>)>,
    /// The field `run`'s refusal names; `None` when both commands must accept the config.
    field: Option<&'static str>,
}

const RAM_ROW: &str = "[0x0, 0x10_0000, 0x7, 0],";
const LOAD_LINE: &str = "kernel_load_addr = 0x8000";
const NO_PASS_THROUGH: &str = "passthrough_devices = []";

fn realmode_image() -> Vec<u8> {
    axvm_guests::REALMODE.to_vec()
}

/// The real-mode guest with `edits` (from, to) applied to its config.
fn realmode(name: &'static str, edits: &[(&str, &str)], field: Option<&'static str>) -> Case {
    let config = edits.iter().fold(
        axvm_guests::REALMODE_CONFIG.to_string(),
        |text, (from, to)| replace(&text, from, to),
    );
    Case {
        name,
        config,
        files: vec![("realmode", realmode_image())],
        field,
    }
}

/// [`realmode`] with extra files.
fn realmode_with_files(
    name: &'static str,
    edits: &[(&str, &str)],
    files: Vec<(&'static str, Vec<u8>)>,
    field: &'static str,
) -> Case {
    let mut case = realmode(name, edits, Some(field));
    case.files.extend(files);
    case
}

/// An x86-64 ELF executable: one PT_LOAD of `memsz` bytes at `paddr` (16 `hlt`s of file
/// bytes), entered at `entry`, and a PT_NOTE holding `notes` when given.
fn elf64(paddr: u64, memsz: u64, entry: u64, notes: Option<&[u8]>) -> Vec<u8> {
    let phnum: u16 = if notes.is_some() { 2 } else { 1 };
    let code_offset = 64 + 56 * u64::from(phnum);
    let code = [0xf4u8; 16];
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&entry.to_le_bytes());
    elf.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    for half in [64u16, 56, phnum, 64, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    let mut phdr = |kind: u32, offset: u64, addr: u64, filesz: u64, memsz: u64| {
        elf.extend_from_slice(&kind.to_le_bytes());
        elf.extend_from_slice(&7u32.to_le_bytes()); // RWX
        for word in [offset, addr, addr, filesz, memsz, 0x1000] {
            elf.extend_from_slice(&word.to_le_bytes());
        }
    };
    phdr(1, code_offset, paddr, code.len() as u64, memsz);
    if let Some(notes) = notes {
        let at = code_offset + code.len() as u64;
        phdr(4, at, 0, notes.len() as u64, 0);
    }
    elf.extend_from_slice(&code);
    elf.extend_from_slice(notes.unwrap_or_default());
    elf
}

/// 16 MiB of RAM from 0, entries at 0x20_0000, the kernel `kernel.elf`.
fn elf_case(name: &'static str, image: Vec<u8>, field: &'static str) -> Case {
    elf_case_with(name, image, &[], Vec::new(), field)
}

fn elf_case_with(
    name: &'static str,
    image: Vec<u8>,
    edits: &[(&str, &str)],
    mut files: Vec<(&'static str, Vec<u8>)>,
    field: &'static str,
) -> Case {
    let mut all = vec![
        ("kernel_path = \"realmode\"", "kernel_path = \"kernel.elf\""),
        ("entry_point = 0x8000", "entry_point = 0x20_0000"),
        (LOAD_LINE, "kernel_load_addr = 0x20_0000"),
        (RAM_ROW, "[0x0, 0x100_0000, 0x7, 0],"),
    ];
    all.extend_from_slice(edits);
    let mut case = realmode(name, &all, Some(field));
    files.push(("kernel.elf", image));
    case.files = files;
    case
}

/// The PVH guest (a boot protocol: it gets the command line) with its ramdisk.
fn pvh(name: &'static str, cmdline: &str, field: Option<&'static str>) -> Case {
    let config = replace(
        axvm_guests::PVH_CONFIG,
        "cmdline = \"console=ttyS0 axvm-compat\"",
        &format!("cmdline = \"{cmdline}\""),
    );
    Case {
        name,
        config,
        files: vec![
            ("pvh", axvm_guests::PVH.to_vec()),
            ("ramdisk", axvm_guests::RAMDISK.to_vec()),
        ],
        field,
    }
}

/// A PVH entry note naming `entry`.
fn pvh_note(entry: u64) -> Vec<u8> {
    let mut note = Vec::new();
    for word in [4u32, 8, 18] {
        note.extend_from_slice(&word.to_le_bytes()); // namesz, descsz, PHYS32_ENTRY
    }
    note.extend_from_slice(b"Xen\0");
    note.extend_from_slice(&entry.to_le_bytes());
    note
}

/// A guest whose config names `image` (copied there) instead of `from`, with its ramdisk.
fn low_guest(name: &'static str, config: &str, from: &str, image: (&'static str, &[u8])) -> Case {
    let config = replace(
        config,
        &format!("kernel_path = \"{from}\""),
        &format!("kernel_path = \"{}\"", image.0),
    );
    Case {
        name,
        config,
        files: vec![
            (image.0, image.1.to_vec()),
            ("ramdisk", axvm_guests::RAMDISK.to_vec()),
        ],
        field: None,
    }
}

/// Kernels below 1 MiB (issue 11, item 3): accepted where axvm's data can move around them,
/// refused where they leave the ACPI tables no room in 0xe0000-0xfffff.
fn low_memory_cases() -> Vec<Case> {
    let over_bios_area = elf64(0xd_0000, 0x4_0000, 0xd_0000, Some(&pvh_note(0xd_0000)));
    vec![
        low_guest(
            "Multiboot kernel linked at 0x9000",
            axvm_guests::MULTIBOOT_CONFIG,
            "multiboot",
            ("multiboot-low", axvm_guests::MULTIBOOT_LOW),
        ),
        low_guest(
            "PVH kernel with its ELF headers at 0xff000",
            axvm_guests::PVH_CONFIG,
            "pvh",
            ("pvh-lowhdr", axvm_guests::PVH_LOWHDR),
        ),
        elf_case(
            "PVH kernel over all of 0xe0000-0xfffff",
            over_bios_area,
            "kernel.kernel_path",
        ),
    ]
}

/// The refusals of `bad_configs.rs`.
fn bad_configs_cases() -> Vec<Case> {
    vec![
        realmode(
            "overlapping regions",
            &[(
                RAM_ROW,
                "[0x0, 0x10_0000, 0x7, 0], [0x8_0000, 0x10_0000, 0x7, 0],",
            )],
            Some("kernel.memory_regions[1]"),
        ),
        realmode(
            "DEVICE flag on RAM",
            &[(RAM_ROW, "[0x0, 0x10_0000, 0x17, 0],")],
            Some("kernel.memory_regions[0]"),
        ),
        realmode(
            "entry outside RAM",
            &[("entry_point = 0x8000", "entry_point = 0x20_0000")],
            Some("kernel.entry_point"),
        ),
        realmode(
            "phys_cpu_ids longer than cpu_num",
            &[("phys_cpu_ids = [0]", "phys_cpu_ids = [0, 1]")],
            Some("base.phys_cpu_ids"),
        ),
        realmode(
            "no vCPU",
            &[("cpu_num = 1", "cpu_num = 0")],
            Some("base.cpu_num"),
        ),
        realmode(
            "unknown interrupt mode",
            &[("interrupt_mode = \"no_irq\"", "interrupt_mode = \"msi\"")],
            Some("devices.interrupt_mode"),
        ),
        realmode(
            "unknown key",
            &[("cpu_num = 1\n", "cpu_num = 1\ncolour = \"blue\"\n")],
            Some("unknown field `colour`"),
        ),
        realmode(
            "wrong type",
            &[("cpu_num = 1", "cpu_num = \"two\"")],
            Some("invalid type"),
        ),
        realmode(
            "missing kernel file",
            &[(
                "kernel_path = \"realmode\"",
                "kernel_path = \"no-such.bin\"",
            )],
            Some("kernel.kernel_path"),
        ),
        Case {
            name: "raw image larger than its region",
            config: replace(
                &replace(
                    axvm_guests::REALMODE_CONFIG,
                    RAM_ROW,
                    "[0x0, 0x1_0000, 0x7, 0],",
                ),
                "kernel_path = \"realmode\"",
                "kernel_path = \"big.bin\"",
            ),
            files: vec![("big.bin", vec![0xf4; 0x9000])],
            field: Some("kernel.kernel_load_addr"),
        },
        realmode(
            "emu_type axvm does not emulate",
            &[(
                "emu_devices = []",
                "emu_devices = [[\"blk\", 0xfeb0_0000, 0x1000, 0, 0xE1, []]]",
            )],
            Some("devices.emu_devices[0] (blk)"),
        ),
        realmode(
            "GIC type axvm does not emulate",
            &[(
                "emu_devices = []",
                "emu_devices = [[\"gic\", 0xfeb0_0000, 0x1000, 0, 0x21, []]]",
            )],
            Some("devices.emu_devices[0] (gic)"),
        ),
    ]
}

/// The refusals of axvm-kvm's `refused.rs`, as config files.
fn refused_rs_cases() -> Vec<Case> {
    let good = elf64(0x20_0000, 0x1000, 0x20_0000, None);
    let mut class32 = good.clone();
    class32[4] = 1;
    let mut aarch64 = good.clone();
    aarch64[18] = 183;
    let truncated_segment = good[..good.len() - 4].to_vec();
    let field = "kernel.kernel_path";
    vec![
        elf_case(
            "ELF segment past RAM",
            elf64(0x200_0000, 0x1000, 0x20_0000, None),
            field,
        ),
        elf_case(
            "ELF segment running out of RAM",
            elf64(0xff_f000, 0x2000, 0xff_f000, None),
            field,
        ),
        elf_case(
            "ELF segment over the page tables",
            elf64(0x2000, 0x1000, 0x2000, None),
            field,
        ),
        elf_case(
            "ELF entry outside RAM",
            elf64(0x20_0000, 0x1000, 0x4000_0000, None),
            field,
        ),
        elf_case("32-bit ELF", class32, field),
        elf_case("aarch64 ELF", aarch64, field),
        elf_case("truncated ELF header", good[..40].to_vec(), field),
        elf_case("truncated ELF segment", truncated_segment, field),
        elf_case_with(
            "ELF without RAM for the boot tables",
            good,
            &[(
                "[0x0, 0x100_0000, 0x7, 0],",
                "[0x10_0000, 0xf0_0000, 0x7, 0],",
            )],
            Vec::new(),
            "kernel.memory_regions",
        ),
    ]
}

/// `count` regions of one page each from 256 MiB, besides the first.
fn many_regions(count: usize) -> String {
    let mut rows = String::from(RAM_ROW);
    for index in 0..count {
        rows.push_str(&format!(
            "[{:#x}, 0x1000, 0x7, 0],",
            0x1000_0000 + index as u64 * 0x1000
        ));
    }
    rows
}

/// The gaps `check` had (issue 10, item 5).
fn gap_cases() -> Vec<Case> {
    let good_elf = elf64(0x20_0000, 0x1000, 0x20_0000, None);
    // A note whose name size runs past its segment.
    let bad_note = [
        0xff, 0xff, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, b'X', b'e', b'n', 0,
    ];
    let long_line = "x".repeat(0x9_6000);
    // Fits the boot data area by itself, not with the memory map and start info after it.
    let nearly_long_line = "y".repeat(0x9_6000 - 64);
    vec![
        realmode(
            "pass-through at different page offsets",
            &[(
                NO_PASS_THROUGH,
                "passthrough_devices = [[\"ioapic\", 0xfec0_0010, 0xfec0_0020, 0x10, 0]]",
            )],
            Some("devices.passthrough_devices[0] (ioapic)"),
        ),
        realmode(
            "pass-through ranges naming different host pages",
            &[(
                NO_PASS_THROUGH,
                "passthrough_devices = [[\"a\", 0xfec0_0000, 0xfec0_0000, 0x1000, 0], [\"b\", 0xfec0_0800, 0xfed0_0800, 0x100, 0]]",
            )],
            Some("devices.passthrough_devices"),
        ),
        realmode(
            "pass-through of memory KVM does not emulate",
            &[(
                NO_PASS_THROUGH,
                "passthrough_devices = [[\"nic\", 0xfe00_0000, 0xfe00_0000, 0x1000, 0]]",
            )],
            Some("devices.passthrough_devices (nic)"),
        ),
        realmode_with_files(
            "BIOS that does not fit",
            &[(LOAD_LINE, "kernel_load_addr = 0x8000\nbios_path = \"bios.bin\"\nbios_load_addr = 0xf_f000")],
            vec![("bios.bin", vec![0x90; 0x2000])],
            "kernel.bios_load_addr",
        ),
        realmode_with_files(
            "device tree without a load address",
            &[(LOAD_LINE, "kernel_load_addr = 0x8000\ndtb_path = \"board.dtb\"")],
            vec![("board.dtb", vec![0xd0; 0x100])],
            "kernel.dtb_load_addr",
        ),
        realmode_with_files(
            "ramdisk of a raw kernel without a load address",
            &[(LOAD_LINE, "kernel_load_addr = 0x8000\nramdisk_path = \"initrd\"")],
            vec![("initrd", vec![1; 0x100])],
            "kernel.ramdisk_load_addr",
        ),
        realmode_with_files(
            "ramdisk of a raw kernel that does not fit",
            &[(LOAD_LINE, "kernel_load_addr = 0x8000\nramdisk_path = \"initrd\"\nramdisk_load_addr = 0xf_f800")],
            vec![("initrd", vec![1; 0x1000])],
            "kernel.ramdisk_load_addr",
        ),
        elf_case_with(
            "BIOS of an ELF64 kernel without a load address",
            good_elf.clone(),
            &[(
                "kernel_load_addr = 0x20_0000",
                "kernel_load_addr = 0x20_0000\nbios_path = \"bios.bin\"",
            )],
            vec![("bios.bin", vec![0x90; 0x100])],
            "kernel.bios_load_addr",
        ),
        elf_case(
            "ELF64 with a malformed PT_NOTE",
            elf64(0x20_0000, 0x1000, 0x20_0000, Some(&bad_note)),
            "kernel.kernel_path",
        ),
        pvh("command line larger than the boot data area", &long_line, Some("kernel.cmdline")),
        pvh(
            "command line that leaves no room for the boot data",
            &nearly_long_line,
            Some("boot data"),
        ),
        realmode(
            "region without READ",
            &[(RAM_ROW, "[0x0, 0x10_0000, 0x7, 0], [0x20_0000, 0x1000, 0x2, 0],")],
            Some("kernel.memory_regions[1]"),
        ),
        realmode(
            "region above the host's address width",
            &[(RAM_ROW, "[0x0, 0x10_0000, 0x7, 0], [0xf_ffff_ffff_f000, 0x2000, 0x7, 0],")],
            Some("kernel.memory_regions[1]"),
        ),
        realmode(
            "MapReserved region",
            &[(RAM_ROW, "[0x0, 0x10_0000, 0x7, 0], [0x20_0000, 0x1000, 0x7, 2],")],
            Some("kernel.memory_regions[1]"),
        ),
    ]
}

/// One region more than KVM's memory slots (32764 on x86 Linux): a config of 32765 rows,
/// apart from the table so that its cost (each command validates every row) is its own.
fn more_regions_than_memory_slots_are_refused_by_both() {
    require_kvm();
    let slots = axvm_kvm::HostLimits::query().map_or(32, |limits| limits.memory_slots);
    let case = Case {
        name: "more regions than KVM memory slots",
        config: replace(axvm_guests::REALMODE_CONFIG, RAM_ROW, &many_regions(slots)),
        files: vec![("realmode", realmode_image())],
        field: Some("memory slots"),
    };
    compare(&case).unwrap_or_else(|err| panic!("{}: {err}", case.name));
}

/// The BIOS-start guest's config (an ArceOS hypervisor x86 config) with `edits`, and its
/// two images.
fn biosboot(name: &'static str, edits: &[(&str, &str)], field: Option<&'static str>) -> Case {
    let config = edits.iter().fold(
        axvm_guests::BIOSBOOT_CONFIG.to_string(),
        |text, (from, to)| replace(&text, from, to),
    );
    Case {
        name,
        config,
        files: vec![
            ("biosboot", axvm_guests::BIOSBOOT.to_vec()),
            ("bios-stub", axvm_guests::BIOS_STUB.to_vec()),
        ],
        field,
    }
}

/// The BIOS start: the upstream-style config runs; a kernel past the end of RAM at
/// `kernel_load_addr` is refused by both, naming that field.
fn bios_start_cases() -> Vec<Case> {
    vec![
        biosboot("the ArceOS hypervisor's BIOS start", &[], None),
        biosboot(
            "BIOS start with the kernel loaded past RAM",
            &[(
                "kernel_load_addr = 0x20_0000",
                "kernel_load_addr = 0xff_ff00",
            )],
            Some("kernel.kernel_load_addr"),
        ),
    ]
}

/// Configs both commands accept (so "check refuses" is not simply "check always fails").
fn accepted_cases() -> Vec<Case> {
    vec![
        realmode("the real-mode guest", &[], None),
        realmode_with_files(
            "a raw kernel with a ramdisk at its load address",
            &[(LOAD_LINE, "kernel_load_addr = 0x8000\nramdisk_path = \"initrd\"\nramdisk_load_addr = 0x8_0000")],
            vec![("initrd", vec![1; 0x1000])],
            "",
        ),
        pvh("the PVH guest", "console=ttyS0 axvm-compat", None),
    ]
    .into_iter()
    .map(|mut case| {
        case.field = case.field.filter(|field| !field.is_empty());
        case
    })
    .collect()
}

/// `run`'s reason without the prefixes `check` does not print: "axvm: ", the config's path,
/// and "cannot create VM `NAME` (PATH): ".
fn run_reason(line: &str, config: &Path) -> String {
    let path = config.display().to_string();
    let line = line.strip_prefix("axvm: ").unwrap_or(line);
    if let Some(rest) = line.strip_prefix("cannot create VM `") {
        let marker = format!(" ({path}): ");
        if let Some((_, reason)) = rest.split_once(&marker) {
            return reason.to_string();
        }
    }
    line.strip_prefix(&format!("{path}: "))
        .unwrap_or(line)
        .to_string()
}

fn fail_lines(output: &Output) -> Vec<&str> {
    output
        .stdout
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("[FAIL] "))
        .collect()
}

/// Runs `check` and `run` on `case`; returns what went wrong, if anything.
fn compare(case: &Case) -> Result<(), String> {
    let scratch = Scratch::new("check-equals-run");
    for (name, bytes) in &case.files {
        scratch.write(name, bytes);
    }
    let config = scratch.write("vm.toml", &case.config);
    let checked = axvm(&["check".as_ref(), config.as_os_str()]);
    let ran = axvm(&["run".as_ref(), config.as_os_str()]);
    for output in [&checked, &ran] {
        if output.stderr.contains("panicked") || output.status.code().is_none() {
            return Err(format!("axvm crashed: {output:#?}"));
        }
    }
    let Some(field) = case.field else {
        return match (checked.code(), ran.code()) {
            (0, 0) => Ok(()),
            _ => Err(format!(
                "both must accept it; check exited {}, run {}:\ncheck: {}\nrun: {}",
                checked.code(),
                ran.code(),
                checked.stdout,
                ran.stderr
            )),
        };
    };
    let lines: Vec<&str> = ran.stderr.lines().collect();
    let [line] = lines.as_slice() else {
        return Err(format!("run must refuse in one line: {ran:#?}"));
    };
    if ran.code() != 1 || !line.contains(field) {
        return Err(format!("run must refuse naming {field:?}: {ran:#?}"));
    }
    if checked.code() != 1 {
        return Err(format!(
            "check passed what run refuses ({line}):\n{}",
            checked.stdout
        ));
    }
    let reason = run_reason(line, &config);
    if !fail_lines(&checked)
        .iter()
        .any(|fail| fail.contains(&reason))
    {
        return Err(format!(
            "check refused, but not as run did.\nrun: {reason}\ncheck: {:#?}",
            fail_lines(&checked)
        ));
    }
    Ok(())
}

fn check_refuses_exactly_what_run_refuses() {
    require_kvm();
    let cases: Vec<Case> = [
        bad_configs_cases(),
        refused_rs_cases(),
        gap_cases(),
        low_memory_cases(),
        bios_start_cases(),
        accepted_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| {
            eprintln!("case: {}", case.name);
            compare(case)
                .err()
                .map(|err| format!("{}: {err}", case.name))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// A missing config: both say they cannot read it.
fn a_missing_config_is_refused_by_both() {
    let scratch = Scratch::new("check-equals-run-missing");
    let config = scratch.path("absent.toml");
    let checked = axvm(&["check".as_ref(), config.as_os_str()]);
    let ran = axvm(&["run".as_ref(), config.as_os_str()]);
    let line = common::assert_refused(&ran, "cannot read config");
    assert_eq!(checked.code(), 1, "{checked:#?}");
    let reason = run_reason(&line, &config);
    assert!(
        fail_lines(&checked)
            .iter()
            .any(|fail| fail.contains(&reason)),
        "{checked:#?}"
    );
}

axvm_test_harness::main!(
    check_refuses_exactly_what_run_refuses,
    a_missing_config_is_refused_by_both,
    more_regions_than_memory_slots_are_refused_by_both,
);
