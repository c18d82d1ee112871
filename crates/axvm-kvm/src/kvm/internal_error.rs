//! What KVM said when it gave up on a vCPU (`KVM_EXIT_INTERNAL_ERROR`), in words: the exit
//! reason in hex and by name, the sub-error by name and meaning, KVM's data words, the
//! registers that say where the guest was, and the instruction KVM could not emulate (its
//! bytes, when KVM passed them, disassembled), as a debugging VMM prints it.

use kvm_bindings::{
    kvm_regs, kvm_sregs, KVM_EXIT_INTERNAL_ERROR, KVM_INTERNAL_ERROR_DELIVERY_EV,
    KVM_INTERNAL_ERROR_EMULATION, KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES,
    KVM_INTERNAL_ERROR_SIMUL_EX, KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON,
};

use axvm_pc::disassemble::disassemble;

/// The sub-error's name and what it means.
fn suberror_name(suberror: u32) -> (&'static str, &'static str) {
    match suberror {
        KVM_INTERNAL_ERROR_EMULATION => (
            "KVM_INTERNAL_ERROR_EMULATION",
            "KVM could not emulate an instruction",
        ),
        KVM_INTERNAL_ERROR_SIMUL_EX => (
            "KVM_INTERNAL_ERROR_SIMUL_EX",
            "an exception occurred while delivering another",
        ),
        KVM_INTERNAL_ERROR_DELIVERY_EV => (
            "KVM_INTERNAL_ERROR_DELIVERY_EV",
            "the CPU exited while delivering an event",
        ),
        KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON => (
            "KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON",
            "the CPU exited for a reason KVM does not handle",
        ),
        _ => ("an unknown sub-error", "see the kernel's KVM documentation"),
    }
}

/// 16, 32 or 64: how code at CS:RIP decodes.
fn bitness(sregs: &kvm_sregs) -> u32 {
    if sregs.cs.l == 1 && sregs.efer & (1 << 10) != 0 {
        64
    } else if sregs.cr0 & 1 != 0 && sregs.cs.db == 1 {
        32
    } else {
        16
    }
}

/// The instruction bytes KVM passed with an emulation failure (`flags` in `data[0]`, then
/// `insn_size` and up to 15 bytes), if it did.
fn instruction_bytes(suberror: u32, data: &[u64]) -> Option<Vec<u8>> {
    let flags = *data.first()?;
    if suberror != KVM_INTERNAL_ERROR_EMULATION
        || flags & u64::from(KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) == 0
    {
        return None;
    }
    let bytes: Vec<u8> = data
        .get(1..3)?
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    let size = usize::from(bytes[0]).min(15);
    Some(bytes[1..=size].to_vec())
}

/// The report of a `KVM_EXIT_INTERNAL_ERROR` with `suberror` and `data` (the `ndata` words
/// KVM filled), for a vCPU at `regs`/`sregs` (when they could be read).
pub(crate) fn internal_error_report(
    suberror: u32,
    data: &[u64],
    regs: Option<&kvm_regs>,
    sregs: Option<&kvm_sregs>,
) -> String {
    let (name, meaning) = suberror_name(suberror);
    let words: Vec<String> = data.iter().map(|word| format!("{word:#x}")).collect();
    let mut text = format!(
        "KVM_EXIT_INTERNAL_ERROR ({KVM_EXIT_INTERNAL_ERROR:#x}): sub-error {suberror:#x} {name} ({meaning}); data [{}]",
        words.join(", ")
    );
    if let (Some(regs), Some(sregs)) = (regs, sregs) {
        text.push_str(&format!(
            "; RIP {:#x} CS {:#x} (base {:#x}) RFLAGS {:#x} RSP {:#x} RAX {:#x} RBX {:#x} RCX {:#x} RDX {:#x} RSI {:#x} RDI {:#x} CR0 {:#x} CR3 {:#x} CR4 {:#x} EFER {:#x}",
            regs.rip, sregs.cs.selector, sregs.cs.base, regs.rflags, regs.rsp, regs.rax, regs.rbx,
            regs.rcx, regs.rdx, regs.rsi, regs.rdi, sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer
        ));
        if let Some(bytes) = instruction_bytes(suberror, data) {
            let linear = sregs.cs.base.wrapping_add(regs.rip);
            let assembly = disassemble(&bytes, linear, bitness(sregs), 1)
                .unwrap_or_else(|| "(does not decode)".into());
            text.push_str(&format!("; instruction bytes {bytes:02x?}: {assembly}"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emulation_failure_names_the_suberror_the_registers_and_the_instruction() {
        let regs = kvm_regs {
            rip: 0x8004,
            ..Default::default()
        };
        let sregs = kvm_sregs::default(); // real mode
                                          // flags = instruction bytes given; insn_size 2, `in al, dx; ...`: 0xec, then 0xeb.
        let data = [1, u64::from_le_bytes([2, 0x0f, 0x0b, 0, 0, 0, 0, 0]), 0];
        let text = internal_error_report(1, &data, Some(&regs), Some(&sregs));
        for want in [
            "KVM_EXIT_INTERNAL_ERROR (0x11)",
            "sub-error 0x1 KVM_INTERNAL_ERROR_EMULATION",
            "data [0x1, 0xb0f02, 0x0]",
            "RIP 0x8004",
            "instruction bytes [0f, 0b]: ud2",
        ] {
            assert!(text.contains(want), "{want:?} is not in {text}");
        }
    }

    #[test]
    fn other_suberrors_are_named_without_instruction_bytes() {
        let text = internal_error_report(3, &[0x80000b0e, 0x31], None, None);
        assert!(text.contains("KVM_INTERNAL_ERROR_DELIVERY_EV"), "{text}");
        assert!(text.contains("data [0x80000b0e, 0x31]"), "{text}");
        assert!(!text.contains("instruction bytes"), "{text}");
    }
}
