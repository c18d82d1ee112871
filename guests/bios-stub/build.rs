//! Links the two images as flat binaries, each with its own linker script: `bios-stub` at
//! 0x8000 (`stub.ld`) and `bios-reset`, 64 KiB with the reset vector at its last 16 bytes
//! (`reset.ld`).

use std::path::PathBuf;

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    for (bin, script) in [("bios-stub", "stub.ld"), ("bios-reset", "reset.ld")] {
        let script = manifest_dir.join(script);
        println!("cargo:rustc-link-arg-bin={bin}=-T{}", script.display());
        println!("cargo:rustc-link-arg-bin={bin}=-Wl,--oformat=binary");
        println!("cargo:rerun-if-changed={}", script.display());
    }
    println!("cargo:rerun-if-changed=build.rs");
}
