//! Where axvm puts boot data in low guest memory, the way PC firmware does, so that kernels
//! find it where they look and images (loaded at 1 MiB and above) do not collide with it.
//!
//! ```text
//! 0x0000_1000-0x0000_8000  GDT and boot page tables          (page_tables.rs)
//! 0x0000_9000-0x0009_f000  boot-protocol data: Multiboot info, PVH start_info, Linux zero
//!                          page, command line, memory maps, module lists (BootInfoWriter)
//! 0x0009_fc00-0x0010_0000  reserved, as on a PC: EBDA, VGA hole, option ROMs, BIOS
//!   0x000e_0000-0x000f_0000  ACPI tables, RSDP first
//!   0x000f_0000-0x000f_1000  MP floating pointer and MP configuration table
//! ```
//!
//! Each boot protocol fills the boot data area from its start, in this order (the
//! register names the block the kernel is given):
//!
//! - Multiboot: command line, boot loader name, module name, module list, memory map, then
//!   the information structure (EBX); the GDT at 0x1000.
//! - PVH: command line, module list, memory map, then `hvm_start_info` (EBX); the GDT at
//!   0x1000.
//! - Linux: command line, then the zero page (RSI) at the next 4 KiB boundary (0xa000 for
//!   a command line under 4 KiB); GDT and page tables at 0x1000-0x8000.
//!
//! Kernels and ramdisks may not overlap [`PROTOCOL_RESERVED`], so in practice they go at
//! 1 MiB and above.

use axvm::{AxVM, AxVMHal, ConfigError, GuestPhysAddr};

use super::page_tables::BOOT_AREA_START;

/// Boot-protocol data area.
pub const BOOT_INFO_START: u64 = 0x9000;
/// One past the boot-protocol data area.
pub const BOOT_INFO_END: u64 = 0x9_f000;
/// Start of the reserved legacy area below 1 MiB (EBDA onwards).
pub const LEGACY_HOLE_START: u64 = 0x9_fc00;
/// 1 MiB: where the legacy area ends and "upper memory" starts.
pub const HIGH_MEMORY_START: u64 = 0x10_0000;
/// ACPI tables area (inside the legacy hole, so the guest's memory map marks it reserved).
pub const ACPI_START: u64 = 0xe_0000;
/// One past the ACPI tables area.
pub const ACPI_END: u64 = 0xf_0000;
/// MP table area.
pub const MPTABLE_START: u64 = 0xf_0000;
/// One past the MP table area.
pub const MPTABLE_END: u64 = 0xf_1000;

/// Low memory the PC boot protocols (Multiboot, PVH, Linux) keep for themselves, with what
/// it holds: kernel segments and ramdisks may not overlap it, because axvm writes the GDT,
/// page tables and boot data there and the ACPI and MP tables go in the legacy area.
pub const PROTOCOL_RESERVED: [(u64, u64, &str); 2] = [
    (
        BOOT_AREA_START,
        BOOT_INFO_END,
        "the GDT, boot page tables and boot data",
    ),
    (
        LEGACY_HOLE_START,
        HIGH_MEMORY_START,
        "the legacy area below 1 MiB (ACPI and MP tables)",
    ),
];

/// Hands out space in the boot-protocol data area and writes data there: each boot protocol
/// lays out its info block, command line and tables through one of these.
pub struct BootInfoWriter<'a, H: AxVMHal> {
    vm: &'a AxVM<H>,
    next: u64,
}

impl<'a, H: AxVMHal> BootInfoWriter<'a, H> {
    /// A writer at the start of the area.
    pub fn new(vm: &'a AxVM<H>) -> Self {
        Self {
            vm,
            next: BOOT_INFO_START,
        }
    }

    /// Writes `bytes` at the next `align`-aligned address (a power of two) and returns it.
    /// `what` names the data in the error when it does not fit or the area is not RAM.
    pub fn push(
        &mut self,
        what: &str,
        bytes: &[u8],
        align: u64,
    ) -> Result<GuestPhysAddr, ConfigError> {
        let at = self.next.next_multiple_of(align.max(1));
        let end = at.checked_add(bytes.len() as u64).filter(|&end| end <= BOOT_INFO_END).ok_or_else(|| {
            ConfigError::invalid(
                "kernel",
                format!("the boot data ({what}) does not fit in {BOOT_INFO_START:#x}..{BOOT_INFO_END:#x}; shorten the command line"),
            )
        })?;
        self.vm
            .memory()
            .write(GuestPhysAddr::new(at), bytes)
            .map_err(|err| {
                ConfigError::invalid(
                    "kernel.memory_regions",
                    format!("boot data ({what}) goes at {at:#x}, which must be RAM: {err}"),
                )
            })?;
        self.next = end;
        Ok(GuestPhysAddr::new(at))
    }

    /// Writes `text` as a NUL-terminated string.
    pub fn push_str(&mut self, what: &str, text: &str) -> Result<GuestPhysAddr, ConfigError> {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
        self.push(what, &bytes, 1)
    }
}
