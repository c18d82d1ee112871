//! The build script of every guest linked with the shared 64-bit linker script
//! (`rt/link64.ld`: loaded at physical = virtual 0x200000, `_start` first). Guests name it
//! with `build = "../rt/link64_build.rs"` instead of each keeping a copy.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let script = manifest_dir.join("../rt/link64.ld");
    let script = script
        .canonicalize()
        .unwrap_or_else(|e| panic!("linker script {} not found: {e}", script.display()));
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
