//! Guest code as assembly text (iced-x86, Intel syntax), for messages and diagnostics: the
//! one formatting every axvm host uses (the KVM host's and the bare-metal hypervisor's
//! `AxVMHal::disassemble` and `disassemble_access_before`, the SVM backend's state report),
//! so a stopped guest's code reads the same under either. `no_std`: iced-x86's decoder and
//! Intel formatter only.

use alloc::string::String;
use alloc::vec::Vec;

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter, MemorySize, Mnemonic, OpKind};

/// The first instruction of `bytes` at `ip` as `bitness`-bit code: its text and length.
/// `None` for an invalid bitness or when it does not decode (cut off by the end of `bytes`
/// included).
pub fn first_instruction(bytes: &[u8], ip: u64, bitness: u32) -> Option<(String, usize)> {
    if !matches!(bitness, 16 | 32 | 64) {
        return None;
    }
    let instruction = Decoder::with_ip(bitness, bytes, ip, DecoderOptions::NONE).decode();
    if instruction.is_invalid() {
        return None;
    }
    let mut text = String::new();
    IntelFormatter::new().format(&instruction, &mut text);
    Some((text, instruction.len()))
}

/// Up to `max_instructions` instructions of `bytes` at `ip`, decoded as `bitness`-bit code,
/// separated by "; ". An instruction cut off by the end of `bytes` is left out.
pub fn disassemble(bytes: &[u8], ip: u64, bitness: u32, max_instructions: usize) -> Option<String> {
    if !matches!(bitness, 16 | 32 | 64) {
        return None;
    }
    let mut decoder = Decoder::with_ip(bitness, bytes, ip, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    let mut lines = Vec::new();
    while decoder.can_decode() && lines.len() < max_instructions {
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            break;
        }
        let mut text = String::new();
        formatter.format(&instruction, &mut text);
        lines.push(text);
    }
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// The instruction that ends just before `end_ip` and makes a `width`-byte access (a port
/// access when `port`, else a memory one), from `bytes`, the code that ends at `end_ip`: its
/// length and text. x86 code cannot be decoded backwards, so every start up to 15 bytes back
/// is tried, the earliest first, and the first that decodes to exactly one such instruction
/// ending at `end_ip` wins.
pub fn access_ending_at(
    bytes: &[u8],
    end_ip: u64,
    bitness: u32,
    width: usize,
    port: bool,
) -> Option<(usize, String)> {
    if !matches!(bitness, 16 | 32 | 64) {
        return None;
    }
    let longest = bytes.len().min(15);
    (1..=longest).rev().find_map(|len| {
        let start = end_ip.wrapping_sub(len as u64);
        let mut decoder = Decoder::with_ip(
            bitness,
            &bytes[bytes.len() - len..],
            start,
            DecoderOptions::NONE,
        );
        let instruction = decoder.decode();
        let makes_the_access = if port {
            matches!(
                instruction.mnemonic(),
                Mnemonic::In
                    | Mnemonic::Out
                    | Mnemonic::Insb
                    | Mnemonic::Insw
                    | Mnemonic::Insd
                    | Mnemonic::Outsb
                    | Mnemonic::Outsw
                    | Mnemonic::Outsd
            )
        } else {
            (0..instruction.op_count()).any(|op| instruction.op_kind(op) == OpKind::Memory)
                && memory_bytes(instruction.memory_size()) == Some(width)
        };
        if instruction.is_invalid() || instruction.len() != len || !makes_the_access {
            return None;
        }
        let mut text = String::new();
        IntelFormatter::new().format(&instruction, &mut text);
        Some((len, text))
    })
}

/// The size of the scalar memory operands a device access can come from (`MemorySize::size`
/// needs iced-x86's larger `instr_info` feature).
fn memory_bytes(size: MemorySize) -> Option<usize> {
    match size {
        MemorySize::UInt8 | MemorySize::Int8 => Some(1),
        MemorySize::UInt16 | MemorySize::Int16 | MemorySize::WordOffset => Some(2),
        MemorySize::UInt32 | MemorySize::Int32 | MemorySize::DwordOffset => Some(4),
        MemorySize::UInt64 | MemorySize::Int64 | MemorySize::QwordOffset => Some(8),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn decodes_real_mode_and_long_mode_code() {
        assert_eq!(
            disassemble(&[0xec, 0xeb, 0xfd], 0x8000, 16, 4).as_deref(),
            Some("in al,dx; jmp short 8000h")
        );
        assert_eq!(
            disassemble(&[0x48, 0x89, 0xc3], 0x20_0000, 64, 1).as_deref(),
            Some("mov rbx,rax")
        );
        assert_eq!(disassemble(&[0x0f], 0, 64, 1), None);
        assert_eq!(disassemble(&[0x90], 0, 8, 1), None, "no 8-bit code");
    }

    #[test]
    fn the_first_instruction_comes_with_its_length() {
        let code = [0x48, 0x89, 0xc3, 0x90];
        assert_eq!(
            first_instruction(&code, 0x20_0000, 64),
            Some(("mov rbx,rax".to_string(), 3))
        );
        assert_eq!(first_instruction(&[0x48, 0x89], 0, 64), None, "cut off");
        assert_eq!(first_instruction(&code, 0, 0), None);
    }

    #[test]
    fn the_access_before_the_instruction_pointer_is_found() {
        // mov ax,0xa000; mov ds,ax; mov word [0],0x2a | RIP here, past the write.
        let code = [
            0xb8, 0x00, 0xa0, 0x8e, 0xd8, 0xc7, 0x06, 0x00, 0x00, 0x2a, 0x00,
        ];
        assert_eq!(
            access_ending_at(&code, 0x800b, 16, 2, false),
            Some((6, "mov word ptr [0],2Ah".to_string()))
        );
        // nop; out 81h,al | RIP here.
        assert_eq!(
            access_ending_at(&[0x90, 0xe6, 0x81], 0x8003, 16, 1, true),
            Some((2, "out 81h,al".to_string()))
        );
        // No instruction ending there makes a 4-byte memory access.
        assert_eq!(access_ending_at(&code, 0x800b, 16, 4, false), None);
    }
}
