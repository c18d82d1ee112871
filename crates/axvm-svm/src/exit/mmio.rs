//! Decoding the instruction behind an MMIO nested page fault: which register it reads or
//! writes, how wide the access is and how a load extends into its register — the facts KVM
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
    /// A store of `data` (truncated to `width`).
    Store {
        /// The access width.
        width: AccessWidth,
        /// The stored value.
        data: u64,
    },
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

/// Whether operand 1 is an immediate (MOV r/m, imm).
fn is_immediate(instruction: &Instruction) -> bool {
    matches!(
        instruction.op1_kind(),
        OpKind::Immediate8 | OpKind::Immediate16 | OpKind::Immediate32 | OpKind::Immediate32to64
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
