//! Turning a `#VMEXIT` into the core's [`AxVCpuExitReason`], with the same kinds and widths
//! the KVM host reports, plus what the backend must do to the guest before it runs again
//! (skip the instruction, put a read's value into the right register).
//!
//! The decoding is pure: it reads an [`ExitInfo`] snapshot (copied from the VMCB and the
//! host-saved registers) and never touches the hardware, so every case is unit-tested with
//! synthetic contents.

mod mmio;
#[cfg(test)]
mod tests;

use axvm::{
    vcpu::{extend_mmio_read, merge_port_read, split_msr_value, LoadExtension},
    AccessWidth, AxVCpuExitReason, GuestPhysAddr, MappingFlags,
};

pub use mmio::{FlagsOp, GprTarget, InsnBytes, LogicOp};

use crate::vmcb::{SvmExitCode, Vmcb};

/// The guest's general registers in the x86 encoding order (RAX = 0, RCX, RDX, RBX, RSP,
/// RBP, RSI, RDI, R8 ... R15 = 15). The VMCB holds only RAX and RSP; the host saves the
/// rest around `VMRUN`, and [`ExitInfo::from_vmcb`] merges the two.
pub type GuestGprs = [u64; 16];

/// Everything exit decoding reads, copied out of the VMCB and the host-saved registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitInfo {
    /// EXITCODE.
    pub code: u64,
    /// EXITINFO1.
    pub info1: u64,
    /// EXITINFO2.
    pub info2: u64,
    /// The guest's RIP at the exit (the intercepted instruction).
    pub rip: u64,
    /// NRIP save: the next instruction's RIP, or 0 when the processor has no NRIP save.
    pub next_rip: u64,
    /// The guest's general registers.
    pub gprs: GuestGprs,
    /// Decode assists: the fetched instruction bytes (only the first `insn_len` count).
    pub insn_bytes: [u8; 15],
    /// Decode assists: how many bytes were fetched; 0 without decode assists.
    pub insn_len: u8,
    /// The guest's code size (16, 32 or 64), for decoding those bytes.
    pub code_bitness: u32,
}

impl ExitInfo {
    /// The snapshot after a `#VMEXIT`: `gprs` are the registers the host saved, whose RAX
    /// and RSP are replaced by the VMCB's.
    pub fn from_vmcb(vmcb: &Vmcb, gprs: &GuestGprs) -> Self {
        let mut gprs = *gprs;
        gprs[0] = vmcb.save.rax;
        gprs[4] = vmcb.save.rsp;
        Self {
            code: vmcb.control.exit_code,
            info1: vmcb.control.exit_info1,
            info2: vmcb.control.exit_info2,
            rip: vmcb.save.rip,
            next_rip: vmcb.control.next_rip,
            gprs,
            insn_bytes: vmcb.control.guest_insn_bytes,
            insn_len: vmcb.control.guest_insn_len,
            code_bitness: vmcb.guest_code_bitness(),
        }
    }

    /// The next instruction's RIP: NRIP save's if present, else `rip + len` for the
    /// fixed-length instruction that was intercepted.
    fn next_rip_or(&self, len: u64) -> u64 {
        if self.next_rip != 0 {
            self.next_rip
        } else {
            self.rip.wrapping_add(len)
        }
    }
}

/// A decoded exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmExit {
    /// An exit for the core's [`AxVM::run_vcpu`](axvm::AxVM::run_vcpu) or its caller.
    Core {
        /// Why the vCPU exited, as the core names it.
        reason: AxVCpuExitReason,
        /// How to resume the guest afterwards; `None` when it must not run again.
        resume: Option<Resume>,
    },
    /// `CPUID`, which the backend answers itself (as KVM does in its kernel): the core has
    /// no exit kind for it.
    Cpuid {
        /// EAX: the leaf.
        leaf: u32,
        /// ECX: the subleaf.
        subleaf: u32,
        /// Where the guest goes on after the answer.
        next_rip: u64,
    },
}

/// How the backend resumes the guest after the exit was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// The RIP to resume at (past the intercepted instruction, or the same one for an
    /// interrupt).
    pub next_rip: u64,
    /// For a read: where the value the core answers with goes.
    pub read_target: Option<ReadTarget>,
}

/// Where the value of a read exit goes, by the rules of the instruction that read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadTarget {
    /// `IN`: AL, AX or EAX (see [`merge_port_read`]).
    PortRead(AccessWidth),
    /// `RDMSR`: EDX:EAX.
    MsrRead,
    /// An MMIO load into a general register.
    MmioLoad {
        /// The register.
        target: GprTarget,
        /// The access width.
        width: AccessWidth,
        /// How the value extends into the register.
        extension: LoadExtension,
    },
    /// `AND`/`OR`/`XOR reg, m` with an MMIO source: the register combined with the value,
    /// flags from the result.
    MmioLogic {
        /// The register.
        target: GprTarget,
        /// The access width.
        width: AccessWidth,
        /// The operation.
        op: LogicOp,
    },
    /// The read of an MMIO read-modify-write (`AND`/`OR`/`XOR m, reg/imm`): the value
    /// combined with `operand` is written back to `addr` ([`write_back`](Self::write_back)),
    /// flags from the result.
    MmioUpdate {
        /// The guest-physical address, read and then written.
        addr: GuestPhysAddr,
        /// The access width.
        width: AccessWidth,
        /// The operation.
        op: LogicOp,
        /// The other operand.
        operand: u64,
    },
    /// An MMIO read that only sets RFLAGS (`BT`, `TEST`): see [`ReadTarget::flags_after`].
    MmioFlags {
        /// The access width.
        width: AccessWidth,
        /// The instruction's flag computation.
        op: FlagsOp,
    },
}

impl ReadTarget {
    /// RFLAGS after the read of `value`, for [`MmioFlags`](Self::MmioFlags) and
    /// [`MmioLogic`](Self::MmioLogic) (`gprs` as [`apply`](Self::apply) left them);
    /// `rflags` unchanged for the other targets.
    pub fn flags_after(self, rflags: u64, gprs: &GuestGprs, value: u64) -> u64 {
        match self {
            Self::MmioFlags { width, op } => op.apply(rflags, value, width),
            Self::MmioUpdate {
                width, op, operand, ..
            } => mmio::logic_flags(rflags, op.combine(value, operand), width),
            Self::MmioLogic { target, width, .. } => {
                let register = gprs[usize::from(target.index) % 16];
                let result = if target.high_byte {
                    register >> 8
                } else {
                    register
                };
                mmio::logic_flags(rflags, result, width)
            }
            _ => rflags,
        }
    }

    /// Puts `value` (the access's bytes, zero-extended) into `gprs` the way the guest's
    /// instruction would have.
    pub fn apply(self, gprs: &mut GuestGprs, value: u64) {
        match self {
            Self::PortRead(width) => gprs[0] = merge_port_read(gprs[0], value, width),
            Self::MsrRead => (gprs[2], gprs[0]) = split_msr_value(value),
            Self::MmioLoad {
                target,
                width,
                extension,
            } => {
                let register = &mut gprs[usize::from(target.index) % 16];
                *register = if target.high_byte {
                    // AH/CH/DH/BH: only bits 8-15 change (a byte MOV, nothing extends).
                    (*register & !0xff00) | ((value & 0xff) << 8)
                } else {
                    extend_mmio_read(*register, value, width, extension)
                };
            }
            Self::MmioLogic { target, width, op } => {
                let register = &mut gprs[usize::from(target.index) % 16];
                *register = if target.high_byte {
                    let result = op.combine(*register >> 8, value) & 0xff;
                    (*register & !0xff00) | (result << 8)
                } else {
                    let result = width.truncate(op.combine(*register, value));
                    // As a MOV of the result: 32-bit writes zero-extend, 8/16 merge.
                    let extension = if width.size() >= 4 {
                        LoadExtension::Zero
                    } else {
                        LoadExtension::Keep
                    };
                    extend_mmio_read(*register, result, width, extension)
                };
            }
            Self::MmioFlags { .. } | Self::MmioUpdate { .. } => {}
        }
    }

    /// The write that completes a read-modify-write after the read gave `value`: the
    /// [`MmioWrite`](AxVCpuExitReason::MmioWrite) exit the backend reports next. `None`
    /// for every other target.
    pub fn write_back(self, value: u64) -> Option<AxVCpuExitReason> {
        match self {
            Self::MmioUpdate {
                addr,
                width,
                op,
                operand,
            } => Some(AxVCpuExitReason::MmioWrite {
                addr,
                width,
                data: width.truncate(op.combine(value, operand)),
            }),
            _ => None,
        }
    }
}

/// Why an exit could not be decoded; each names the exit and what is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExitDecodeError {
    /// An exit code the backend does not handle yet.
    #[error("SVM exit {code:?} (EXITCODE {raw:#x}, EXITINFO1 {info1:#x}, EXITINFO2 {info2:#x}) is not handled", raw = code.raw())]
    Unhandled {
        /// The exit code.
        code: SvmExitCode,
        /// EXITINFO1.
        info1: u64,
        /// EXITINFO2.
        info2: u64,
    },
    /// INS/OUTS: string I/O needs the guest's segments and page tables, not done yet.
    #[error("string I/O ({}) on port {port:#x} is not supported yet", if *rep { "REP INS/OUTS" } else { "INS/OUTS" })]
    StringIo {
        /// The port.
        port: u16,
        /// Whether it had a REP prefix.
        rep: bool,
    },
    /// An IOIO exit whose EXITINFO1 names no single operand size.
    #[error("IOIO exit on port {port:#x} with EXITINFO1 {info1:#x}: no single operand size (SZ8/SZ16/SZ32)")]
    BadIoSize {
        /// The port.
        port: u16,
        /// EXITINFO1.
        info1: u64,
    },
    /// An MMIO or read-only-memory exit without instruction bytes (the vCPU reads them
    /// from guest memory when the processor has no decode assists).
    #[error("guest access at {gpa:#x} (RIP {rip:#x}): the exit holds no instruction bytes (no decode assists, and none read from guest memory)")]
    NoInstructionBytes {
        /// The guest-physical address accessed.
        gpa: u64,
        /// The guest's RIP.
        rip: u64,
    },
    /// The instruction bytes do not decode.
    #[error("MMIO access at {gpa:#x} (RIP {rip:#x}): instruction bytes [{bytes}] do not decode")]
    UndecodableMmioInstruction {
        /// The guest-physical address accessed.
        gpa: u64,
        /// The guest's RIP.
        rip: u64,
        /// The bytes.
        bytes: InsnBytes,
    },
    /// An instruction the MMIO emulation does not know (MOV, MOVZX, MOVSX, MOVSXD between
    /// a general register or an immediate and memory; AND/OR/XOR into a register; BT with
    /// an immediate and TEST, so far).
    #[error("MMIO access at {gpa:#x} (RIP {rip:#x}) by {mnemonic:?}: only MOV/MOVZX/MOVSX/MOVSXD with a general register or immediate, AND/OR/XOR reg, mem, BT mem, imm8 and TEST mem are emulated")]
    UnsupportedMmioInstruction {
        /// The guest-physical address accessed.
        gpa: u64,
        /// The guest's RIP.
        rip: u64,
        /// What the instruction was.
        mnemonic: iced_x86::Mnemonic,
    },
}

/// IOIO EXITINFO1 bits (APM vol. 2, "IOIO Intercept Information").
mod ioio {
    pub const TYPE_IN: u64 = 1 << 0;
    pub const STR: u64 = 1 << 2;
    pub const REP: u64 = 1 << 3;
    pub const SZ8: u64 = 1 << 4;
    pub const SZ16: u64 = 1 << 5;
    pub const SZ32: u64 = 1 << 6;
    pub const PORT_SHIFT: u32 = 16;
}

/// NPF EXITINFO1 (the page-fault error code) bits.
mod npf {
    pub const PRESENT: u64 = 1 << 0;
    pub const WRITE: u64 = 1 << 1;
    pub const FETCH: u64 = 1 << 4;
}

/// Decodes the exit in `info`.
pub fn decode_exit(info: &ExitInfo) -> Result<SvmExit, ExitDecodeError> {
    let core = |reason, next_rip: Option<u64>| SvmExit::Core {
        reason,
        resume: next_rip.map(|next_rip| Resume {
            next_rip,
            read_target: None,
        }),
    };
    let code = SvmExitCode::from_raw(info.code);
    match code {
        SvmExitCode::Ioio => decode_ioio(info),
        SvmExitCode::Msr => Ok(decode_msr(info)),
        SvmExitCode::NestedPageFault => decode_npf(info),
        SvmExitCode::Cpuid => Ok(SvmExit::Cpuid {
            leaf: info.gprs[0] as u32,
            subleaf: info.gprs[1] as u32,
            next_rip: info.next_rip_or(2),
        }),
        SvmExitCode::Hlt => Ok(core(AxVCpuExitReason::Halt, Some(info.next_rip_or(1)))),
        SvmExitCode::Vmmcall => {
            let g = &info.gprs;
            let reason = AxVCpuExitReason::Hypercall {
                nr: g[0],
                args: [g[3], g[1], g[2], g[6], g[7], g[8]],
            };
            Ok(core(reason, Some(info.next_rip_or(3))))
        }
        // The host interrupt is still pending: the host takes it once it re-enables
        // interrupts, then runs the guest again from the same instruction.
        SvmExitCode::Intr => Ok(core(AxVCpuExitReason::Interrupted, Some(info.rip))),
        SvmExitCode::Shutdown => Ok(core(AxVCpuExitReason::SystemDown, None)),
        SvmExitCode::Invalid => Ok(core(
            AxVCpuExitReason::FailEntry {
                hardware_entry_failure_reason: info.code,
            },
            None,
        )),
        _ => Err(ExitDecodeError::Unhandled {
            code,
            info1: info.info1,
            info2: info.info2,
        }),
    }
}

/// IN/OUT: port, width and direction from EXITINFO1; the next RIP is EXITINFO2.
fn decode_ioio(info: &ExitInfo) -> Result<SvmExit, ExitDecodeError> {
    let port = (info.info1 >> ioio::PORT_SHIFT) as u16;
    if info.info1 & ioio::STR != 0 {
        return Err(ExitDecodeError::StringIo {
            port,
            rep: info.info1 & ioio::REP != 0,
        });
    }
    let width = match info.info1 & (ioio::SZ8 | ioio::SZ16 | ioio::SZ32) {
        ioio::SZ8 => AccessWidth::Byte,
        ioio::SZ16 => AccessWidth::Word,
        ioio::SZ32 => AccessWidth::Dword,
        _ => {
            return Err(ExitDecodeError::BadIoSize {
                port,
                info1: info.info1,
            })
        }
    };
    let (reason, read_target) = if info.info1 & ioio::TYPE_IN != 0 {
        (
            AxVCpuExitReason::IoRead { port, width },
            Some(ReadTarget::PortRead(width)),
        )
    } else {
        let data = width.truncate(info.gprs[0]);
        (AxVCpuExitReason::IoWrite { port, width, data }, None)
    };
    Ok(SvmExit::Core {
        reason,
        resume: Some(Resume {
            next_rip: info.info2,
            read_target,
        }),
    })
}

/// RDMSR (EXITINFO1 = 0) or WRMSR (1): the MSR in ECX, a written value in EDX:EAX.
fn decode_msr(info: &ExitInfo) -> SvmExit {
    let addr = info.gprs[1] as u32;
    let next_rip = info.next_rip_or(2);
    if info.info1 & 1 == 0 {
        let resume = Resume {
            next_rip,
            read_target: Some(ReadTarget::MsrRead),
        };
        SvmExit::Core {
            reason: AxVCpuExitReason::SysRegRead { addr },
            resume: Some(resume),
        }
    } else {
        let value = (info.gprs[2] << 32) | (info.gprs[0] & 0xffff_ffff);
        let resume = Resume {
            next_rip,
            read_target: None,
        };
        SvmExit::Core {
            reason: AxVCpuExitReason::SysRegWrite { addr, value },
            resume: Some(resume),
        }
    }
}

/// A nested page fault: an access to an unmapped page (MMIO, decoded from the instruction
/// bytes) or a permission violation/instruction fetch (reported as such).
fn decode_npf(info: &ExitInfo) -> Result<SvmExit, ExitDecodeError> {
    let gpa = info.info2;
    let addr = GuestPhysAddr::new(gpa);
    if info.info1 & (npf::PRESENT | npf::FETCH) != 0 {
        let access_flags = if info.info1 & npf::FETCH != 0 {
            MappingFlags::EXECUTE
        } else if info.info1 & npf::WRITE != 0 {
            MappingFlags::WRITE
        } else {
            MappingFlags::READ
        };
        // A write to a read-only page (ROM): the core drops it, as ROM ignores writes, and
        // the guest goes on past the instruction, as under the KVM host (KVM completes the
        // access before it exits). A fetch runs the instruction again.
        let resume = if access_flags == MappingFlags::WRITE {
            let bytes = instruction_bytes(info, gpa)?;
            let len = mmio::instruction_len(bytes, info.code_bitness, info.rip, gpa)?;
            Some(Resume {
                next_rip: info.rip.wrapping_add(len),
                read_target: None,
            })
        } else {
            None
        };
        let reason = AxVCpuExitReason::NestedPageFault { addr, access_flags };
        return Ok(SvmExit::Core { reason, resume });
    }
    let bytes = instruction_bytes(info, gpa)?;
    let (access, len) = mmio::decode_mmio(bytes, info.code_bitness, info.rip, gpa, &info.gprs)?;
    let next_rip = info.rip.wrapping_add(len);
    Ok(match access {
        mmio::MmioAccess::Load {
            width,
            target,
            extension,
        } => SvmExit::Core {
            reason: AxVCpuExitReason::MmioRead { addr, width },
            resume: Some(Resume {
                next_rip,
                read_target: Some(ReadTarget::MmioLoad {
                    target,
                    width,
                    extension,
                }),
            }),
        },
        mmio::MmioAccess::Logic { width, target, op } => SvmExit::Core {
            reason: AxVCpuExitReason::MmioRead { addr, width },
            resume: Some(Resume {
                next_rip,
                read_target: Some(ReadTarget::MmioLogic { target, width, op }),
            }),
        },
        mmio::MmioAccess::Update { width, op, operand } => SvmExit::Core {
            reason: AxVCpuExitReason::MmioRead { addr, width },
            resume: Some(Resume {
                next_rip,
                read_target: Some(ReadTarget::MmioUpdate {
                    addr,
                    width,
                    op,
                    operand,
                }),
            }),
        },
        mmio::MmioAccess::Flags { width, op } => SvmExit::Core {
            reason: AxVCpuExitReason::MmioRead { addr, width },
            resume: Some(Resume {
                next_rip,
                read_target: Some(ReadTarget::MmioFlags { width, op }),
            }),
        },
        mmio::MmioAccess::Store { width, data } => SvmExit::Core {
            reason: AxVCpuExitReason::MmioWrite { addr, width, data },
            resume: Some(Resume {
                next_rip,
                read_target: None,
            }),
        },
    })
}

/// The instruction bytes of an NPF exit (decode assists', or fetched by the vCPU).
fn instruction_bytes(info: &ExitInfo, gpa: u64) -> Result<&[u8], ExitDecodeError> {
    if info.insn_len == 0 {
        return Err(ExitDecodeError::NoInstructionBytes { gpa, rip: info.rip });
    }
    Ok(&info.insn_bytes[..usize::from(info.insn_len).min(15)])
}
