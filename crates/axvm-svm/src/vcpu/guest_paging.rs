//! Walking the guest's own page tables in software: linear → guest-physical, for reading
//! the instruction behind an MMIO exit when the processor has no decode assists (QEMU's
//! `-cpu EPYC`), and for naming where a vCPU executes.
//!
//! The walk is axvm-pc's [`axvm_pc::guest_paging`], the one the KVM host uses too: paging
//! off, 32-bit paging (4 MiB pages under CR4.PSE), PAE paging and 4-level long mode (2 MiB
//! and 1 GiB pages). This backend refuses 5-level paging with an error (its guests never
//! enable it, and the backend is not tested with it). Access rights are not checked: the
//! processor already fetched the instruction.

use crate::exit::InsnBytes;
pub use axvm_pc::guest_paging::{GuestPhysReader, GuestWalkError, PagingLevel, PagingRegs};
use axvm_pc::guest_paging::{CR4_LA57, EFER_LMA};

/// The guest-physical address behind `linear`; 5-level paging is refused.
pub fn linear_to_phys(
    reader: &impl GuestPhysReader,
    regs: &PagingRegs,
    linear: u64,
) -> Result<u64, GuestWalkError> {
    if regs.efer & EFER_LMA != 0 && regs.cr4 & CR4_LA57 != 0 {
        return Err(GuestWalkError::FiveLevelPaging { linear });
    }
    axvm_pc::guest_paging::linear_to_phys(reader, regs, linear)
}

/// Up to 15 bytes of the instruction at `linear` (fewer when the next page is not
/// mapped; at least one, else the error).
pub fn fetch_instruction(
    reader: &impl GuestPhysReader,
    regs: &PagingRegs,
    linear: u64,
) -> Result<InsnBytes, GuestWalkError> {
    let mut bytes = [0u8; 15];
    let first_len = ((0x1000 - (linear & 0xfff)) as usize).min(15);
    let gpa = linear_to_phys(reader, regs, linear)?;
    reader
        .read(gpa, &mut bytes[..first_len])
        .ok_or(GuestWalkError::NotRam {
            linear,
            gpa,
            what: "instruction bytes",
        })?;
    let mut len = first_len;
    if first_len < 15 {
        let next = linear.wrapping_add(first_len as u64);
        let rest = linear_to_phys(reader, regs, next)
            .ok()
            .and_then(|gpa| reader.read(gpa, &mut bytes[first_len..]));
        if rest.is_some() {
            len = 15;
        }
    }
    Ok(InsnBytes::new(&bytes[..len]))
}

#[cfg(test)]
mod tests;
