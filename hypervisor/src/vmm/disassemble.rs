//! Guest instructions as text, for the reports of vCPUs that stop (iced-x86, Intel syntax).

use alloc::string::String;

use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

/// Up to `max` instructions decoded from `bytes` at `ip` as `bitness`-bit code, separated by
/// "; ". `None` for an invalid bitness or when the first instruction does not decode.
pub fn instructions(bytes: &[u8], ip: u64, bitness: u32, max: usize) -> Option<String> {
    if !matches!(bitness, 16 | 32 | 64) {
        return None;
    }
    let mut decoder = Decoder::with_ip(bitness, bytes, ip, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    let mut text = String::new();
    for (index, instruction) in decoder.iter().take(max).enumerate() {
        if instruction.is_invalid() {
            break;
        }
        if index > 0 {
            text.push_str("; ");
        }
        formatter.format(&instruction, &mut text);
    }
    (!text.is_empty()).then_some(text)
}
