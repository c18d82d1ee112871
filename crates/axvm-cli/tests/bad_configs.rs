//! `axvm run CONFIG` refuses configs that cannot work: exit status 1, one line on stderr
//! naming the field (or `CONFIG:LINE:COL` for TOML errors), nothing on stdout, no panic.
//! Each case edits the real-mode guest's config next to a copy of its image; most are
//! refused before KVM is opened, the rest need /dev/kvm.

mod common;

use std::path::PathBuf;

use common::{assert_refused, realmode_with, replace, require_kvm, run, Scratch};

const RAM_ROW: &str = "[0x0, 0x10_0000, 0x7, 0],";

/// The real-mode config in a new scratch directory, with `from` replaced by `to`.
fn edited(scratch: &Scratch, from: &str, to: &str) -> PathBuf {
    realmode_with(scratch, |text| replace(&text, from, to))
}

fn overlapping_memory_regions() {
    let scratch = Scratch::new("overlap");
    let config = edited(
        &scratch,
        RAM_ROW,
        "[0x0, 0x10_0000, 0x7, 0], [0x8_0000, 0x10_0000, 0x7, 0],",
    );
    let line = assert_refused(&run(&config), "kernel.memory_regions[1]");
    assert!(line.contains("overlaps kernel.memory_regions[0]"), "{line}");
}

fn device_flag_on_ram() {
    let scratch = Scratch::new("device-flag");
    let config = edited(&scratch, RAM_ROW, "[0x0, 0x10_0000, 0x17, 0],");
    let line = assert_refused(&run(&config), "kernel.memory_regions[0]");
    assert!(line.contains("DEVICE"), "{line}");
}

fn entry_point_outside_ram() {
    let scratch = Scratch::new("entry");
    let config = edited(&scratch, "entry_point = 0x8000", "entry_point = 0x20_0000");
    let line = assert_refused(&run(&config), "kernel.entry_point");
    assert!(line.contains("0x200000"), "{line}");
}

fn phys_cpu_ids_longer_than_cpu_num() {
    let scratch = Scratch::new("cpu-ids");
    let config = edited(&scratch, "phys_cpu_ids = [0]", "phys_cpu_ids = [0, 1]");
    let line = assert_refused(&run(&config), "base.phys_cpu_ids");
    assert!(line.contains("base.cpu_num is 1"), "{line}");
}

fn zero_vcpus() {
    let scratch = Scratch::new("cpu-num");
    let config = edited(&scratch, "cpu_num = 1", "cpu_num = 0");
    assert_refused(&run(&config), "base.cpu_num");
}

fn unknown_interrupt_mode() {
    let scratch = Scratch::new("irq-mode");
    let config = edited(
        &scratch,
        "interrupt_mode = \"no_irq\"",
        "interrupt_mode = \"msi\"",
    );
    assert_refused(&run(&config), "devices.interrupt_mode");
}

/// The 1-based line of the first line of `path` starting with `prefix`.
fn line_of(path: &PathBuf, prefix: &str) -> usize {
    let text = std::fs::read_to_string(path).expect("config");
    1 + text
        .lines()
        .position(|line| line.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}"))
}

fn unknown_key_is_refused_with_its_line() {
    let scratch = Scratch::new("unknown-key");
    let config = edited(
        &scratch,
        "cpu_num = 1\n",
        "cpu_num = 1\ncolour = \"blue\"\n",
    );
    let line = line_of(&config, "colour");
    let refused = assert_refused(&run(&config), &format!("{}:{line}:1:", config.display()));
    assert!(refused.contains("unknown field `colour`"), "{refused}");
}

fn wrong_type_is_refused_with_its_line() {
    let scratch = Scratch::new("wrong-type");
    let config = edited(&scratch, "cpu_num = 1", "cpu_num = \"two\"");
    let line = line_of(&config, "cpu_num");
    // The column is the value's: `cpu_num = ` is 10 characters.
    let refused = assert_refused(&run(&config), &format!("{}:{line}:11:", config.display()));
    assert!(
        refused.contains("invalid type: string \"two\""),
        "{refused}"
    );
}

fn missing_kernel_file() {
    let scratch = Scratch::new("missing-kernel");
    let config = edited(
        &scratch,
        "kernel_path = \"realmode\"",
        "kernel_path = \"no-such-image.bin\"",
    );
    let line = assert_refused(&run(&config), "kernel.kernel_path");
    assert!(line.contains("no-such-image.bin"), "{line}");
}

fn missing_config_file() {
    let scratch = Scratch::new("missing-config");
    let config = scratch.path("no-such-config.toml");
    let line = assert_refused(&run(&config), "cannot read config");
    assert!(line.contains("no-such-config.toml"), "{line}");
}

fn image_larger_than_its_region() {
    require_kvm();
    // 64 KiB of RAM; an image of 0x9000 bytes at 0x8000 ends 0x1000 bytes past it.
    let scratch = Scratch::new("big-image");
    scratch.write("big.bin", vec![0xf4; 0x9000]);
    let config = scratch.write(
        "vm.toml",
        replace(
            &replace(
                axvm_guests::REALMODE_CONFIG,
                RAM_ROW,
                "[0x0, 0x1_0000, 0x7, 0],",
            ),
            "kernel_path = \"realmode\"",
            "kernel_path = \"big.bin\"",
        ),
    );
    let line = assert_refused(&run(&config), "kernel.kernel_load_addr");
    assert!(line.contains("0x1000 bytes short"), "{line}");
}

fn unemulated_emu_type() {
    // Unknown types run as Dummy (see check_run_memory.rs); known ones axvm does not
    // emulate are refused.
    require_kvm();
    let scratch = Scratch::new("emu-type");
    let config = edited(
        &scratch,
        "emu_devices = []",
        "emu_devices = [[\"blk\", 0xfeb0_0000, 0x1000, 0, 0xE1, []]]",
    );
    let line = assert_refused(&run(&config), "devices.emu_devices[0] (blk)");
    assert!(line.contains("virtio block"), "{line}");
}

axvm_test_harness::main!(
    overlapping_memory_regions,
    device_flag_on_ram,
    entry_point_outside_ram,
    phys_cpu_ids_longer_than_cpu_num,
    zero_vcpus,
    unknown_interrupt_mode,
    unknown_key_is_refused_with_its_line,
    wrong_type_is_refused_with_its_line,
    missing_kernel_file,
    missing_config_file,
    image_larger_than_its_region,
    unemulated_emu_type,
);
