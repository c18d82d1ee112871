//! Decoding the instruction behind an MMIO nested page fault: which register it reads or
//! writes, how wide the access is, how a load extends into its register, and what a
//! read-modify-write writes back — the facts KVM
//! works out in its kernel and a type-1 backend must work out itself.

use axvm::{vcpu::LoadExtension, AccessWidth};
use iced_x86::{Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};

use super::{ExitDecodeError, GuestGprs};

/// One decoded MMIO access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum MmioAccess {
    /// A load into a general register.
    Load {
        /// The access width.
        width: AccessWidth,
        /// Where the value goes.
        target: GprTarget,
        /// How the value extends into the register.
        extension: LoadExtension,
    },
    /// A read that only sets flags (`BT m, imm8`; `TEST m, imm`/`TEST m, r`), as a guest's
    /// `read(REG) & BIT != 0` may compile to.
    Flags {
        /// The access width.
        width: AccessWidth,
        /// What sets the flags.
        op: FlagsOp,
    },
    /// `AND`/`OR`/`XOR reg, m`: the register combined with the value read.
    Logic {
        /// The access width.
        width: AccessWidth,
        /// The register, source and destination.
        target: GprTarget,
        /// The operation.
        op: LogicOp,
    },
    /// `AND`/`OR`/`XOR m, reg`/`m, imm`: a read, then a write of the value combined with
    /// `operand`, flags from the result (a read-modify-write, as `reg |= BIT` may compile to).
    Update {
        /// The access width.
        width: AccessWidth,
        /// The operation.
        op: LogicOp,
        /// The register's or immediate's value.
        operand: u64,
    },
    /// A store of `data` (truncated to `width`).
    Store {
        /// The access width.
        width: AccessWidth,
        /// The stored value.
        data: u64,
    },
}

/// An instruction that reads memory only for its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagsOp {
    /// `BT`: CF = the bit (taken modulo the operand's width); the other flags are left as
    /// they were (the SDM leaves OF, SF, AF and PF undefined).
    BitTest {
        /// The bit number.
        bit: u8,
    },
    /// `TEST`: ZF, SF and PF from `value & mask`; CF and OF cleared.
    Test {
        /// The other operand.
        mask: u64,
    },
}

/// A logic instruction with a register destination and an MMIO source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogicOp {
    /// `AND`.
    And,
    /// `OR`.
    Or,
    /// `XOR`.
    Xor,
}

impl LogicOp {
    /// `register` (its operand bits) combined with `value`.
    pub fn combine(self, register: u64, value: u64) -> u64 {
        match self {
            Self::And => register & value,
            Self::Or => register | value,
            Self::Xor => register ^ value,
        }
    }
}

/// RFLAGS after a logic result (`TEST`, `AND`, `OR`, `XOR`): ZF, SF, PF from `result`
/// (`width` wide), CF and OF cleared, the rest kept.
pub fn logic_flags(rflags: u64, result: u64, width: AccessWidth) -> u64 {
    let bits = 8 * width.size() as u32;
    let result = width.truncate(result);
    let mut flags = rflags & !(FLAG_CF | FLAG_OF | FLAG_ZF | FLAG_SF | FLAG_PF);
    if result == 0 {
        flags |= FLAG_ZF;
    }
    if (result >> (bits - 1)) & 1 != 0 {
        flags |= FLAG_SF;
    }
    if (result as u8).count_ones() % 2 == 0 {
        flags |= FLAG_PF;
    }
    flags
}

const FLAG_CF: u64 = 1 << 0;
const FLAG_PF: u64 = 1 << 2;
const FLAG_ZF: u64 = 1 << 6;
const FLAG_SF: u64 = 1 << 7;
const FLAG_OF: u64 = 1 << 11;

impl FlagsOp {
    /// RFLAGS after the instruction read `value` (`width` wide) with RFLAGS `rflags`.
    pub fn apply(self, rflags: u64, value: u64, width: AccessWidth) -> u64 {
        let bits = 8 * width.size() as u32;
        match self {
            Self::BitTest { bit } => {
                let set = (value >> (u32::from(bit) % bits)) & 1 != 0;
                if set {
                    rflags | FLAG_CF
                } else {
                    rflags & !FLAG_CF
                }
            }
            Self::Test { mask } => logic_flags(rflags, value & mask, width),
        }
    }
}

/// A general register as an MMIO load's destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GprTarget {
    /// The register's number in the x86 encoding (RAX = 0, RCX = 1, ..., R15 = 15).
    pub index: u8,
    /// AH, CH, DH or BH: the byte at bits 8–15 of the register.
    pub high_byte: bool,
}

/// Decodes `bytes` (the VMCB's decode-assist bytes) at `rip` in a guest running `bitness`-bit
/// code; returns the access and the instruction's length.
pub(super) fn decode_mmio(
    bytes: &[u8],
    bitness: u32,
    rip: u64,
    gpa: u64,
    gprs: &GuestGprs,
) -> Result<(MmioAccess, u64), ExitDecodeError> {
    let undecodable = || ExitDecodeError::UndecodableMmioInstruction {
        gpa,
        rip,
        bytes: InsnBytes::new(bytes),
    };
    if !matches!(bitness, 16 | 32 | 64) {
        return Err(undecodable());
    }
    let instruction = Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE).decode();
    if instruction.is_invalid() {
        return Err(undecodable());
    }
    let unsupported = || ExitDecodeError::UnsupportedMmioInstruction {
        gpa,
        rip,
        mnemonic: instruction.mnemonic(),
    };
    let width = AccessWidth::from_size(instruction.memory_size().size()).ok_or_else(unsupported)?;
    let access = match (
        instruction.mnemonic(),
        instruction.op0_kind(),
        instruction.op1_kind(),
    ) {
        (Mnemonic::Mov, OpKind::Memory, OpKind::Register) => {
            let (target, value) = gpr(instruction.op1_register(), gprs).ok_or_else(unsupported)?;
            let value = if target.high_byte { value >> 8 } else { value };
            MmioAccess::Store {
                width,
                data: width.truncate(value),
            }
        }
        (Mnemonic::Mov, OpKind::Memory, _) if is_immediate(&instruction) => MmioAccess::Store {
            width,
            data: width.truncate(instruction.immediate(1)),
        },
        (
            Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd,
            OpKind::Register,
            OpKind::Memory,
        ) => {
            let destination = instruction.op0_register();
            let (target, _) = gpr(destination, gprs).ok_or_else(unsupported)?;
            let extension = match instruction.mnemonic() {
                Mnemonic::Movsx | Mnemonic::Movsxd => LoadExtension::Sign,
                // A 32-bit register write clears bits 32-63, exactly like MOVZX.
                _ if destination.size() >= 4 => LoadExtension::Zero,
                Mnemonic::Movzx => LoadExtension::Zero,
                _ => LoadExtension::Keep,
            };
            MmioAccess::Load {
                width,
                target,
                extension,
            }
        }
        (Mnemonic::And | Mnemonic::Or | Mnemonic::Xor, OpKind::Register, OpKind::Memory) => {
            let (target, _) = gpr(instruction.op0_register(), gprs).ok_or_else(unsupported)?;
            let op = match instruction.mnemonic() {
                Mnemonic::And => LogicOp::And,
                Mnemonic::Or => LogicOp::Or,
                _ => LogicOp::Xor,
            };
            MmioAccess::Logic { width, target, op }
        }
        (Mnemonic::And | Mnemonic::Or | Mnemonic::Xor, OpKind::Memory, _) => {
            let operand = if instruction.op1_kind() == OpKind::Register {
                let (target, value) =
                    gpr(instruction.op1_register(), gprs).ok_or_else(unsupported)?;
                if target.high_byte {
                    value >> 8
                } else {
                    value
                }
            } else if is_immediate(&instruction) {
                instruction.immediate(1)
            } else {
                return Err(unsupported());
            };
            let op = match instruction.mnemonic() {
                Mnemonic::And => LogicOp::And,
                Mnemonic::Or => LogicOp::Or,
                _ => LogicOp::Xor,
            };
            MmioAccess::Update {
                width,
                op,
                operand: width.truncate(operand),
            }
        }
        (Mnemonic::Bt, OpKind::Memory, _) if is_immediate(&instruction) => MmioAccess::Flags {
            width,
            op: FlagsOp::BitTest {
                bit: instruction.immediate(1) as u8,
            },
        },
        (Mnemonic::Test, OpKind::Memory, OpKind::Register) => {
            let (target, value) = gpr(instruction.op1_register(), gprs).ok_or_else(unsupported)?;
            let value = if target.high_byte { value >> 8 } else { value };
            MmioAccess::Flags {
                width,
                op: FlagsOp::Test { mask: value },
            }
        }
        (Mnemonic::Test, OpKind::Memory, _) if is_immediate(&instruction) => MmioAccess::Flags {
            width,
            op: FlagsOp::Test {
                mask: instruction.immediate(1),
            },
        },
        _ => return Err(unsupported()),
    };
    Ok((access, instruction.len() as u64))
}

/// The length of any instruction in `bytes` (for skipping a write to read-only memory,
/// whatever the instruction).
pub(super) fn instruction_len(
    bytes: &[u8],
    bitness: u32,
    rip: u64,
    gpa: u64,
) -> Result<u64, ExitDecodeError> {
    let instruction = matches!(bitness, 16 | 32 | 64)
        .then(|| Decoder::with_ip(bitness, bytes, rip, DecoderOptions::NONE).decode())
        .filter(|instruction| !instruction.is_invalid());
    instruction
        .map(|instruction| instruction.len() as u64)
        .ok_or_else(|| ExitDecodeError::UndecodableMmioInstruction {
            gpa,
            rip,
            bytes: InsnBytes::new(bytes),
        })
}

/// Whether operand 1 is an immediate (MOV r/m, imm; the sign-extended imm8 of the logic
/// instructions too, whose value `Instruction::immediate` gives extended).
fn is_immediate(instruction: &Instruction) -> bool {
    matches!(
        instruction.op1_kind(),
        OpKind::Immediate8
            | OpKind::Immediate16
            | OpKind::Immediate32
            | OpKind::Immediate32to64
            | OpKind::Immediate8to16
            | OpKind::Immediate8to32
            | OpKind::Immediate8to64
    )
}

/// The general register behind `register` and its current 64-bit value, or `None` for
/// anything that is not a general register.
fn gpr(register: Register, gprs: &GuestGprs) -> Option<(GprTarget, u64)> {
    let full = register.full_register();
    if !full.is_gpr64() {
        return None;
    }
    let index = (full as usize).checked_sub(Register::RAX as usize)?;
    let high_byte = matches!(
        register,
        Register::AH | Register::CH | Register::DH | Register::BH
    );
    let value = *gprs.get(index)?;
    Some((
        GprTarget {
            index: index as u8,
            high_byte,
        },
        value,
    ))
}

/// Up to 15 instruction bytes, kept in an error so that it can show them.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InsnBytes {
    bytes: [u8; 15],
    len: u8,
}

impl InsnBytes {
    /// Keeps the first 15 of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        let len = bytes.len().min(15);
        let mut kept = [0; 15];
        kept[..len].copy_from_slice(&bytes[..len]);
        Self {
            bytes: kept,
            len: len as u8,
        }
    }

    /// The bytes kept.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl core::fmt::Debug for InsnBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

impl core::fmt::Display for InsnBytes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, byte) in self.as_slice().iter().enumerate() {
            write!(f, "{}{byte:02x}", if i == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}
