//! Builds the freestanding guest programs in `<repo>/guests` (x86) and
//! `<repo>/guests-arm64` (aarch64-unknown-none) and copies the images into
//! `OUT_DIR/images`, where `src/lib.rs` embeds them.
//!
//! Each is a separate Cargo workspace with its own code-generation flags
//! (`guests/.cargo/config.toml`: no SSE, static relocation, no C runtime;
//! `guests-arm64/.cargo/config.toml`: the target), so they are built by a
//! nested `cargo build` in that directory.
//! The nested cargo must see none of the settings the outer build passes to
//! build scripts (flags, wrappers such as clippy-driver, target directory,
//! profile overrides), or it would build the guests wrongly or contend for
//! the outer target directory; see [`scrub_env`].

use std::env;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "build/bzimage.rs"]
mod bzimage;
#[path = "build/elf32.rs"]
mod elf32;
#[path = "build/flat.rs"]
mod flat;

/// The binaries built from the guests workspace; each image keeps its name
/// (which is also the `kernel_path` its config file names).
const GUESTS: &[&str] = &[
    "demo",
    "realmode",
    "exitloop",
    "sipi",
    "rom",
    "timer",
    "wakeup",
    "multiboot",
    "multiboot-low",
    "pvh",
    "pvh-lowhdr",
    "virtio",
    "hpet",
    "bios-stub",
    "bios-reset",
    "biosboot",
];

/// The target the guests are compiled for (set in `guests/.cargo/config.toml`
/// too; passed explicitly so the artifact path is certain).
const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The binaries built from the `guests-arm64` workspace (ELF images, named as their
/// configs' `kernel_path`).
const ARM64_GUESTS: &[&str] = &["arm-demo", "arm-timer", "arm-exit", "arm-exitloop"];

/// The target the arm64 guests are compiled for (`guests-arm64/.cargo/config.toml`).
const ARM64_GUEST_TARGET: &str = "aarch64-unknown-none";

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let images = out_dir.join("images");
    fs::create_dir_all(&images)
        .unwrap_or_else(|e| panic!("could not create {}: {e}", images.display()));
    // The cargo running this build script, so both use the same toolchain.
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    let built = build_workspace(&cargo, &manifest_dir, &out_dir, "guests", GUEST_TARGET);
    copy_images(&built, &images, GUESTS);
    write_bzimage(&built, &images);
    write_pvh_elf32(&built, &images);

    let built = build_workspace(
        &cargo,
        &manifest_dir,
        &out_dir,
        "guests-arm64",
        ARM64_GUEST_TARGET,
    );
    copy_images(&built, &images, ARM64_GUESTS);
    write_arm64_flat_images(&built, &images);
}

/// Builds the guest workspace `<repo>/<name>` for `target` into its own target directory
/// under `OUT_DIR` with a nested `cargo build --release`, and returns the directory of the
/// built binaries. The workspace's `.cargo/config.toml` applies, as cargo runs there.
fn build_workspace(
    cargo: &OsStr,
    manifest_dir: &Path,
    out_dir: &Path,
    name: &str,
    target: &str,
) -> PathBuf {
    let guests_dir = manifest_dir
        .join("../..")
        .join(name)
        .canonicalize()
        .unwrap_or_else(|e| panic!("the {name} workspace should be at <repo>/{name}: {e}"));
    emit_rerun_if_changed(&guests_dir);

    let target_dir = out_dir.join(format!("{name}-target"));
    fetch_dependencies(cargo, &guests_dir);
    let mut command = Command::new(cargo);
    command
        // The guests' .cargo/config.toml is found from the current directory.
        .current_dir(&guests_dir)
        .args([
            "build",
            "--release",
            "--offline",
            "--locked",
            "--target",
            target,
            "--manifest-path",
        ])
        .arg(guests_dir.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    scrub_env(&mut command);

    let output = command.output().unwrap_or_else(|e| {
        panic!(
            "could not run {} to build the guests: {e}",
            cargo.to_string_lossy()
        )
    });
    if !output.status.success() {
        panic!(
            "building the guests in {} failed ({}):\n{}",
            guests_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    target_dir.join(target).join("release")
}

/// Copies each of `guests` from `built` into `images`, under the same name.
fn copy_images(built: &Path, images: &Path, guests: &[&str]) {
    for guest in guests {
        let from = built.join(guest);
        let to = images.join(guest);
        fs::copy(&from, &to).unwrap_or_else(|e| {
            panic!(
                "could not copy guest image {} to {}: {e}",
                from.display(),
                to.display()
            )
        });
    }
}

/// Each arm64 guest's ELF laid out flat (`build/flat.rs`) as `images/<name>.bin`: its first
/// bytes are a Linux arm64 Image header, so this is an `Image` that QEMU loads at
/// 0x4008_0000 and enters with x0 = the device tree (it passes none to an ELF).
fn write_arm64_flat_images(built: &Path, images: &Path) {
    for guest in ARM64_GUESTS {
        let elf_path = built.join(guest);
        let elf = fs::read(&elf_path)
            .unwrap_or_else(|e| panic!("could not read {}: {e}", elf_path.display()));
        let flat = flat::arm64_image(&elf)
            .unwrap_or_else(|e| panic!("{}: cannot lay it out flat: {e}", elf_path.display()));
        let to = images.join(format!("{guest}.bin"));
        fs::write(&to, flat).unwrap_or_else(|e| panic!("could not write {}: {e}", to.display()));
    }
}

/// The `pvh` guest as an i386 ELF32 (`build/elf32.rs`), written as `images/pvh-elf32`: the
/// same program, for the VMMs' ELF32 PVH path.
fn write_pvh_elf32(built: &Path, images: &Path) {
    let elf_path = built.join("pvh");
    let elf = fs::read(&elf_path)
        .unwrap_or_else(|e| panic!("could not read {}: {e}", elf_path.display()));
    let elf32 = elf32::elf64_to_elf32(&elf)
        .unwrap_or_else(|e| panic!("{}: cannot make an ELF32 of it: {e}", elf_path.display()));
    let to = images.join("pvh-elf32");
    fs::write(&to, elf32).unwrap_or_else(|e| panic!("could not write {}: {e}", to.display()));
}

/// Makes sure the crates the guests depend on (`virtio-drivers` and its
/// dependencies, as `guests/Cargo.lock` pins them) are in cargo's cache, so
/// the build below can be `--offline`: the outer cargo only fetches the root
/// workspace's dependencies, never the guests'. Cached, as after the first
/// build, the network is not touched (`cargo fetch --offline` succeeds);
/// otherwise, as on a clean machine, they are downloaded from the registry.
fn fetch_dependencies(cargo: &OsStr, guests_dir: &Path) {
    let fetch = |offline: bool| {
        let mut command = Command::new(cargo);
        command
            .current_dir(guests_dir)
            .args(["fetch", "--locked", "--manifest-path"])
            .arg(guests_dir.join("Cargo.toml"));
        if offline {
            command.arg("--offline");
        }
        scrub_env(&mut command);
        command.output().unwrap_or_else(|e| {
            panic!(
                "could not run {} to fetch the guests' dependencies: {e}",
                cargo.to_string_lossy()
            )
        })
    };
    if fetch(true).status.success() {
        return;
    }
    let output = fetch(false);
    if !output.status.success() {
        panic!(
            "fetching the guests' dependencies (cargo fetch --locked in {}) failed ({}); \
             they come from crates.io, or from the cache once fetched:\n{}",
            guests_dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// The `bzimage` guest is built as an ELF linked at 1 MiB; its image is that ELF turned
/// into a bzImage-style file (setup sectors + protected-mode kernel, see
/// `build/bzimage.rs`), written as `images/bzimage` (and the ELF as `images/bzimage.elf`,
/// for disassembly), with the test ramdisk its config names as `images/ramdisk`.
fn write_bzimage(built: &Path, images: &Path) {
    let elf_path = built.join("bzimage");
    let elf = fs::read(&elf_path)
        .unwrap_or_else(|e| panic!("could not read {}: {e}", elf_path.display()));
    let image = bzimage::make_bzimage(&elf)
        .unwrap_or_else(|e| panic!("{}: cannot make a bzImage: {e}", elf_path.display()));
    let outputs = [
        ("bzimage", image),
        ("bzimage.elf", elf),
        ("ramdisk", bzimage::test_ramdisk()),
    ];
    for (name, bytes) in outputs {
        let to = images.join(name);
        fs::write(&to, bytes).unwrap_or_else(|e| panic!("could not write {}: {e}", to.display()));
    }
}

/// Asks cargo to rerun this script when any guest source, manifest, linker
/// script or config changes. Entries are listed one by one so that
/// `guests/target` (left by a manual build there) is not watched: cargo scans
/// a listed directory recursively.
fn emit_rerun_if_changed(guests_dir: &Path) {
    let entries = fs::read_dir(guests_dir)
        .unwrap_or_else(|e| panic!("could not list {}: {e}", guests_dir.display()));
    for entry in entries {
        let entry =
            entry.unwrap_or_else(|e| panic!("could not list {}: {e}", guests_dir.display()));
        if entry.file_name() == "target" {
            continue;
        }
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
    // A new guest also needs a new member in its workspace's Cargo.toml, listed above.
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=build/bzimage.rs");
    println!("cargo:rerun-if-changed=build/elf32.rs");
    println!("cargo:rerun-if-changed=build/flat.rs");
}

/// Removes from the nested cargo's environment everything through which the
/// outer build could leak into it: `RUSTFLAGS` and friends (which would
/// replace the guests' flags), `RUSTC_WRAPPER`/`RUSTC_WORKSPACE_WRAPPER` (set
/// to clippy-driver by `cargo clippy`), and every `CARGO_*` variable — build
/// config (`CARGO_TARGET_DIR`, `CARGO_BUILD_*`, `CARGO_PROFILE_*`,
/// `CARGO_ENCODED_RUSTFLAGS`), the jobserver (`CARGO_MAKEFLAGS`) and the
/// build-script variables cargo sets for this script — except `CARGO_HOME`.
/// `PATH`, `RUSTUP_HOME`, `RUSTUP_TOOLCHAIN` and `RUSTC` stay, so the nested
/// build uses the same toolchain.
fn scrub_env(command: &mut Command) {
    const REMOVE: &[&str] = &[
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_LINKER",
        "RUSTDOC",
        // Build-script variables that mean something to other tools.
        "OUT_DIR",
        "TARGET",
        "HOST",
        "NUM_JOBS",
        "OPT_LEVEL",
        "DEBUG",
        "PROFILE",
    ];
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let cargo_var =
            (key.starts_with("CARGO") && key != "CARGO_HOME") || key.starts_with("__CARGO");
        if cargo_var || key.starts_with("DEP_") || REMOVE.contains(&key) {
            command.env_remove(OsStr::new(key));
        }
    }
}
