//! What the host prints about a vCPU whose exit nobody could handle (issue 12, item 5):
//! the exit code and information, the instruction at RIP disassembled, the registers.

use alloc::string::String;
use core::fmt::Write;

use super::{guest_paging, SvmVCpu};
use crate::exit::InsnBytes;
use crate::memory::HostMemory;
use crate::vmcb::{SvmExitCode, VmcbSegment};

const GPR_NAMES: [&str; 16] = [
    "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11", "R12", "R13",
    "R14", "R15",
];

/// The registers in the order people read them (RAX RBX RCX RDX, then the rest).
const GPR_ORDER: [usize; 16] = [0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15];

impl<M: HostMemory> SvmVCpu<M> {
    /// A multi-line report for the host's console: the last exit (code, EXITINFO1/2, the
    /// interrupted event), RIP with the instruction there disassembled (from the exit's
    /// instruction bytes, else read through the guest's page tables), the general
    /// registers, RFLAGS, the control registers and EFER, and the segments.
    pub fn describe_state(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_state(&mut text);
        text
    }

    fn write_state(&self, out: &mut String) -> core::fmt::Result {
        let vmcb = self.vmcb();
        let (control, save) = (&vmcb.control, &vmcb.save);
        writeln!(
            out,
            "vCPU {}: #VMEXIT {:?} (EXITCODE {:#x}), EXITINFO1 {:#x}, EXITINFO2 {:#x}, EXITINTINFO {:#x}",
            self.id,
            SvmExitCode::from_raw(control.exit_code),
            control.exit_code,
            control.exit_info1,
            control.exit_info2,
            control.exit_int_info,
        )?;
        let bitness = vmcb.guest_code_bitness();
        write!(
            out,
            "RIP {:#018x} (linear {:#x}, {bitness}-bit): ",
            save.rip,
            self.rip_linear()
        )?;
        match self.instruction_bytes() {
            Ok(bytes) => {
                let (text, len) = disassemble(bytes.as_slice(), bitness, save.rip);
                let shown = InsnBytes::new(&bytes.as_slice()[..len.min(bytes.as_slice().len())]);
                writeln!(out, "{shown}  {text}")?;
            }
            Err(why) => writeln!(out, "instruction unreadable: {why}")?,
        }
        let gprs = self.full_gprs();
        for row in GPR_ORDER.chunks(4) {
            for (i, &reg) in row.iter().enumerate() {
                let sep = if i == 0 { "" } else { "  " };
                write!(out, "{sep}{:<3} {:#018x}", GPR_NAMES[reg], gprs[reg])?;
            }
            writeln!(out)?;
        }
        writeln!(
            out,
            "RFLAGS {:#x}  CR0 {:#x}  CR2 {:#x}  CR3 {:#x}  CR4 {:#x}  EFER {:#x}  CPL {}",
            save.rflags, save.cr0, save.cr2, save.cr3, save.cr4, save.efer, save.cpl
        )?;
        for (name, segment) in [
            ("CS", &save.cs),
            ("SS", &save.ss),
            ("DS", &save.ds),
            ("ES", &save.es),
            ("FS", &save.fs),
            ("GS", &save.gs),
            ("TR", &save.tr),
        ] {
            write_segment(out, name, segment)?;
        }
        writeln!(
            out,
            "GDTR {:#x}/{:#x}  IDTR {:#x}/{:#x}",
            save.gdtr.base, save.gdtr.limit, save.idtr.base, save.idtr.limit
        )
    }

    /// The bytes at RIP: the last exit's (decode assists or our own fetch) when it was at
    /// this RIP, else read from guest memory now.
    fn instruction_bytes(&self) -> Result<InsnBytes, guest_paging::GuestWalkError> {
        let rip = self.vmcb().save.rip;
        if let Some(exit) = self.last_exit.filter(|e| e.rip == rip && e.insn_len > 0) {
            return Ok(InsnBytes::new(
                &exit.insn_bytes[..usize::from(exit.insn_len).min(15)],
            ));
        }
        guest_paging::fetch_instruction(
            &self.guest_reader(),
            &self.paging_regs(),
            self.rip_linear(),
        )
    }
}

fn write_segment(out: &mut String, name: &str, segment: &VmcbSegment) -> core::fmt::Result {
    writeln!(
        out,
        "{name} {:#06x} base {:#x} limit {:#x} attr {:#05x}",
        segment.selector, segment.base, segment.limit, segment.attrib
    )
}

/// The instruction in `bytes` in Intel syntax (axvm-pc's, as every host formats it), and its
/// length (0 when there is none, all of `bytes` when it does not decode).
pub(super) fn disassemble(bytes: &[u8], bitness: u32, rip: u64) -> (String, usize) {
    if !matches!(bitness, 16 | 32 | 64) || bytes.is_empty() {
        return (String::from("(no instruction)"), 0);
    }
    axvm_pc::disassemble::first_instruction(bytes, rip, bitness)
        .unwrap_or_else(|| (String::from("(does not decode)"), bytes.len()))
}
