//! The guest instruction behind a device access, for messages. Hosts leave the instruction
//! pointer at the access's own instruction for most exits, but some only exit once the
//! instruction is done: KVM completes an MMIO write before it exits (on any host), and
//! kvm_pvm a port write too. Showing the instruction at RIP then names the *next* one, so
//! the instruction that ends at RIP is looked for instead.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::AxVM;
use crate::device::DeviceSpace;
use crate::vcpu::AxArchVCpu;
use crate::{AccessWidth, AxVMHal, GuestPhysAddr};

/// The longest x86 instruction.
const MAX_INSTRUCTION_BYTES: u64 = 15;

impl<H: AxVMHal> AxVM<H> {
    /// "RIP 0x800b (real mode), past the access: `mov word ptr [0],2Ah` at 0x8005": the
    /// instruction that made `vcpu`'s last `width`-byte access to `space` (a write when
    /// `write`), for messages. Falls back to the instruction at RIP, said to follow the
    /// access, when the host moved past it and the one before cannot be found.
    pub fn describe_access(
        &self,
        vcpu: &mut H::VCpu,
        space: DeviceSpace,
        width: AccessWidth,
        write: bool,
    ) -> Option<String> {
        if !vcpu.ip_past_access(space, write) {
            return self.describe_instruction(vcpu, 1);
        }
        let ip = vcpu.instruction_pointer()?;
        let found = ip
            .physical
            .and_then(|gpa| self.code_before(gpa))
            .and_then(|code| {
                let port = space == DeviceSpace::Port;
                self.hal
                    .disassemble_access_before(&code, ip.linear, ip.bitness, width.size(), port)
            });
        match found {
            Some((len, text)) => Some(format!(
                "RIP {:#x} ({}), past the access: {text} at {:#x}",
                ip.rip,
                mode_name(ip.bitness),
                ip.rip.wrapping_sub(len as u64)
            )),
            None => self
                .describe_instruction(vcpu, 1)
                .map(|text| format!("{text} (the instruction after the access)")),
        }
    }

    /// Up to 15 bytes of guest RAM ending just before `gpa`, within one region.
    fn code_before(&self, gpa: GuestPhysAddr) -> Option<Vec<u8>> {
        let last = GuestPhysAddr::new(gpa.as_u64().checked_sub(1)?);
        let region = self.memory.region_of(last)?;
        let start = gpa
            .as_u64()
            .saturating_sub(MAX_INSTRUCTION_BYTES)
            .max(region.gpa().as_u64());
        let mut code = alloc::vec![0u8; (gpa.as_u64() - start) as usize];
        self.memory
            .read(GuestPhysAddr::new(start), &mut code)
            .ok()?;
        Some(code)
    }
}

/// How code of `bitness` bits runs, in words.
pub(super) fn mode_name(bitness: u32) -> &'static str {
    match bitness {
        16 => "real mode",
        32 => "protected mode",
        _ => "long mode",
    }
}
