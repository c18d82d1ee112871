//! Links this guest's two images with its own linker script (`link.ld`), each
//! an ELF64 loaded at 0x100000 with a PT_NOTE segment holding the PVH entry
//! note:
//!
//! - `pvh`, `link.ld` as written;
//! - `pvh-lowhdr`, which also loads its ELF file and program headers as a
//!   read-only segment at 0xff000, right below its 1 MiB text, as
//!   `ld -Ttext=0x100000` lays out many kernels: `link.ld` with that segment
//!   added, written to `OUT_DIR`.

use std::path::PathBuf;

/// Where `link.ld` declares its segments and sets its load address.
const PHDRS: &str = "PHDRS\n{\n";
const LINKED_AT: &str = "    . = 0x100000;";
/// The headers segment, and the address that puts it at 0xff000: the headers
/// end where the first section after them would start.
const HEADERS_PHDR: &str = "    headers PT_LOAD FILEHDR PHDRS FLAGS(4); /* R-- */\n";
const HEADERS_AT: &str =
    "    . = 0xff000 + SIZEOF_HEADERS;\n    .headers_end : { BYTE(0) } :headers\n";

fn main() {
    let manifest_dir = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let script = manifest_dir.join("link.ld");
    let text = std::fs::read_to_string(&script).expect("guests/pvh/link.ld is readable");
    assert!(
        text.contains(PHDRS) && text.contains(LINKED_AT),
        "link.ld must declare `{PHDRS}` and set its load address with `{LINKED_AT}`"
    );
    let low = text
        .replace(PHDRS, &format!("{PHDRS}{HEADERS_PHDR}"))
        .replace(LINKED_AT, &format!("{HEADERS_AT}{LINKED_AT}"));
    let low_script = out_dir.join("link-lowhdr.ld");
    std::fs::write(&low_script, low).expect("OUT_DIR is writable");
    for (bin, script) in [("pvh", &script), ("pvh-lowhdr", &low_script)] {
        println!("cargo:rustc-link-arg-bin={bin}=-T{}", script.display());
    }
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
}
