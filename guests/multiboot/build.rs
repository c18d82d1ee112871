//! Links this guest's two images as flat binaries (`--oformat=binary`) with
//! its own linker script, Multiboot header near the start:
//!
//! - `multiboot`, loaded at 0x100000 (`link.ld` as written);
//! - `multiboot-low`, the same program loaded at 0x9000, where boot loaders
//!   built as Multiboot kernels are linked and where axvm's boot data area
//!   starts: `link.ld` with its load address replaced, written to `OUT_DIR`.

use std::path::PathBuf;

/// The load address `link.ld` names, and the one of the low image.
const LINKED_AT: &str = ". = 0x100000;";
const LOW_AT: &str = ". = 0x9000;";

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = manifest_dir.join("link.ld");
    let text = std::fs::read_to_string(&script).expect("guests/multiboot/link.ld is readable");
    assert!(
        text.contains(LINKED_AT),
        "link.ld must set its load address with `{LINKED_AT}`"
    );
    let low_script = out_dir.join("link-low.ld");
    std::fs::write(&low_script, text.replace(LINKED_AT, LOW_AT)).expect("OUT_DIR is writable");
    for (bin, script) in [("multiboot", &script), ("multiboot-low", &low_script)] {
        println!("cargo:rustc-link-arg-bin={bin}=-T{}", script.display());
        println!("cargo:rustc-link-arg-bin={bin}=-Wl,--oformat=binary");
    }
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
