//! Links the kernel with `link.ld` as a flat image (`--oformat=binary`): QEMU's Multiboot
//! loader takes ELF32 or an a.out-kludge image, not ELF64, so the kernel is the latter.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rerun-if-changed=link.ld");
    println!("cargo:rustc-link-arg-bins=-T{dir}/link.ld");
    println!("cargo:rustc-link-arg-bins=--oformat=binary");
    println!("cargo:rustc-link-arg-bins=--build-id=none");
}
