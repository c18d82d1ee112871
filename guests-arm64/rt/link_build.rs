//! The build script of every arm64 guest: links the binary with the shared linker script
//! `rt/link.ld` (loaded at 0x4008_0000, `_start` first). Guests name it with
//! `build = "../rt/link_build.rs"` instead of each keeping a copy.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let script = manifest_dir.join("../rt/link.ld");
    let script = script
        .canonicalize()
        .unwrap_or_else(|e| panic!("linker script {} not found: {e}", script.display()));
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    // Segments 4 KiB-aligned in the file, not 64 KiB: smaller images.
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
