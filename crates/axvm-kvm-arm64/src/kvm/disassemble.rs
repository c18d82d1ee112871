//! A64 disassembly for reports (where a vCPU stopped, what it was doing), by yaxpeax-arm:
//! pure Rust, so the static aarch64 `axvm` needs no C library beside it.

use yaxpeax_arch::{Decoder, U8Reader};
use yaxpeax_arm::armv8::a64::InstDecoder;

/// Up to `max` instructions of `bytes` (at guest address `pc`), as "`ldr w1, [x0]`; ...";
/// `None` when the first word is no instruction.
pub(crate) fn a64(bytes: &[u8], pc: u64, max: usize) -> Option<String> {
    let decoder = InstDecoder::default();
    let mut text = Vec::new();
    for (index, word) in bytes.chunks_exact(4).take(max).enumerate() {
        let mut reader = U8Reader::new(word);
        match decoder.decode(&mut reader) {
            Ok(instruction) => text.push(instruction.to_string()),
            Err(_) if index == 0 => return None,
            Err(_) => break,
        }
    }
    let _ = pc; // A64 encodings are position-relative; branch targets print as offsets.
    (!text.is_empty()).then(|| text.join("; "))
}

#[cfg(test)]
mod tests {
    use super::a64;

    #[test]
    fn decodes_a_load_and_a_branch() {
        // ldr w1, [x0]; b .
        let code = [0x01, 0x00, 0x40, 0xb9, 0x00, 0x00, 0x00, 0x14];
        let text = a64(&code, 0x4008_0000, 2).expect("two instructions");
        assert!(text.starts_with("ldr w1, [x0"), "{text}");
        assert!(text.contains("; b "), "{text}");
    }
}
