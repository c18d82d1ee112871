//! Turns the `bzimage` guest's ELF into a bzImage-style file, laid out as the Linux x86
//! boot protocol describes:
//!
//! ```text
//! file offset 0      boot sector (512 bytes): a real-mode stub at 0, the setup header
//!                    from 0x1f1 (its boot flag 0xAA55 ends the sector)
//!             0x200  setup sector(s): the header goes on (jump, "HdrS", version, ...),
//!                    then the real-mode setup code the jump leads to, then the version
//!                    string
//!             0x400  the protected-mode kernel: the ELF's PT_LOAD segments flattened,
//!                    from code32_start (0x100000) on; its 64-bit entry is at 0x200
//! ```
//!
//! The real-mode setup code does not switch to long mode: it prints that the image is
//! meant for a loader that uses the 64-bit entry and exits through port 0xf4 (status 16),
//! so a BIOS-style loader (QEMU's `-kernel`) reports instead of hanging.

/// Where the protected-mode kernel is loaded and linked (`guests/bzimage/link.ld`).
pub const KERNEL_LOAD: u64 = 0x10_0000;
/// The 64-bit entry's offset in the protected-mode kernel, fixed by the protocol.
pub const ENTRY_64_OFFSET: u64 = 0x200;
/// Setup sectors after the boot sector.
const SETUP_SECTS: u8 = 1;
const SECTOR: usize = 512;
/// Boot protocol 2.12: the first with `xloadflags`.
const PROTOCOL_VERSION: u16 = 0x020c;

/// Setup header fields, by file offset (the zero page's copy is at the same offsets).
mod hdr {
    pub const SETUP_SECTS: usize = 0x1f1;
    pub const ROOT_FLAGS: usize = 0x1f2;
    pub const SYSSIZE: usize = 0x1f4;
    pub const VID_MODE: usize = 0x1fa;
    pub const BOOT_FLAG: usize = 0x1fe;
    pub const JUMP: usize = 0x200;
    pub const HEADER: usize = 0x202;
    pub const VERSION: usize = 0x206;
    pub const KERNEL_VERSION: usize = 0x20e;
    pub const LOADFLAGS: usize = 0x211;
    pub const CODE32_START: usize = 0x214;
    pub const INITRD_ADDR_MAX: usize = 0x22c;
    pub const KERNEL_ALIGNMENT: usize = 0x230;
    pub const RELOCATABLE_KERNEL: usize = 0x234;
    pub const MIN_ALIGNMENT: usize = 0x235;
    pub const XLOADFLAGS: usize = 0x236;
    pub const CMDLINE_SIZE: usize = 0x238;
    pub const PREF_ADDRESS: usize = 0x258;
    pub const INIT_SIZE: usize = 0x260;
    /// One past the last field of protocol 2.12 (`handover_offset`, 0x264).
    pub const END: usize = 0x268;
}

/// `loadflags`: the protected-mode kernel is loaded at 0x100000.
const LOADED_HIGH: u8 = 0x01;
/// `xloadflags`: the kernel has the 64-bit entry at load address + 0x200.
const XLF_KERNEL_64: u16 = 0x0001;
/// `vid_mode`: "normal" (no mode change).
const VID_MODE_NORMAL: u16 = 0xffff;
/// The highest address the initrd may end at, as Linux says.
const INITRD_ADDR_MAX: u32 = 0x7fff_ffff;
/// The longest command line read, without its NUL (Linux's 2048-byte buffer).
const CMDLINE_SIZE: u32 = 2047;
/// Where the real-mode setup code starts, right after the header.
const REAL_MODE_CODE: usize = hdr::END;
/// Where its message is (the string the `mov si` below points to).
const REAL_MODE_MESSAGE: usize = 0x2a0;
/// Where the kernel version string is.
const VERSION_STRING: usize = 0x380;
const VERSION_TEXT: &[u8] = b"axvm bzimage test guest\0";
const REAL_MODE_TEXT: &[u8] =
    b"FAIL: bzimage entered in real mode; it runs from the 64-bit entry only\n\0";
/// Exit status of the real-mode stub.
const REAL_MODE_STATUS: u8 = 16;

/// The real-mode code, entered (as every loader does) with CS = setup segment + 0x20 and
/// IP = 0, i.e. CS:0 is file offset 0x200, through the jump at 0x200. The message's
/// offset is patched in at [`MESSAGE_OPERAND`].
#[rustfmt::skip]
const REAL_MODE_STUB: [u8; 27] = [
    0xfa, // cli
    0x0e, // push cs
    0x1f, // pop ds                 ; DS:SI addresses the setup sectors as CS does
    0xfc, // cld
    0xbe, 0x00, 0x00, // mov si, message - 0x200 (patched)
    0xba, 0xf8, 0x03, // mov dx, 0x3f8    ; COM1
    0xac, // next: lodsb
    0x84, 0xc0, // test al, al
    0x74, 0x03, // jz done
    0xee, // out dx, al
    0xeb, 0xf8, // jmp next
    0xb0, REAL_MODE_STATUS, // done: mov al, 16
    0xba, 0xf4, 0x00, // mov dx, 0xf4    ; exit port
    0xee, // out dx, al
    0xf4, // halt: hlt
    0xeb, 0xfd, // jmp halt
];
/// Offset of `mov si`'s immediate in [`REAL_MODE_STUB`].
const MESSAGE_OPERAND: usize = 5;

/// One PT_LOAD segment of the ELF.
struct Segment {
    offset: usize,
    paddr: u64,
    filesz: usize,
    memsz: u64,
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes(b.try_into().unwrap()))
        .ok_or_else(|| format!("ELF truncated at {at:#x}"))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
        .ok_or_else(|| format!("ELF truncated at {at:#x}"))
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, String> {
    bytes
        .get(at..at + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .ok_or_else(|| format!("ELF truncated at {at:#x}"))
}

/// The ELF64's entry and PT_LOAD segments.
fn parse_elf(elf: &[u8]) -> Result<(u64, Vec<Segment>), String> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) {
        return Err("not an ELF64 file".into());
    }
    let entry = u64_at(elf, 24)?;
    let phoff = u64_at(elf, 32)? as usize;
    let phentsize = usize::from(u16_at(elf, 54)?);
    let phnum = usize::from(u16_at(elf, 56)?);
    let mut segments = Vec::new();
    for index in 0..phnum {
        let ph = phoff + index * phentsize;
        if u32_at(elf, ph)? != 1 {
            continue;
        }
        let segment = Segment {
            offset: u64_at(elf, ph + 8)? as usize,
            paddr: u64_at(elf, ph + 24)?,
            filesz: u64_at(elf, ph + 32)? as usize,
            memsz: u64_at(elf, ph + 40)?,
        };
        if segment.offset + segment.filesz > elf.len() || segment.paddr < KERNEL_LOAD {
            return Err(format!(
                "PT_LOAD segment {index} is outside the file or below 1 MiB"
            ));
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        return Err("no PT_LOAD segment".into());
    }
    Ok((entry, segments))
}

fn put_u8(image: &mut [u8], at: usize, value: u8) {
    image[at] = value;
}

fn put_u16(image: &mut [u8], at: usize, value: u16) {
    image[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(image: &mut [u8], at: usize, value: u32) {
    image[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn put_u64(image: &mut [u8], at: usize, value: u64) {
    image[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// The bzImage-style file for the `bzimage` guest's ELF (linked at [`KERNEL_LOAD`] with
/// its entry at [`KERNEL_LOAD`] + [`ENTRY_64_OFFSET`]).
pub fn make_bzimage(elf: &[u8]) -> Result<Vec<u8>, String> {
    let (entry, segments) = parse_elf(elf)?;
    if entry != KERNEL_LOAD + ENTRY_64_OFFSET {
        return Err(format!(
            "the ELF entry is {entry:#x}, not {:#x}",
            KERNEL_LOAD + ENTRY_64_OFFSET
        ));
    }
    // The protected-mode kernel: the file bytes of each segment at its place, gaps zeroed;
    // what is not in the file (.bss) is left to init_size.
    let file_end = segments
        .iter()
        .filter(|s| s.filesz > 0)
        .map(|s| s.paddr + s.filesz as u64)
        .max()
        .unwrap_or(KERNEL_LOAD);
    let memory_end = segments.iter().map(|s| s.paddr + s.memsz).max().unwrap();
    let mut kernel = vec![0u8; (file_end - KERNEL_LOAD) as usize];
    for segment in segments.iter().filter(|s| s.filesz > 0) {
        let at = (segment.paddr - KERNEL_LOAD) as usize;
        kernel[at..at + segment.filesz]
            .copy_from_slice(&elf[segment.offset..segment.offset + segment.filesz]);
    }
    let init_size = (memory_end - KERNEL_LOAD).next_multiple_of(0x1000);

    let mut setup = vec![0u8; (1 + usize::from(SETUP_SECTS)) * SECTOR];
    // The boot sector's code, should a BIOS run it: hang (cli; hlt; jmp $-1).
    setup[..4].copy_from_slice(&[0xfa, 0xf4, 0xeb, 0xfd]);
    put_u8(&mut setup, hdr::SETUP_SECTS, SETUP_SECTS);
    put_u16(&mut setup, hdr::ROOT_FLAGS, 0);
    put_u32(&mut setup, hdr::SYSSIZE, kernel.len().div_ceil(16) as u32);
    put_u16(&mut setup, hdr::VID_MODE, VID_MODE_NORMAL);
    put_u16(&mut setup, hdr::BOOT_FLAG, 0xaa55);
    // jmp short to the real-mode code (rel8 from the end of the 2-byte jump).
    setup[hdr::JUMP] = 0xeb;
    setup[hdr::JUMP + 1] = (REAL_MODE_CODE - (hdr::JUMP + 2)) as u8;
    setup[hdr::HEADER..hdr::HEADER + 4].copy_from_slice(b"HdrS");
    put_u16(&mut setup, hdr::VERSION, PROTOCOL_VERSION);
    // kernel_version points to a NUL-terminated string, minus 0x200.
    put_u16(
        &mut setup,
        hdr::KERNEL_VERSION,
        (VERSION_STRING - 0x200) as u16,
    );
    put_u8(&mut setup, hdr::LOADFLAGS, LOADED_HIGH);
    put_u32(&mut setup, hdr::CODE32_START, KERNEL_LOAD as u32);
    put_u32(&mut setup, hdr::INITRD_ADDR_MAX, INITRD_ADDR_MAX);
    // Not relocatable: the alignment fields just describe the load address (1 MiB).
    put_u32(&mut setup, hdr::KERNEL_ALIGNMENT, KERNEL_LOAD as u32);
    put_u8(&mut setup, hdr::RELOCATABLE_KERNEL, 0);
    put_u8(
        &mut setup,
        hdr::MIN_ALIGNMENT,
        KERNEL_LOAD.trailing_zeros() as u8,
    );
    put_u16(&mut setup, hdr::XLOADFLAGS, XLF_KERNEL_64);
    put_u32(&mut setup, hdr::CMDLINE_SIZE, CMDLINE_SIZE);
    put_u64(&mut setup, hdr::PREF_ADDRESS, KERNEL_LOAD);
    put_u32(&mut setup, hdr::INIT_SIZE, init_size as u32);

    let mut stub = REAL_MODE_STUB;
    let message = (REAL_MODE_MESSAGE - 0x200) as u16;
    stub[MESSAGE_OPERAND..MESSAGE_OPERAND + 2].copy_from_slice(&message.to_le_bytes());
    setup[REAL_MODE_CODE..REAL_MODE_CODE + stub.len()].copy_from_slice(&stub);
    setup[REAL_MODE_MESSAGE..REAL_MODE_MESSAGE + REAL_MODE_TEXT.len()]
        .copy_from_slice(REAL_MODE_TEXT);
    setup[VERSION_STRING..VERSION_STRING + VERSION_TEXT.len()].copy_from_slice(VERSION_TEXT);

    let mut image = setup;
    image.extend_from_slice(&kernel);
    Ok(image)
}

/// The test ramdisk (`guests/rt/src/ramdisk.rs` has the format): "AXVMRD", the payload
/// length (u32 LE), the payload, the sum of its bytes (u32 LE, wrapping). The payload is
/// 5000 bytes (not a multiple of a page or sector) of a fixed pattern.
pub fn test_ramdisk() -> Vec<u8> {
    const PAYLOAD_LEN: u32 = 5000;
    let payload: Vec<u8> = (0..PAYLOAD_LEN)
        .map(|i| (i.wrapping_mul(31) ^ (i >> 8)) as u8)
        .collect();
    let sum = payload
        .iter()
        .fold(0u32, |sum, &byte| sum.wrapping_add(u32::from(byte)));
    let mut ramdisk = b"AXVMRD".to_vec();
    ramdisk.extend_from_slice(&PAYLOAD_LEN.to_le_bytes());
    ramdisk.extend_from_slice(&payload);
    ramdisk.extend_from_slice(&sum.to_le_bytes());
    ramdisk
}
