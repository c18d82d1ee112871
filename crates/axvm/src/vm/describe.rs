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
        // A `rep movsb` (or another repeated string instruction) stays at its own RIP until
        // its last iteration: until then the access is the instruction at RIP.
        let code_at_ip = ip.physical.and_then(|gpa| self.code_at(gpa));
        if code_at_ip.is_some_and(|code| repeats_string_instruction(&code, ip.bitness)) {
            return self.describe_instruction(vcpu, 1);
        }
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

/// Whether `code` starts with a string instruction (MOVS, STOS, CMPS, SCAS, LODS, INS,
/// OUTS) under a REP/REPE/REPNE prefix, decoded as `bitness`-bit code.
fn repeats_string_instruction(code: &[u8], bitness: u32) -> bool {
    let mut repeated = false;
    for (index, &byte) in code.iter().enumerate().take(MAX_INSTRUCTION_BYTES as usize) {
        match byte {
            0xf2 | 0xf3 => repeated = true,
            // Segment overrides, operand and address size, LOCK.
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0x66 | 0x67 | 0xf0 => {}
            // REX, which only long mode has, comes last before the opcode.
            0x40..=0x4f if bitness == 64 => {
                return repeated && code.get(index + 1).is_some_and(|&op| is_string_opcode(op));
            }
            opcode => return repeated && is_string_opcode(opcode),
        }
    }
    false
}

/// INS, OUTS, MOVS, CMPS, STOS, LODS, SCAS (byte and word/dword/qword forms).
fn is_string_opcode(opcode: u8) -> bool {
    matches!(opcode, 0x6c..=0x6f | 0xa4..=0xa7 | 0xaa..=0xaf)
}

/// How code of `bitness` bits runs, in words.
pub(super) fn mode_name(bitness: u32) -> &'static str {
    match bitness {
        16 => "real mode",
        32 => "protected mode",
        _ => "long mode",
    }
}

#[cfg(test)]
mod tests {
    use super::repeats_string_instruction;

    #[test]
    fn repeated_string_instructions_are_recognised() {
        assert!(repeats_string_instruction(&[0xf3, 0xa4], 16)); // rep movsb
        assert!(repeats_string_instruction(&[0xf3, 0x66, 0xab], 32)); // rep stosw
        assert!(repeats_string_instruction(&[0xf3, 0x48, 0xa5], 64)); // rep movsq
        assert!(repeats_string_instruction(&[0x26, 0xf3, 0x6e], 16)); // rep outsb es:
        assert!(!repeats_string_instruction(&[0xa4], 16)); // movsb, once
        assert!(!repeats_string_instruction(&[0xf3, 0x90], 16)); // pause
        assert!(!repeats_string_instruction(&[0xf3, 0x48, 0xa5], 32)); // dec ax in 32-bit code
        assert!(!repeats_string_instruction(&[0xf3], 16));
    }
}
