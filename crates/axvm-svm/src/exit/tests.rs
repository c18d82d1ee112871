//! Exit decoding with synthetic VMCB contents.

use super::*;
use crate::vmcb::VmcbSegment;
use alloc::string::ToString;

const RIP: u64 = 0x10_0000;

fn info(code: u64, info1: u64, info2: u64) -> ExitInfo {
    let mut gprs = [0; 16];
    for (i, reg) in gprs.iter_mut().enumerate() {
        *reg = 0x0102_0304_0506_0708 * (i as u64 + 1);
    }
    ExitInfo {
        code,
        info1,
        info2,
        rip: RIP,
        next_rip: 0,
        gprs,
        insn_bytes: [0; 15],
        insn_len: 0,
        code_bitness: 64,
    }
}

fn npf_with(bytes: &[u8], bitness: u32, gpa: u64, error_code: u64) -> ExitInfo {
    let mut exit = info(0x400, error_code, gpa);
    exit.insn_bytes[..bytes.len()].copy_from_slice(bytes);
    exit.insn_len = bytes.len() as u8;
    exit.code_bitness = bitness;
    exit
}

fn core_exit(exit: &ExitInfo) -> (AxVCpuExitReason, Option<Resume>) {
    match decode_exit(exit) {
        Ok(SvmExit::Core { reason, resume }) => (reason, resume),
        other => panic!("expected a core exit, got {other:?}"),
    }
}

fn mmio_read(bytes: &[u8], bitness: u32) -> (AccessWidth, ReadTarget, u64) {
    let (reason, resume) = core_exit(&npf_with(bytes, bitness, 0xfee0_0030, 0));
    let resume = resume.expect("an MMIO read resumes");
    match reason {
        AxVCpuExitReason::MmioRead { addr, width } => {
            assert_eq!(addr.as_u64(), 0xfee0_0030);
            (
                width,
                resume.read_target.expect("a read has a target"),
                resume.next_rip - RIP,
            )
        }
        other => panic!("expected an MMIO read, got {other:?}"),
    }
}

fn mmio_write(bytes: &[u8]) -> (AccessWidth, u64) {
    let (reason, resume) = core_exit(&npf_with(bytes, 64, 0xfed0_0000, 0b10));
    assert_eq!(resume.unwrap().next_rip, RIP + bytes.len() as u64);
    match reason {
        AxVCpuExitReason::MmioWrite { width, data, .. } => (width, data),
        other => panic!("expected an MMIO write, got {other:?}"),
    }
}

fn load(index: u8, width: AccessWidth, extension: LoadExtension) -> ReadTarget {
    ReadTarget::MmioLoad {
        target: GprTarget {
            index,
            high_byte: false,
        },
        width,
        extension,
    }
}

#[test]
fn port_reads_and_writes_carry_port_width_data_and_the_next_rip() {
    let (reason, resume) = core_exit(&info(0x7b, 0x3f8 << 16 | 1 << 4 | 1, RIP + 1));
    assert_eq!(
        reason,
        AxVCpuExitReason::IoRead {
            port: 0x3f8,
            width: AccessWidth::Byte
        }
    );
    let resume = resume.unwrap();
    assert_eq!(resume.next_rip, RIP + 1, "EXITINFO2 is the next RIP");
    assert_eq!(
        resume.read_target,
        Some(ReadTarget::PortRead(AccessWidth::Byte))
    );

    let mut exit = info(0x7b, 0x604 << 16 | 1 << 5, RIP + 2);
    exit.gprs[0] = 0xdead_beef_1234_5678;
    let (reason, _) = core_exit(&exit);
    assert_eq!(
        reason,
        AxVCpuExitReason::IoWrite {
            port: 0x604,
            width: AccessWidth::Word,
            data: 0x5678
        }
    );

    let (reason, _) = core_exit(&info(0x7b, 0xcfc << 16 | 1 << 6 | 1, RIP + 1));
    assert_eq!(
        reason,
        AxVCpuExitReason::IoRead {
            port: 0xcfc,
            width: AccessWidth::Dword
        }
    );
}

#[test]
fn string_io_and_odd_sizes_are_refused_with_the_port() {
    let err = decode_exit(&info(0x7b, 0x3f8 << 16 | 1 << 4 | 1 << 3 | 1 << 2, 0)).unwrap_err();
    assert_eq!(
        err,
        ExitDecodeError::StringIo {
            port: 0x3f8,
            rep: true
        }
    );
    assert!(err.to_string().contains("0x3f8"), "{err}");
    let err = decode_exit(&info(0x7b, 0x80 << 16 | 1 << 4 | 1 << 5, 0)).unwrap_err();
    assert_eq!(
        err,
        ExitDecodeError::BadIoSize {
            port: 0x80,
            info1: 0x80 << 16 | 0x30
        }
    );
}

#[test]
fn msr_exits_take_ecx_and_edx_eax() {
    let mut exit = info(0x7c, 0, 0);
    exit.gprs[1] = 0xffff_ffff_c000_0080;
    let (reason, resume) = core_exit(&exit);
    assert_eq!(reason, AxVCpuExitReason::SysRegRead { addr: 0xc000_0080 });
    assert_eq!(
        resume.unwrap(),
        Resume {
            next_rip: RIP + 2,
            read_target: Some(ReadTarget::MsrRead)
        }
    );

    exit.info1 = 1;
    exit.gprs[0] = 0xaaaa_aaaa_0000_0d01; // the upper halves of RAX and RDX are ignored
    exit.gprs[2] = 0x0000_0000_0000_0001;
    exit.next_rip = RIP + 7;
    let (reason, resume) = core_exit(&exit);
    assert_eq!(
        reason,
        AxVCpuExitReason::SysRegWrite {
            addr: 0xc000_0080,
            value: 0x1_0000_0d01
        }
    );
    assert_eq!(
        resume.unwrap().next_rip,
        RIP + 7,
        "NRIP save wins over the fixed length"
    );
}

#[test]
fn cpuid_hlt_vmmcall_shutdown_and_interrupts() {
    let mut exit = info(0x72, 0, 0);
    exit.gprs[0] = 0xffff_ffff_8000_0001;
    exit.gprs[1] = 0x1_0000_0002;
    assert_eq!(
        decode_exit(&exit),
        Ok(SvmExit::Cpuid {
            leaf: 0x8000_0001,
            subleaf: 2,
            next_rip: RIP + 2
        })
    );

    let (reason, resume) = core_exit(&info(0x78, 0, 0));
    assert_eq!(
        (reason, resume.unwrap().next_rip),
        (AxVCpuExitReason::Halt, RIP + 1)
    );

    let (reason, _) = core_exit(&info(0x81, 0, 0));
    let g = info(0, 0, 0).gprs;
    assert_eq!(
        reason,
        AxVCpuExitReason::Hypercall {
            nr: g[0],
            args: [g[3], g[1], g[2], g[6], g[7], g[8]]
        }
    );

    assert_eq!(
        core_exit(&info(0x7f, 0, 0)),
        (AxVCpuExitReason::SystemDown, None)
    );
    let (reason, resume) = core_exit(&info(0x60, 0, 0));
    assert_eq!(
        (reason, resume.unwrap().next_rip),
        (AxVCpuExitReason::Interrupted, RIP)
    );
    let (reason, resume) = core_exit(&info(u64::MAX, 0, 0));
    assert_eq!(
        reason,
        AxVCpuExitReason::FailEntry {
            hardware_entry_failure_reason: u64::MAX
        }
    );
    assert_eq!(resume, None);
}

#[test]
fn unknown_exits_name_the_code_and_infos() {
    let err = decode_exit(&info(0x8d, 0x12, 0x34)).unwrap_err();
    assert_eq!(
        err,
        ExitDecodeError::Unhandled {
            code: SvmExitCode::Other(0x8d),
            info1: 0x12,
            info2: 0x34
        }
    );
    let message = err.to_string();
    assert!(
        message.contains("0x8d") && message.contains("0x12") && message.contains("0x34"),
        "{message}"
    );
}

#[test]
fn mmio_loads_get_width_register_and_extension() {
    use AccessWidth::*;
    use LoadExtension::*;
    assert_eq!(
        mmio_read(&[0x8b, 0x03], 64),
        (Dword, load(0, Dword, Zero), 2)
    ); // mov eax, [rbx]
    assert_eq!(
        mmio_read(&[0x4c, 0x8b, 0x0e], 64),
        (Qword, load(9, Qword, Zero), 3)
    ); // mov r9, [rsi]
    assert_eq!(mmio_read(&[0x8a, 0x0e], 64), (Byte, load(1, Byte, Keep), 2)); // mov cl, [rsi]
    assert_eq!(
        mmio_read(&[0x0f, 0xb7, 0x06], 64),
        (Word, load(0, Word, Zero), 3)
    ); // movzx eax, word [rsi]
    assert_eq!(
        mmio_read(&[0x48, 0x0f, 0xbe, 0x06], 64),
        (Byte, load(0, Byte, Sign), 4)
    ); // movsx rax, byte [rsi]
    assert_eq!(
        mmio_read(&[0x48, 0x63, 0x16], 64),
        (Dword, load(2, Dword, Sign), 3)
    ); // movsxd rdx, [rsi]
    assert_eq!(
        mmio_read(&[0x66, 0x8b, 0x03], 32),
        (Word, load(0, Word, Keep), 3)
    ); // mov ax, [ebx]
    assert_eq!(mmio_read(&[0x8b, 0x07], 16), (Word, load(0, Word, Keep), 2)); // mov ax, [bx]
    let high = ReadTarget::MmioLoad {
        target: GprTarget {
            index: 0,
            high_byte: true,
        },
        width: Byte,
        extension: Keep,
    };
    assert_eq!(mmio_read(&[0x8a, 0x26], 64), (Byte, high, 2)); // mov ah, [rsi]
}

#[test]
fn mmio_stores_carry_the_register_or_immediate_cut_to_width() {
    let g = info(0, 0, 0).gprs;
    assert_eq!(
        mmio_write(&[0x89, 0x0f]),
        (AccessWidth::Dword, g[1] & 0xffff_ffff)
    ); // mov [rdi], ecx
    assert_eq!(
        mmio_write(&[0x88, 0x26]),
        (AccessWidth::Byte, (g[0] >> 8) & 0xff)
    ); // mov [rsi], ah
    assert_eq!(mmio_write(&[0x4c, 0x89, 0x3e]), (AccessWidth::Qword, g[15])); // mov [rsi], r15
    assert_eq!(mmio_write(&[0xc6, 0x00, 0x5a]), (AccessWidth::Byte, 0x5a)); // mov byte [rax], 0x5a
    assert_eq!(
        mmio_write(&[0x48, 0xc7, 0x00, 0xff, 0xff, 0xff, 0xff]),
        (AccessWidth::Qword, u64::MAX)
    );
    assert_eq!(
        mmio_write(&[0x66, 0xc7, 0x00, 0x34, 0x12]),
        (AccessWidth::Word, 0x1234)
    );
}

#[test]
fn mmio_exits_without_bytes_or_with_other_instructions_are_refused() {
    let err = decode_exit(&npf_with(&[], 64, 0xfee0_0000, 0)).unwrap_err();
    assert_eq!(
        err,
        ExitDecodeError::NoInstructionBytes {
            gpa: 0xfee0_0000,
            rip: RIP
        }
    );
    assert!(err.to_string().contains("0xfee00000"), "{err}");
    let err = decode_exit(&npf_with(&[0x01, 0x08], 64, 0xfee0_0000, 0)).unwrap_err(); // add [rax], ecx
    assert!(matches!(
        err,
        ExitDecodeError::UnsupportedMmioInstruction {
            mnemonic: iced_x86::Mnemonic::Add,
            ..
        }
    ));
    let err = decode_exit(&npf_with(&[0xff, 0xff], 64, 0xfee0_0000, 0)).unwrap_err();
    assert!(matches!(
        err,
        ExitDecodeError::UndecodableMmioInstruction { .. }
    ));
    assert!(err.to_string().contains("ff ff"), "{err}");
    let err = decode_exit(&npf_with(&[0xf3, 0xa4], 64, 0xfee0_0000, 0)).unwrap_err(); // rep movsb
    assert!(
        matches!(err, ExitDecodeError::UnsupportedMmioInstruction { .. }),
        "{err}"
    );
}

#[test]
fn faults_on_mapped_pages_and_fetches_are_nested_page_faults() {
    let (reason, resume) = core_exit(&npf_with(&[], 64, 0x20_0000, 0b10011));
    let addr = GuestPhysAddr::new(0x20_0000);
    assert_eq!(
        reason,
        AxVCpuExitReason::NestedPageFault {
            addr,
            access_flags: MappingFlags::EXECUTE
        }
    );
    assert_eq!(resume, None);
}

#[test]
fn a_write_to_read_only_memory_resumes_past_any_instruction() {
    let addr = GuestPhysAddr::new(0x20_0000);
    // rep stosb (f3 aa): not an MMIO instruction, but its length is all that matters.
    for bytes in [&[0x89, 0x0f][..], &[0xf3, 0xaa], &[0x48, 0x01, 0x07]] {
        let (reason, resume) = core_exit(&npf_with(bytes, 64, 0x20_0000, 0b11));
        assert_eq!(
            reason,
            AxVCpuExitReason::NestedPageFault {
                addr,
                access_flags: MappingFlags::WRITE
            }
        );
        let next_rip = RIP + bytes.len() as u64;
        assert_eq!(
            resume,
            Some(Resume {
                next_rip,
                read_target: None
            }),
            "{bytes:02x?}"
        );
    }
    let err = decode_exit(&npf_with(&[], 64, 0x20_0000, 0b11)).unwrap_err();
    assert!(
        matches!(err, ExitDecodeError::NoInstructionBytes { .. }),
        "{err}"
    );
    let err = decode_exit(&npf_with(&[0x0f, 0x0b], 64, 0x20_0000, 0b11));
    assert!(err.is_ok(), "UD2 decodes: {err:?}");
    let err = decode_exit(&npf_with(&[0x0f], 64, 0x20_0000, 0b11)).unwrap_err();
    assert!(
        matches!(err, ExitDecodeError::UndecodableMmioInstruction { .. }),
        "{err}"
    );
}

#[test]
fn read_targets_apply_the_instruction_rules() {
    let mut gprs = [0x1111_1111_1111_1111u64; 16];
    ReadTarget::PortRead(AccessWidth::Byte).apply(&mut gprs, 0x86);
    assert_eq!(gprs[0], 0x1111_1111_1111_1186);
    ReadTarget::MsrRead.apply(&mut gprs, 0x1_4158_564d);
    assert_eq!((gprs[2], gprs[0]), (1, 0x4158_564d));
    load(9, AccessWidth::Byte, LoadExtension::Sign).apply(&mut gprs, 0x80);
    assert_eq!(gprs[9], 0xffff_ffff_ffff_ff80);
    load(3, AccessWidth::Word, LoadExtension::Keep).apply(&mut gprs, 0xabcd);
    assert_eq!(gprs[3], 0x1111_1111_1111_abcd);
    let ah = ReadTarget::MmioLoad {
        target: GprTarget {
            index: 1,
            high_byte: true,
        },
        width: AccessWidth::Byte,
        extension: LoadExtension::Keep,
    };
    ah.apply(&mut gprs, 0x1ee);
    assert_eq!(gprs[1], 0x1111_1111_1111_ee11);
}

#[test]
fn the_snapshot_takes_rax_rsp_and_code_size_from_the_vmcb() {
    let mut vmcb = Vmcb::zeroed();
    vmcb.control.exit_code = 0x78;
    vmcb.control.next_rip = 0x1001;
    vmcb.control.guest_insn_len = 2;
    vmcb.control.guest_insn_bytes[..2].copy_from_slice(&[0x8b, 0x03]);
    vmcb.save.rax = 0xaa;
    vmcb.save.rsp = 0x7000;
    vmcb.save.rip = 0x1000;
    vmcb.save.cs.attrib = VmcbSegment::ATTR_DB;
    let exit = ExitInfo::from_vmcb(&vmcb, &[5; 16]);
    assert_eq!(
        (exit.gprs[0], exit.gprs[4], exit.gprs[1]),
        (0xaa, 0x7000, 5)
    );
    assert_eq!(
        (exit.rip, exit.next_rip, exit.code_bitness, exit.insn_len),
        (0x1000, 0x1001, 32, 2)
    );
    assert_eq!(core_exit(&exit).1.unwrap().next_rip, 0x1001);
}

#[test]
fn mmio_bit_tests_and_tests_read_for_their_flags() {
    // bt dword ptr [rbx], 0xc: the guest's `read(ICR) & PENDING != 0`.
    let (width, target, len) = mmio_read(&[0x0f, 0xba, 0x23, 0x0c], 64);
    assert_eq!((width, len), (AccessWidth::Dword, 4));
    let cf = 1;
    assert_eq!(target.flags_after(0x2, &[0; 16], 1 << 12), 0x2 | cf);
    assert_eq!(target.flags_after(0x2 | cf, &[0; 16], 0), 0x2);
    // test dword ptr [rax], 0x1000 (F7 /0 id).
    let (width, target, len) = mmio_read(&[0xf7, 0x00, 0x00, 0x10, 0x00, 0x00], 64);
    assert_eq!((width, len), (AccessWidth::Dword, 6));
    let (zf, pf) = (1 << 6, 1 << 2);
    assert_eq!(
        target.flags_after(0x2 | cf, &[0; 16], 0x1000),
        0x2 | pf,
        "CF cleared, ZF clear"
    );
    assert_eq!(target.flags_after(0x2, &[0; 16], 0), 0x2 | zf | pf);
    // test byte ptr [rax], cl: the mask is CL's value.
    let (width, target, _) = mmio_read(&[0x84, 0x08], 64);
    assert_eq!(width, AccessWidth::Byte);
    let rcx_low = (0x0102_0304_0506_0708u64 * 2) & 0xff;
    assert_eq!(target.flags_after(0x2, &[0; 16], 0) & zf, zf);
    assert_eq!(target.flags_after(0x2, &[0; 16], rcx_low) & zf, 0);
    // Registers are untouched.
    let mut gprs = [7; 16];
    target.apply(&mut gprs, 0xff);
    assert_eq!(gprs, [7; 16]);
}

#[test]
fn mmio_logic_loads_combine_into_the_register_and_set_flags() {
    // and ecx, [rbx + 0x200020]: the guest's `read(ID) & mask`.
    let (width, target, len) = mmio_read(&[0x23, 0x8b, 0x20, 0x00, 0x20, 0x00], 64);
    assert_eq!((width, len), (AccessWidth::Dword, 6));
    let mut gprs = [0; 16];
    gprs[1] = 0xffff_ffff_ff00_0000;
    target.apply(&mut gprs, 0x0100_0000);
    assert_eq!(gprs[1], 0x0100_0000, "32-bit result, zero-extended");
    assert_eq!(
        target.flags_after(0x2 | 1, &gprs, 0x0100_0000),
        0x2 | (1 << 2),
        "CF cleared, PF of a zero low byte"
    );
    gprs[1] = 0xff;
    target.apply(&mut gprs, 0);
    assert_eq!(gprs[1], 0);
    assert_eq!(target.flags_after(0x2, &gprs, 0) & (1 << 6), 1 << 6, "ZF");
    // or al, [rax]: a byte merges.
    let (_, target, _) = mmio_read(&[0x0a, 0x00], 64);
    let mut gprs = [0; 16];
    gprs[0] = 0x1234_5601;
    target.apply(&mut gprs, 0x80);
    assert_eq!(gprs[0], 0x1234_5681);
}

#[test]
fn mmio_read_modify_writes_read_then_write_back_the_result() {
    // or dword ptr [rax], 0x1ff: the guest's `write(SVR, read(SVR) | 0x1ff)`.
    let (width, target, len) = mmio_read(&[0x81, 0x08, 0xff, 0x01, 0x00, 0x00], 64);
    assert_eq!((width, len), (AccessWidth::Dword, 6));
    let mut gprs = [3; 16];
    target.apply(&mut gprs, 0x10);
    assert_eq!(gprs, [3; 16], "no register changes");
    assert_eq!(
        target.write_back(0x10),
        Some(AxVCpuExitReason::MmioWrite {
            addr: GuestPhysAddr::new(0xfee0_0030),
            width: AccessWidth::Dword,
            data: 0x1ff,
        })
    );
    assert_eq!(
        target.flags_after(0x2 | 1, &gprs, 0x10) & 1,
        0,
        "CF cleared"
    );
    // and byte ptr [rax], 0xfe (imm8) and xor [rax], ecx (a register operand).
    let (width, target, _) = mmio_read(&[0x80, 0x20, 0xfe], 64);
    assert_eq!(width, AccessWidth::Byte);
    let written = target.write_back(0x81);
    assert!(
        matches!(
            written,
            Some(AxVCpuExitReason::MmioWrite { data: 0x80, .. })
        ),
        "{written:?}"
    );
    let mut exit = npf_with(&[0x31, 0x08], 64, 0xfee0_0030, 0);
    exit.gprs[1] = 0xffff_0000_0000_00f0;
    let (_, resume) = core_exit(&exit);
    let target = resume.and_then(|resume| resume.read_target).unwrap();
    assert!(matches!(
        target.write_back(0xff),
        Some(AxVCpuExitReason::MmioWrite {
            data: 0x0f,
            width: AccessWidth::Dword,
            ..
        })
    ));
    // A plain load has nothing to write back.
    let (_, target, _) = mmio_read(&[0x8b, 0x00], 64);
    assert_eq!(target.write_back(1), None);
}
