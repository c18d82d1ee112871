//! The guest programs axvm's demo and integration tests run.
//!
//! They are small freestanding programs built from source (`<repo>/guests`)
//! by this crate's build script, so no binary is kept in git; see
//! `guests/README.md` for what each one checks and the entry contract it
//! expects from the VMM. Each guest comes as:
//!
//! * its image bytes (`DEMO`, ...), for embedding in the `axvm` binary;
//! * the absolute path of the built image file (`DEMO_PATH`, ...), for tests
//!   that write config files referencing it;
//! * its VM config in the ArceOS hypervisor's TOML format (`DEMO_CONFIG`,
//!   ...), whose `kernel_path` is the image's file name, relative to the
//!   config: copy the image next to the config under that name.
//!
//! Guests report on COM1 (port 0x3f8) and end the VM by writing a status byte
//! to port 0xf4 (0 = success).
#![no_std]
#![warn(missing_docs)]

/// Image of the demo guest: an ELF64 loaded at 0x20_0000 whose two vCPUs
/// say hello (`vCPU 0`, `vCPU 1`) before vCPU 0 checks MMIO, port I/O and
/// MSR exits and prints `all checks passed`. The `axvm` binary embeds it so
/// its demo needs no files.
pub const DEMO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/demo"));

/// Absolute path of the demo guest's image file, so tests can copy or
/// reference it from a config file.
pub const DEMO_PATH: &str = concat!(env!("OUT_DIR"), "/images/demo");

/// The demo VM's config (`guests/demo/demo.toml`): 2 vCPUs, 16 MiB RAM, the
/// MMIO scratch device; `kernel_path = "demo"`.
pub const DEMO_CONFIG: &str = include_str!("../../../guests/demo/demo.toml");

/// Image of the real-mode guest: a raw 16-bit image (no header) loaded and
/// entered at 0x8000 in real mode that prints `axvm real-mode guest: hello`
/// and exits 0. It covers the VMM's raw-image and real-mode paths.
pub const REALMODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/realmode"));

/// Absolute path of the real-mode guest's image file, so tests can copy or
/// reference it from a config file.
pub const REALMODE_PATH: &str = concat!(env!("OUT_DIR"), "/images/realmode");

/// The real-mode VM's config (`guests/realmode/realmode.toml`): 1 vCPU,
/// 1 MiB RAM, entry 0x8000; `kernel_path = "realmode"`.
pub const REALMODE_CONFIG: &str = include_str!("../../../guests/realmode/realmode.toml");

/// Image of the ROM guest: an ELF64 loaded at 0x20_0000 that writes to a
/// read-only page at 0x100_0000, expects the write to be ignored and prints
/// `ROM write ignored`. It covers the VMM's read-only memory (nested page
/// fault) path.
pub const ROM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/rom"));

/// Absolute path of the ROM guest's image file, so tests can copy or
/// reference it from a config file.
pub const ROM_PATH: &str = concat!(env!("OUT_DIR"), "/images/rom");

/// The ROM VM's config (`guests/rom/rom.toml`): 1 vCPU, 16 MiB RAM plus the
/// read-only page; `kernel_path = "rom"`.
pub const ROM_CONFIG: &str = include_str!("../../../guests/rom/rom.toml");
