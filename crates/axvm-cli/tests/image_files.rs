//! The config and the images it names are read only when they are regular files no larger
//! than they could be: a FIFO (which would block `open` for ever), a device (`/dev/zero`
//! never ends), a directory, an image larger than the guest RAM it must fit in or a config
//! over 16 MiB are refused, naming the config field or the argument, without reading them.
//! No /dev/kvm is needed: the files are read before any VM exists.

mod common;

use std::ffi::CString;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use common::{assert_refused, axvm, raw_config, replace, run, Scratch};

/// Makes a FIFO at `path`.
fn mkfifo(path: &Path) {
    let name = CString::new(path.as_os_str().as_bytes()).expect("no NUL in the path");
    // SAFETY: `name` is a NUL-terminated path that lives across the call.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0, "mkfifo");
}

/// A sparse file of `size` bytes (it takes no disk space and reads as zeros).
fn sparse(path: &Path, size: u64) {
    File::create(path)
        .and_then(|file| file.set_len(size))
        .expect("a sparse file");
}

/// The raw test guest's config (1 MiB of RAM) with `edit` applied, next to a small image.
fn config_with(scratch: &Scratch, from: &str, to: &str) -> PathBuf {
    scratch.write("guest.bin", [0xf4]);
    scratch.write("vm.toml", replace(&raw_config("guest.bin"), from, to))
}

/// The raw guest config with `line` added to its `[kernel]` table.
fn with_kernel_field(scratch: &Scratch, line: &str) -> PathBuf {
    config_with(scratch, "[kernel]\n", &format!("[kernel]\n{line}\n"))
}

/// `axvm check CONFIG` names `field` and `what` in its FAIL line and exits 1.
fn assert_check_refuses(config: &Path, field: &str, what: &str) {
    let output = axvm(&["check".as_ref(), config.as_os_str()]);
    assert_eq!(output.code(), 1, "{output:#?}");
    let line = output
        .stdout
        .lines()
        .find(|line| line.contains("[FAIL]") && line.contains(field))
        .unwrap_or_else(|| panic!("no FAIL line naming {field}: {output:#?}"));
    assert!(line.contains(what), "{line}");
}

fn a_fifo_as_kernel_path_is_refused_without_blocking() {
    let scratch = Scratch::new("fifo-kernel");
    mkfifo(&scratch.path("kernel.fifo"));
    let config = config_with(
        &scratch,
        "kernel_path = \"guest.bin\"",
        "kernel_path = \"kernel.fifo\"",
    );
    let line = assert_refused(&run(&config), "kernel.kernel_path");
    assert!(line.contains("kernel.fifo: it is a FIFO"), "{line}");
    assert_check_refuses(&config, "kernel.kernel_path", "it is a FIFO");
}

fn a_fifo_as_the_config_is_refused_without_blocking() {
    let scratch = Scratch::new("fifo-config");
    let config = scratch.path("vm.toml");
    mkfifo(&config);
    let line = assert_refused(&run(&config), "cannot read config");
    assert!(line.contains("vm.toml: it is a FIFO"), "{line}");
    assert_check_refuses(&config, "cannot read config", "it is a FIFO");
}

fn dev_zero_as_ramdisk_is_refused() {
    let scratch = Scratch::new("zero-ramdisk");
    let config = with_kernel_field(&scratch, "ramdisk_path = \"/dev/zero\"");
    let line = assert_refused(&run(&config), "kernel.ramdisk_path");
    assert!(
        line.contains("/dev/zero: it is a character device"),
        "{line}"
    );
}

fn a_directory_as_bios_path_is_refused() {
    let scratch = Scratch::new("dir-bios");
    std::fs::create_dir(scratch.path("bios")).unwrap();
    let config = with_kernel_field(&scratch, "bios_path = \"bios\"");
    let line = assert_refused(&run(&config), "kernel.bios_path");
    assert!(line.contains("it is a directory"), "{line}");
}

/// A 3 GiB kernel for 1 MiB of RAM is refused by its size, before a byte is read: the
/// message gives the file's size, which only the metadata knows (the file is sparse, so
/// reading it would have found zeros up to the bound, not its size).
fn a_kernel_larger_than_guest_ram_is_refused_before_reading() {
    let scratch = Scratch::new("huge-kernel");
    let config = config_with(
        &scratch,
        "kernel_path = \"guest.bin\"",
        "kernel_path = \"huge.bin\"",
    );
    sparse(&scratch.path("huge.bin"), 3 << 30);
    let line = assert_refused(&run(&config), "kernel.kernel_path");
    assert!(
        line.contains("huge.bin: it is 3 GiB (3221225472 bytes), more than the 1 MiB of guest RAM (kernel.memory_regions) it must fit in"),
        "{line}"
    );
    assert_check_refuses(
        &config,
        "kernel.kernel_path",
        "more than the 1 MiB of guest RAM",
    );
}

fn a_dtb_larger_than_guest_ram_is_refused() {
    let scratch = Scratch::new("huge-dtb");
    sparse(&scratch.path("big.dtb"), (1 << 20) + 1);
    let config = with_kernel_field(&scratch, "dtb_path = \"big.dtb\"");
    let line = assert_refused(&run(&config), "kernel.dtb_path");
    assert!(line.contains("more than the 1 MiB of guest RAM"), "{line}");
}

fn a_config_over_16_mib_is_refused_before_reading() {
    let scratch = Scratch::new("huge-config");
    let config = scratch.path("vm.toml");
    sparse(&config, (16 << 20) + 1);
    let line = assert_refused(&run(&config), "cannot read config");
    assert!(
        line.contains("it is 16777217 bytes, more than the 16 MiB a config may have"),
        "{line}"
    );
}

axvm_test_harness::main!(
    a_fifo_as_kernel_path_is_refused_without_blocking,
    a_fifo_as_the_config_is_refused_without_blocking,
    dev_zero_as_ramdisk_is_refused,
    a_directory_as_bios_path_is_refused,
    a_kernel_larger_than_guest_ram_is_refused_before_reading,
    a_dtb_larger_than_guest_ram_is_refused,
    a_config_over_16_mib_is_refused_before_reading,
);
