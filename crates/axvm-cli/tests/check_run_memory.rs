//! What `axvm check` plans, `axvm run` does: a region the host cannot map makes `run` exit 1
//! naming the region, its size and address; `-v` logs each region's outcome; an unknown
//! `emu_type` (which `check` warns about) runs as Dummy scratch registers.

mod common;

use common::{axvm, raw_guest, realmode_with, replace, require_kvm, run, Scratch};

fn region_the_host_cannot_map_fails_run_naming_it() {
    require_kvm();
    let scratch = Scratch::new("run-huge-region");
    // 128 TiB at 1 TiB: more than a process's address space, so mmap fails.
    let config = realmode_with(&scratch, |text| {
        replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0],",
            "[0x0, 0x10_0000, 0x7, 0], [0x100_0000_0000, 0x7fff_ffff_f000, 0x7, 0],",
        )
    });
    let line = common::assert_refused(&run(&config), "kernel.memory_regions[1]");
    for want in [
        "0x7ffffffff000 bytes",
        "at 0x10000000000",
        "split it into regions",
    ] {
        assert!(line.contains(want), "{want:?} is not in {line:?}");
    }
}

fn verbose_run_logs_each_region_outcome() {
    require_kvm();
    let scratch = Scratch::new("run-outcomes");
    let config = common::demo(&scratch);
    let output = axvm(&[
        std::ffi::OsStr::new("-v"),
        "run".as_ref(),
        config.as_os_str(),
    ]);
    assert_eq!(output.code(), 0, "{output:#?}");
    let line = output
        .stderr
        .lines()
        .find(|line| line.contains("memory region [0]"))
        .unwrap_or_else(|| panic!("no outcome line: {output:#?}"));
    assert!(line.starts_with("[INFO "), "{line}");
    assert!(
        line.ends_with("memory region [0] 0x0..0x1000000 rwx--- MapAlloc: allocated"),
        "{line}"
    );
}

/// Real-mode code: DS = 0xa000 (the device at 0xa0000), write the word 0x2a to its first
/// register, read the byte back and send it to the exit port 0xf4. A device that drops
/// writes (or no device: unclaimed reads are zero) makes the exit status 0, not 42.
const WRITE_READ_EXIT: &[u8] = &[
    0xb8, 0x00, 0xa0, // mov ax, 0xa000
    0x8e, 0xd8, // mov ds, ax
    0xc7, 0x06, 0x00, 0x00, 0x2a, 0x00, // mov word [0], 0x2a
    0xa0, 0x00, 0x00, // mov al, [0]
    0xe6, 0xf4, // out 0xf4, al
    0xeb, 0xfe, // jmp $
];

fn unknown_emu_type_runs_as_scratch_registers() {
    require_kvm();
    let scratch = Scratch::new("run-unknown-emu");
    let path = raw_guest(&scratch, WRITE_READ_EXIT);
    let text = std::fs::read_to_string(&path).expect("config");
    // RAM below 512 KiB so that the device at 0xa0000 is reachable from real mode.
    let text = replace(&text, "[0x0, 0x10_0000, 0x7, 0]", "[0x0, 0x8_0000, 0x7, 0]");
    let text = replace(
        &text,
        "emu_devices = []",
        "emu_devices = [[\"mystery\", 0xa_0000, 0x1000, 0, 0x77, []]]",
    );
    let config = scratch.write("vm.toml", text);
    let checked = axvm(&[std::ffi::OsStr::new("check"), config.as_os_str()]);
    assert_eq!(checked.code(), 0, "{checked:#?}");
    assert!(
        checked
            .stdout
            .contains("[warn] devices.emu_devices[0] (mystery)"),
        "{checked:#?}"
    );
    let output = run(&config);
    assert_eq!(
        output.code(),
        42,
        "the value read back is the exit status: {output:#?}"
    );
    assert!(
        output.stderr.contains("emu_type 0x77"),
        "run warns too: {output:#?}"
    );
}

axvm_test_harness::main!(
    region_the_host_cannot_map_fails_run_naming_it,
    verbose_run_logs_each_region_outcome,
    unknown_emu_type_runs_as_scratch_registers,
);
