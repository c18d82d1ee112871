//! Copies between the VMM's buffers and guest RAM that running vCPUs may change at the
//! same moment.
//!
//! `copy_nonoverlapping` (memcpy) is wrong for such memory in two ways: the compiler may
//! assume nothing else changes it (and so read it twice, or not at all, or split and merge
//! accesses as it likes), and the copy may move a 4-byte value the guest keeps aligned in
//! pieces, so a `u32` the guest flips from 0 to 0xffff_ffff can be read as 0xffff_0000.
//!
//! Here every access to guest memory is volatile (emitted exactly as written, never merged,
//! split, repeated or left out) and naturally aligned, as wide as alignment and length
//! allow: bytes and halfwords up to the first word boundary, then whole words (8 bytes on a
//! 64-bit host), then narrower accesses for the tail. An aligned access of at most a word
//! is one load or store instruction, which the processor performs at once; so every
//! naturally aligned value of up to a word that lies inside the copied range is read or
//! written whole, whatever the guest does meanwhile. Copying byte by byte would also be
//! volatile, but several times slower and would tear every value.
//!
//! The caller's buffer is ordinary memory and is read or written with ordinary (unaligned)
//! accesses.

use core::mem::size_of;
use core::ptr::{read_unaligned, read_volatile, write_unaligned, write_volatile};

/// The widest access: a machine word (8 bytes on 64-bit hosts, 4 on 32-bit ones).
const WORD: usize = size_of::<usize>();

/// The width of the access at guest address `addr` with `left` bytes still to copy: the
/// widest of word, 4, 2 and 1 that `addr` is a multiple of and that fits.
fn access_width(addr: usize, left: usize) -> usize {
    for width in [WORD, 4, 2] {
        if addr % width == 0 && left >= width {
            return width;
        }
    }
    1
}

/// Copies `dst.len()` bytes of guest memory at `src` into `dst`.
///
/// # Safety
/// `src` must be valid for reads of `dst.len()` bytes (guest RAM that stays mapped).
pub(super) unsafe fn read_from_guest(src: *const u8, dst: &mut [u8]) {
    let (len, out) = (dst.len(), dst.as_mut_ptr());
    let mut done = 0;
    // SAFETY (all three loops): `done` + the access width never exceeds `len`, so both
    // sides stay inside their ranges.
    while done < len && (src as usize + done) % WORD != 0 {
        done += unsafe { read_one(src.add(done), out.add(done), len - done) };
    }
    // The bulk in whole aligned words, in a loop of its own: choosing a width for each
    // access would cost more than the access.
    while len - done >= WORD {
        unsafe {
            let word = read_volatile(src.add(done).cast::<usize>());
            write_unaligned(out.add(done).cast::<usize>(), word);
        }
        done += WORD;
    }
    while done < len {
        done += unsafe { read_one(src.add(done), out.add(done), len - done) };
    }
}

/// Copies one access's worth from guest `from` to `to` (`left` bytes remain) and returns
/// its width.
///
/// # Safety
/// `from` and `to` must be valid for `left` bytes.
unsafe fn read_one(from: *const u8, to: *mut u8, left: usize) -> usize {
    let width = access_width(from as usize, left);
    // SAFETY: `width <= left`, and `from` is a multiple of `width`.
    unsafe {
        match width {
            WORD => write_unaligned(to.cast::<usize>(), read_volatile(from.cast::<usize>())),
            4 => write_unaligned(to.cast::<u32>(), read_volatile(from.cast::<u32>())),
            2 => write_unaligned(to.cast::<u16>(), read_volatile(from.cast::<u16>())),
            _ => *to = read_volatile(from),
        }
    }
    width
}

/// Copies `src` into guest memory at `dst`.
///
/// # Safety
/// `dst` must be valid for writes of `src.len()` bytes (guest RAM that stays mapped).
pub(super) unsafe fn write_to_guest(src: &[u8], dst: *mut u8) {
    let (len, input) = (src.len(), src.as_ptr());
    let mut done = 0;
    // SAFETY: as in `read_from_guest`.
    while done < len && (dst as usize + done) % WORD != 0 {
        done += unsafe { write_one(input.add(done), dst.add(done), len - done) };
    }
    while len - done >= WORD {
        unsafe {
            let word = read_unaligned(input.add(done).cast::<usize>());
            write_volatile(dst.add(done).cast::<usize>(), word);
        }
        done += WORD;
    }
    while done < len {
        done += unsafe { write_one(input.add(done), dst.add(done), len - done) };
    }
}

/// Copies one access's worth from `from` to guest `to` (`left` bytes remain) and returns
/// its width.
///
/// # Safety
/// `from` and `to` must be valid for `left` bytes.
unsafe fn write_one(from: *const u8, to: *mut u8, left: usize) -> usize {
    let width = access_width(to as usize, left);
    // SAFETY: `width <= left`, and `to` is a multiple of `width`.
    unsafe {
        match width {
            WORD => write_volatile(to.cast::<usize>(), read_unaligned(from.cast::<usize>())),
            4 => write_volatile(to.cast::<u32>(), read_unaligned(from.cast::<u32>())),
            2 => write_volatile(to.cast::<u16>(), read_unaligned(from.cast::<u16>())),
            _ => write_volatile(to, *from),
        }
    }
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 16-byte aligned scratch memory standing in for guest RAM.
    #[repr(align(16))]
    struct Guest([u8; 96]);

    fn pattern(seed: u8) -> [u8; 96] {
        core::array::from_fn(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
    }

    #[test]
    fn reads_match_a_plain_copy_at_every_alignment_and_length() {
        let guest = Guest(pattern(7));
        for offset in 0..8 {
            for len in 0..=64 {
                // The destination misaligned differently from the source, with guards.
                let mut buf = [0xeeu8; 80];
                let at = 3;
                unsafe { read_from_guest(guest.0.as_ptr().add(offset), &mut buf[at..at + len]) };
                assert_eq!(
                    buf[at..at + len],
                    guest.0[offset..offset + len],
                    "{offset} {len}"
                );
                assert!(buf[..at].iter().all(|&b| b == 0xee), "{offset} {len}");
                assert!(buf[at + len..].iter().all(|&b| b == 0xee), "{offset} {len}");
            }
        }
    }

    #[test]
    fn writes_match_a_plain_copy_at_every_alignment_and_length() {
        let data = pattern(99);
        for offset in 0..8 {
            for len in 0..=64 {
                let mut guest = Guest([0xee; 96]);
                let mut expected = [0xeeu8; 96];
                expected[offset..offset + len].copy_from_slice(&data[5..5 + len]);
                unsafe { write_to_guest(&data[5..5 + len], guest.0.as_mut_ptr().add(offset)) };
                assert_eq!(guest.0, expected, "{offset} {len}");
            }
        }
    }

    #[test]
    fn aligned_values_are_accessed_whole() {
        // Every naturally aligned value inside the range gets one access of its width.
        let widths = |addr: usize, len: usize| {
            let mut seen = alloc::vec::Vec::new();
            let mut done = 0;
            while done < len {
                let width = access_width(addr + done, len - done);
                seen.push((addr + done, width));
                done += width;
            }
            seen
        };
        assert_eq!(widths(0x1004, 4), [(0x1004, 4)]);
        assert_eq!(widths(0x1002, 2), [(0x1002, 2)]);
        assert_eq!(
            widths(0x1001, 15),
            [(0x1001, 1), (0x1002, 2), (0x1004, 4), (0x1008, WORD.min(8))]
                .into_iter()
                .chain((WORD == 4).then_some((0x100c, 4)))
                .collect::<alloc::vec::Vec<_>>()
        );
    }
}
