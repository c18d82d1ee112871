//! Links this guest with the PVH guest's linker script (`../pvh/link.ld`): an ELF64 loaded
//! at 0x100000 with a PT_NOTE segment holding the PVH entry note, so QEMU's `-kernel` and
//! axvm boot it alike.

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let script = manifest_dir.join("../pvh/link.ld");
    println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
