//! The PVH entry note, in its own section (`.note.Xen`, which `link.ld` puts
//! in the image's only PT_NOTE segment).
//!
//! An ELF note is `{ u32 namesz, u32 descsz, u32 type, name (padded to 4),
//! desc (padded to 4) }`. This one: name "Xen" (namesz 4, with its NUL),
//! type 18 (`XEN_ELFNOTE_PHYS32_ENTRY`), and as descriptor the 32-bit entry
//! point, rt's `axvm_start32`, stored as 8 bytes with a zero high half:
//! linux-loader reads the first 4 bytes of a descriptor of at least 4, and
//! QEMU reads a pointer-sized value from an ELF64's note.

use core::arch::global_asm;

/// `XEN_ELFNOTE_PHYS32_ENTRY`.
const PHYS32_ENTRY: u32 = 18;

global_asm!(
    ".pushsection .note.Xen, \"a\", @note",
    ".balign 4",
    "    .long 4",  // namesz: "Xen\0"
    "    .long 8",  // descsz
    "    .long {ty}",
    "    .asciz \"Xen\"",
    "    .balign 4",
    "    .quad axvm_start32",
    "    .balign 4",
    ".popsection",
    ty = const PHYS32_ENTRY,
    options(att_syntax),
);
