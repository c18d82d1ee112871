//! [`BootInfoWriter`]: how each boot protocol lays out its data (info block, command line,
//! memory map, module list) in its boot data area (the PC layout's 0x9000..0x9f000 unless
//! an image is there: [`low_memory`](crate::low_memory)), one item after the other, refusing what does not
//! fit with the data named.

use alloc::format;
use alloc::vec::Vec;

use axvm::{AxVM, AxVMHal, ConfigError, GuestPhysAddr};

/// Hands out space in the boot-protocol data area and writes data there: each boot protocol
/// lays out its info block, command line and tables through one of these.
pub struct BootInfoWriter<'a, H: AxVMHal> {
    vm: &'a AxVM<H>,
    next: u64,
    /// The area: `[start, end)`.
    area: (u64, u64),
}

impl<'a, H: AxVMHal> BootInfoWriter<'a, H> {
    /// A writer at the start of `area` (`[start, end)`, page-aligned).
    pub fn new(vm: &'a AxVM<H>, area: (u64, u64)) -> Self {
        Self {
            vm,
            next: area.0,
            area,
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
        let (start, limit) = self.area;
        let end = at.checked_add(bytes.len() as u64).filter(|&end| end <= limit).ok_or_else(|| {
            ConfigError::invalid(
                "kernel",
                format!("the boot data ({what}) does not fit in {start:#x}..{limit:#x}; shorten the command line"),
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
