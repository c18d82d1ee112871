//! The vCPU as GDB sees it: x86-64 in every processor mode, with the segment bases and the
//! system registers (CR0, CR2, CR3, CR4, CR8, EFER) besides GDB's usual core and SSE sets.
//!
//! GDB gets one register layout whatever the guest runs: a 16-bit or 32-bit guest's
//! registers show as the low halves of the 64-bit ones (`$eax` is `$rax`'s), and `$pc` is
//! RIP, the offset in CS (in real mode `$cs * 16 + $pc` is the linear address). Addresses
//! GDB reads are translated as the guest's current mode does ([`super::paging`]).

use gdbstub::arch::{Arch, Registers};
use gdbstub_arch::x86::reg::id::X86_64CoreRegId;
use gdbstub_arch::x86::reg::X86_64CoreRegs;

use crate::kvm::VcpuRegisters;

/// axvm's x86-64 target: GDB's `i386:x86-64` plus the system registers.
pub(crate) enum X86_64System {}

impl Arch for X86_64System {
    type Usize = u64;
    type Registers = SystemRegs;
    /// Single registers are not read one by one (`p`); GDB then reads them all (`g`).
    type RegId = X86_64CoreRegId;
    type BreakpointKind = usize;

    fn target_description_xml() -> Option<&'static str> {
        Some(include_str!("target.xml"))
    }
}

/// Every register of [`X86_64System`], in the order of `target.xml`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SystemRegs {
    /// GDB's core and SSE registers.
    pub core: X86_64CoreRegs,
    /// FS_BASE, GS_BASE, CR0, CR2, CR3, CR4, CR8, EFER.
    pub system: [u64; SYSTEM_REGS],
}

/// How many registers follow the core and SSE ones.
const SYSTEM_REGS: usize = 8;
/// Bytes of the core and SSE registers in a `g` packet.
const CORE_BYTES: usize = 0x218;

impl Registers for SystemRegs {
    type ProgramCounter = u64;

    fn pc(&self) -> u64 {
        self.core.rip
    }

    fn gdb_serialize(&self, mut write_byte: impl FnMut(Option<u8>)) {
        self.core.gdb_serialize(&mut write_byte);
        for value in self.system {
            value
                .to_le_bytes()
                .into_iter()
                .for_each(|b| write_byte(Some(b)));
        }
    }

    fn gdb_deserialize(&mut self, bytes: &[u8]) -> Result<(), ()> {
        let (core, system) = bytes.split_at_checked(CORE_BYTES).ok_or(())?;
        self.core.gdb_deserialize(core)?;
        // GDB may send fewer registers than it was told of; those keep their values.
        for (slot, chunk) in self.system.iter_mut().zip(system.chunks_exact(8)) {
            *slot = u64::from_le_bytes(chunk.try_into().map_err(|_| ())?);
        }
        Ok(())
    }
}

impl SystemRegs {
    /// What GDB shows of a vCPU's registers.
    pub(crate) fn from_vcpu(vcpu: &VcpuRegisters) -> Self {
        let (r, s, f) = (&vcpu.regs, &vcpu.sregs, &vcpu.fpu);
        let mut core = X86_64CoreRegs {
            regs: [
                r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp, r.r8, r.r9, r.r10, r.r11,
                r.r12, r.r13, r.r14, r.r15,
            ],
            rip: r.rip,
            // RFLAGS' upper half is reserved (zero).
            eflags: r.rflags as u32,
            ..Default::default()
        };
        let segments = &mut core.segments;
        segments.cs = u32::from(s.cs.selector);
        segments.ss = u32::from(s.ss.selector);
        segments.ds = u32::from(s.ds.selector);
        segments.es = u32::from(s.es.selector);
        segments.fs = u32::from(s.fs.selector);
        segments.gs = u32::from(s.gs.selector);
        for (st, fpr) in core.st.iter_mut().zip(&f.fpr) {
            st.copy_from_slice(&fpr[..10]);
        }
        core.fpu.fctrl = u32::from(f.fcw);
        core.fpu.fstat = u32::from(f.fsw);
        core.fpu.ftag = u32::from(f.ftwx);
        core.fpu.fop = u32::from(f.last_opcode);
        core.fpu.fioff = f.last_ip as u32;
        core.fpu.fooff = f.last_dp as u32;
        for (xmm, bytes) in core.xmm.iter_mut().zip(&f.xmm) {
            *xmm = u128::from_le_bytes(*bytes);
        }
        core.mxcsr = f.mxcsr;
        Self {
            core,
            system: [
                s.fs.base, s.gs.base, s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer,
            ],
        }
    }

    /// Puts what GDB wrote into `vcpu`. A segment register written with a new selector
    /// keeps its cached descriptor (base, limit, attributes), as a debugger's write cannot
    /// load a descriptor.
    pub(crate) fn apply_to(&self, vcpu: &mut VcpuRegisters) {
        let (r, s, f) = (&mut vcpu.regs, &mut vcpu.sregs, &mut vcpu.fpu);
        let c = &self.core;
        let gprs = [
            &mut r.rax, &mut r.rbx, &mut r.rcx, &mut r.rdx, &mut r.rsi, &mut r.rdi, &mut r.rbp,
            &mut r.rsp, &mut r.r8, &mut r.r9, &mut r.r10, &mut r.r11, &mut r.r12, &mut r.r13,
            &mut r.r14, &mut r.r15,
        ];
        for (slot, value) in gprs.into_iter().zip(c.regs) {
            *slot = value;
        }
        r.rip = c.rip;
        r.rflags = u64::from(c.eflags);
        let selectors = [
            (&mut s.cs, c.segments.cs),
            (&mut s.ss, c.segments.ss),
            (&mut s.ds, c.segments.ds),
            (&mut s.es, c.segments.es),
            (&mut s.fs, c.segments.fs),
            (&mut s.gs, c.segments.gs),
        ];
        for (segment, selector) in selectors {
            segment.selector = selector as u16;
        }
        for (fpr, st) in f.fpr.iter_mut().zip(&c.st) {
            fpr[..10].copy_from_slice(st);
        }
        f.fcw = c.fpu.fctrl as u16;
        f.fsw = c.fpu.fstat as u16;
        f.ftwx = c.fpu.ftag as u8;
        for (bytes, xmm) in f.xmm.iter_mut().zip(c.xmm) {
            *bytes = xmm.to_le_bytes();
        }
        f.mxcsr = c.mxcsr;
        let [fs_base, gs_base, cr0, cr2, cr3, cr4, cr8, efer] = self.system;
        (s.fs.base, s.gs.base) = (fs_base, gs_base);
        (s.cr0, s.cr2, s.cr3, s.cr4, s.cr8, s.efer) = (cr0, cr2, cr3, cr4, cr8, efer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_g_packet_holds_core_then_system_registers_and_round_trips() {
        let mut vcpu = VcpuRegisters::default();
        vcpu.regs.rax = 0x1122_3344_5566_7788;
        vcpu.regs.rip = 0x20_0000;
        vcpu.sregs.cs.selector = 0x8;
        vcpu.sregs.cr3 = 0x1000;
        vcpu.sregs.efer = 0x500;
        let regs = SystemRegs::from_vcpu(&vcpu);
        let mut bytes = Vec::new();
        regs.gdb_serialize(|b| bytes.push(b.unwrap_or(0)));
        assert_eq!(bytes.len(), CORE_BYTES + 8 * SYSTEM_REGS);
        assert_eq!(bytes[..8], 0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(bytes[0x80..0x88], 0x20_0000u64.to_le_bytes());
        // cs, then cr3 (5th system register) and efer (the last).
        assert_eq!(bytes[0x8c..0x90], 8u32.to_le_bytes());
        assert_eq!(
            bytes[CORE_BYTES + 32..CORE_BYTES + 40],
            0x1000u64.to_le_bytes()
        );
        assert_eq!(bytes[CORE_BYTES + 56..], 0x500u64.to_le_bytes());

        let mut back = SystemRegs::default();
        back.gdb_deserialize(&bytes).unwrap();
        assert_eq!(back, regs);
        let mut written = VcpuRegisters::default();
        back.apply_to(&mut written);
        assert_eq!(written.regs.rax, vcpu.regs.rax);
        assert_eq!(written.sregs.cr3, 0x1000);
        assert!(SystemRegs::default()
            .gdb_deserialize(&bytes[..100])
            .is_err());
    }

    #[test]
    fn the_target_description_lists_as_many_registers_as_the_packet() {
        let xml = X86_64System::target_description_xml().unwrap();
        // 16 GPRs, rip, eflags, 6 segments, 8 st, 8 x87 control, 16 xmm, mxcsr: 57; then
        // the segment bases and the system registers.
        assert_eq!(xml.matches("<reg ").count(), 57 + SYSTEM_REGS);
        assert!(xml.contains(r#"name="cr3""#) && xml.contains(r#"name="efer""#));
    }
}
