//! Tiny guests written as machine code, assembled once with GNU as (`as --32`, then
//! `objcopy -O binary`) and pasted here with their source, so the tests need no assembler.
//!
//! The real-mode ones are raw images loaded at 0x8000 and entered there in 16-bit real mode
//! (CS base 0, IP 0x8000, DS = ES = SS = 0). Each ends in `jmp $`, so a VMM that ignored the
//! exit would leave the guest spinning and the test would fail at its deadline.

/// ```text
/// mov al, 42
/// out 0xf4, al      ; exit device: status 42
/// jmp $
/// ```
pub const EXIT_42: &[u8] = &[0xb0, 0x2a, 0xe6, 0xf4, 0xeb, 0xfe];

/// Like [`EXIT_42`] with status 1: an entry that must *not* be taken.
pub const EXIT_1: &[u8] = &[0xb0, 0x01, 0xe6, 0xf4, 0xeb, 0xfe];

/// ```text
/// mov al, 0xfe
/// out 0x64, al      ; i8042: pulse the reset line
/// jmp $
/// ```
pub const I8042_RESET: &[u8] = &[0xb0, 0xfe, 0xe6, 0x64, 0xeb, 0xfe];

/// Asks the i8042 for its self-test and exits with the reply, or 1 if the reply was not
/// waiting on the first status read (a guest that had to poll):
/// ```text
/// mov al, 0xaa
/// out 0x64, al      ; i8042: controller self-test
/// in al, 0x64       ; status
/// test al, 1        ; OBF: the reply is there
/// jz fail
/// in al, 0x60       ; the reply: 0x55
/// out 0xf4, al
/// jmp $
/// fail: mov al, 1
/// out 0xf4, al
/// jmp $
/// ```
pub const I8042_SELF_TEST: &[u8] = &[
    0xb0, 0xaa, 0xe6, 0x64, 0xe4, 0x64, 0xa8, 0x01, 0x74, 0x06, 0xe4, 0x60, 0xe6, 0xf4, 0xeb, 0xfe,
    0xb0, 0x01, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// Prints the CPUID brand string (leaves 0x80000002-0x80000004, up to its NUL) and a
/// newline on COM1, then exits 0:
/// ```text
///     mov esi, 0x80000002
/// next_leaf:
///     mov eax, esi
///     cpuid
///     mov [0x9000], eax
///     mov [0x9004], ebx
///     mov [0x9008], ecx
///     mov [0x900c], edx
///     mov dx, 0x3f8        ; after CPUID, which sets EDX
///     mov bx, 0x9000
///     mov cx, 16
/// 1:  mov al, [bx]
///     test al, al
///     jz done
///     out dx, al
///     inc bx
///     loop 1b
///     inc esi
///     cmp esi, 0x80000005
///     jne next_leaf
/// done:
///     mov al, 0x0a
///     out dx, al
///     mov al, 0
///     out 0xf4, al
///     jmp $
/// ```
pub const CPUID_BRAND: &[u8] = &[
    0x66, 0xbe, 0x02, 0x00, 0x00, 0x80, 0x66, 0x89, 0xf0, 0x0f, 0xa2, 0x66, 0xa3, 0x00, 0x90, 0x66,
    0x89, 0x1e, 0x04, 0x90, 0x66, 0x89, 0x0e, 0x08, 0x90, 0x66, 0x89, 0x16, 0x0c, 0x90, 0xba, 0xf8,
    0x03, 0xbb, 0x00, 0x90, 0xb9, 0x10, 0x00, 0x8a, 0x07, 0x84, 0xc0, 0x74, 0x0f, 0xee, 0x43, 0xe2,
    0xf6, 0x66, 0x46, 0x66, 0x81, 0xfe, 0x05, 0x00, 0x00, 0x80, 0x75, 0xca, 0xb0, 0x0a, 0xee, 0xb0,
    0x00, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// Reads a port no device claims and exits with what it read:
/// ```text
/// mov al, 0x55      ; so that a status of 0 proves the read replaced AL
/// in al, 0x99
/// out 0xf4, al
/// jmp $
/// ```
pub const UNCLAIMED_READ: &[u8] = &[0xb0, 0x55, 0xe4, 0x99, 0xe6, 0xf4, 0xeb, 0xfe];

/// The port [`UNCLAIMED_READ`] reads.
pub const UNCLAIMED_PORT: u16 = 0x99;

/// ```text
/// jmp $
/// ```
pub const SPIN: &[u8] = &[0xeb, 0xfe];

/// ```text
/// 1: cli
///    hlt
///    jmp 1b
/// ```
pub const HALT: &[u8] = &[0xfa, 0xf4, 0xeb, 0xfc];

/// Waits for interrupts that never come: halted, but with interrupts enabled, so not stuck.
///
/// ```text
/// 1: sti
///    hlt
///    jmp 1b
/// ```
pub const WAIT_FOR_INTERRUPT: &[u8] = &[0xfb, 0xf4, 0xeb, 0xfc];

/// The line [`STRING_IO`] prints.
pub const STRING_IO_TEXT: &str = "string I/O: rep outsb sends every byte\n";

/// Prints [`STRING_IO_TEXT`] with one `rep outsb` (KVM reports all 39 bytes in one exit),
/// then exits 0:
/// ```text
///     cld
///     mov si, 0x8000 + msg
///     mov cx, msgend - msg      ; 0x27
///     mov dx, 0x3f8
///     rep outsb
///     xor al, al
///     out 0xf4, al
///     jmp $
/// msg: .ascii "string I/O: rep outsb sends every byte\n"
/// msgend:
/// ```
pub const STRING_IO: &[u8] = &[
    0xfc, 0xbe, 0x12, 0x80, 0xb9, 0x27, 0x00, 0xba, 0xf8, 0x03, 0xf3, 0x6e, 0x30, 0xc0, 0xe6, 0xf4,
    0xeb, 0xfe, 0x73, 0x74, 0x72, 0x69, 0x6e, 0x67, 0x20, 0x49, 0x2f, 0x4f, 0x3a, 0x20, 0x72, 0x65,
    0x70, 0x20, 0x6f, 0x75, 0x74, 0x73, 0x62, 0x20, 0x73, 0x65, 0x6e, 0x64, 0x73, 0x20, 0x65, 0x76,
    0x65, 0x72, 0x79, 0x20, 0x62, 0x79, 0x74, 0x65, 0x0a,
];

/// Checks the real-mode entry state and exits with 7 only if CS, DS, ES and SS are 0 and the
/// first instruction ran at 0x8000 (any other value gives another status):
/// ```text
///     mov ax, cs
///     mov bx, ds
///     or ax, bx
///     mov bx, es
///     or ax, bx
///     mov bx, ss
///     or ax, bx
///     call 1f
/// 1:  pop bx                ; bx = where label 1 really is
///     sub bx, 0x8011        ; where it is when the image starts at CS:0x8000
///     or ax, bx
///     or al, ah
///     add al, 7
///     out 0xf4, al
///     jmp $
/// ```
pub const REAL_MODE_STATE: &[u8] = &[
    0x8c, 0xc8, 0x8c, 0xdb, 0x09, 0xd8, 0x8c, 0xc3, 0x09, 0xd8, 0x8c, 0xd3, 0x09, 0xd8, 0xe8, 0x00,
    0x00, 0x5b, 0x81, 0xeb, 0x11, 0x80, 0x09, 0xd8, 0x08, 0xe0, 0x04, 0x07, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// 64-bit code checking the long-mode entry state; exits with CS + CR0.PG + CR4.PAE, which
/// is 10 when CS is the 64-bit code selector 0x8 and paging with PAE is on:
/// ```text
/// .code64
///     mov eax, cs
///     mov rbx, cr0
///     shr rbx, 31
///     add eax, ebx
///     mov rbx, cr4
///     shr rbx, 5
///     and ebx, 1
///     add eax, ebx
///     out 0xf4, al
///     jmp $
/// ```
pub const LONG_MODE_STATE: &[u8] = &[
    0x8c, 0xc8, 0x0f, 0x20, 0xc3, 0x48, 0xc1, 0xeb, 0x1f, 0x01, 0xd8, 0x0f, 0x20, 0xe3, 0x48, 0xc1,
    0xeb, 0x05, 0x83, 0xe3, 0x01, 0x01, 0xd8, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// The status [`LONG_MODE_STATE`] exits with when the entry state is right.
pub const LONG_MODE_OK: u8 = 0x8 + 1 + 1;

/// An x86-64 ELF executable with one `PT_LOAD` segment holding `code` at physical (and
/// virtual) address `paddr`, `memsz` bytes long in memory, entered at `entry`.
pub fn elf64(paddr: u64, memsz: u64, entry: u64, code: &[u8]) -> Vec<u8> {
    const EHDR_SIZE: u16 = 64;
    const PHDR_SIZE: u16 = 56;
    let code_offset = u64::from(EHDR_SIZE + PHDR_SIZE);
    let mut elf = Vec::new();
    // e_ident: magic, ELFCLASS64, little-endian, version 1, System V ABI, padding.
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // e_machine: EM_X86_64
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&entry.to_le_bytes()); // e_entry
    elf.extend_from_slice(&u64::from(EHDR_SIZE).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&PHDR_SIZE.to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shentsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
    assert_eq!(elf.len(), usize::from(EHDR_SIZE));
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R|X
    elf.extend_from_slice(&code_offset.to_le_bytes()); // p_offset
    elf.extend_from_slice(&paddr.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&paddr.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&(code.len() as u64).to_le_bytes()); // p_filesz
    elf.extend_from_slice(&memsz.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    assert_eq!(elf.len() as u64, code_offset);
    elf.extend_from_slice(code);
    elf
}

/// Reads one byte from COM1, polling the line status register for "data ready", and exits
/// with it as its status.
///
/// ```text
///     mov dx, 0x3fd     ; COM1 line status register
/// 1:  in al, dx
///     test al, 1        ; data ready?
///     jz 1b
///     mov dx, 0x3f8     ; COM1 receive buffer
///     in al, dx
///     out 0xf4, al      ; exit device: status = the byte
///     jmp $
/// ```
pub const READ_BYTE: &[u8] = &[
    0xba, 0xfd, 0x03, 0xec, 0xa8, 0x01, 0x74, 0xfb, 0xba, 0xf8, 0x03, 0xec, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// Reads COM1 (polling, as [`READ_BYTE`]) up to and including a newline and exits with how
/// many bytes it read (modulo 256).
///
/// ```text
///     xor cx, cx
/// 2:  mov dx, 0x3fd
/// 1:  in al, dx
///     test al, 1
///     jz 1b
///     mov dx, 0x3f8
///     in al, dx
///     inc cx
///     cmp al, 0x0a
///     jne 2b
///     mov al, cl
///     out 0xf4, al
///     jmp $
/// ```
pub const READ_LINE_LENGTH: &[u8] = &[
    0x31, 0xc9, 0xba, 0xfd, 0x03, 0xec, 0xa8, 0x01, 0x74, 0xfb, 0xba, 0xf8, 0x03, 0xec, 0x41, 0x3c,
    0x0a, 0x75, 0xef, 0x88, 0xc8, 0xe6, 0xf4, 0xeb, 0xfe,
];
