//! Guest code as assembly text (iced-x86), for messages and diagnostics.

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

/// Up to `max_instructions` instructions of `bytes` at `ip`, decoded as `bitness`-bit code,
/// separated by "; ". An instruction cut off by the end of `bytes` is left out.
pub(crate) fn disassemble(
    bytes: &[u8],
    ip: u64,
    bitness: u32,
    max_instructions: usize,
) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
