//! Links the bzimage guest's protected-mode kernel with its own linker script
//! (`link.ld`): at physical = virtual 0x100000, the 64-bit entry at 0x100200. The setup
//! sectors are added afterwards by `crates/axvm-guests/build.rs`, which flattens this ELF.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let script = manifest_dir.join("link.ld");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
