//! PVH: a tiny synthetic ELF64 kernel with a `XEN_ELFNOTE_PHYS32_ENTRY` note whose 32-bit
//! code checks `hvm_start_info` through EBX, the structure read back from guest memory, the
//! same kernel as an i386 ELF32 (booted the same way), an ELF32 without the note (refused,
//! saying what would make it bootable), and PVH kernels in low memory, whose boot data and
//! ACPI tables axvm moves beside them.

mod common;
mod protocol_common;

use axvm::GuestPhysAddr;
use axvm_kvm::{CpuMode, ImageFormat, StartPolicy, VmOutcome};
use common::require_kvm;
use protocol_common::*;

/// The first field of the PVH start info (the specification's).
const PVH_START_INFO_MAGIC: u32 = 0x336e_c578;
/// The ELF entry, deliberately not the PVH entry: PVH kernels are entered at the note's.
const ELF_ENTRY_OFFSET: u64 = 0x1000;

/// An x86-64 ELF64 kernel: one PT_LOAD segment of 0x2000 bytes at `paddr` starting with
/// [`PVH_CODE`], and a PT_NOTE segment holding [`pvh_notes`] naming `paddr`.
fn pvh_kernel(paddr: u64) -> Vec<u8> {
    const PHDRS_END: u64 = 64 + 2 * 56;
    let code_offset = PHDRS_END;
    let note_offset = (code_offset + PVH_CODE.len() as u64).next_multiple_of(4);
    let notes = pvh_notes(paddr);
    let mut elf = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&62u16.to_le_bytes()); // e_machine: EM_X86_64
    put32(&mut elf, 1); // e_version
    put64(&mut elf, paddr + ELF_ENTRY_OFFSET); // e_entry
    put64(&mut elf, 64); // e_phoff
    put64(&mut elf, 0); // e_shoff
    put32(&mut elf, 0); // e_flags
    for half in [64u16, 56, 2, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    // PT_LOAD, R|W|X: offset, vaddr, paddr, filesz, memsz, align
    put32(&mut elf, 1);
    put32(&mut elf, 7);
    for value in [
        code_offset,
        paddr,
        paddr,
        PVH_CODE.len() as u64,
        0x2000,
        0x1000,
    ] {
        put64(&mut elf, value);
    }
    // PT_NOTE
    put32(&mut elf, 4);
    put32(&mut elf, 4);
    for value in [note_offset, 0, 0, notes.len() as u64, 0, 4] {
        put64(&mut elf, value);
    }
    assert_eq!(elf.len() as u64, code_offset);
    elf.extend_from_slice(PVH_CODE);
    elf.resize(note_offset as usize, 0);
    elf.extend_from_slice(&notes);
    elf
}

/// The notes of the test kernels: a foreign note, then the PVH entry note (8-byte
/// descriptor, as Linux writes it) naming `entry`.
fn pvh_notes(entry: u64) -> Vec<u8> {
    let mut notes = Vec::new();
    for word in [4u32, 4, 1] {
        put32(&mut notes, word); // namesz, descsz, type: a GNU note to skip
    }
    notes.extend_from_slice(b"GNU\0\0\0\0\0");
    for word in [4u32, 8, 18] {
        put32(&mut notes, word); // namesz, descsz, XEN_ELFNOTE_PHYS32_ENTRY
    }
    notes.extend_from_slice(b"Xen\0");
    put64(&mut notes, entry);
    notes
}

/// An i386 ELF32 kernel: one PT_LOAD segment of 0x2000 bytes at `paddr` starting with
/// [`PVH_CODE`], then a PT_NOTE segment holding `notes`.
fn elf32_kernel(paddr: u32, notes: &[u8]) -> Vec<u8> {
    const PHDRS_END: u32 = 52 + 2 * 32;
    let code_offset = PHDRS_END;
    let note_offset = (code_offset + PVH_CODE.len() as u32).next_multiple_of(4);
    let mut elf = b"\x7fELF\x01\x01\x01\x00".to_vec();
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&3u16.to_le_bytes()); // e_machine: EM_386
    put32(&mut elf, 1); // e_version
    put32(&mut elf, paddr + ELF_ENTRY_OFFSET as u32); // e_entry
    put32(&mut elf, 52); // e_phoff
    put32(&mut elf, 0); // e_shoff
    put32(&mut elf, 0); // e_flags
    for half in [52u16, 32, 2, 0, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    // PT_LOAD, then PT_NOTE: type, offset, vaddr, paddr, filesz, memsz, flags, align
    for word in [
        1,
        code_offset,
        paddr,
        paddr,
        PVH_CODE.len() as u32,
        0x2000,
        7,
        0x1000,
    ] {
        put32(&mut elf, word);
    }
    for word in [4, note_offset, 0, 0, notes.len() as u32, 0, 4, 4] {
        put32(&mut elf, word);
    }
    assert_eq!(elf.len() as u32, code_offset);
    elf.extend_from_slice(PVH_CODE);
    elf.resize(note_offset as usize, 0);
    elf.extend_from_slice(notes);
    elf
}

fn pvh_kernels_are_detected_by_their_note() {
    let kernel = pvh_kernel(0x10_0000);
    let (format, entry, ranges) = kernel_plan(&kernel);
    assert_eq!(format, ImageFormat::Pvh);
    assert_eq!(entry, GuestPhysAddr::new(0x10_0000));
    assert_eq!(ranges, [(GuestPhysAddr::new(0x10_0000), 0x2000)]);
    let (format, entry, ranges) = kernel_plan(&elf32_kernel(0x20_0000, &pvh_notes(0x20_0000)));
    assert_eq!(
        format,
        ImageFormat::Pvh,
        "an ELF32 with the note is PVH too"
    );
    assert_eq!(entry, GuestPhysAddr::new(0x20_0000));
    assert_eq!(ranges, [(GuestPhysAddr::new(0x20_0000), 0x2000)]);
}

fn elf32_pvh_kernel_boots_like_an_elf64_one() {
    require_kvm();
    let kernel = elf32_kernel(0x20_0000, &pvh_notes(0x20_0000));
    let (vm, console) = create(config(2), &images(&kernel));
    let plan = vm.plan();
    assert_eq!(plan.format, ImageFormat::Pvh);
    assert_eq!(plan.bsp_entry, GuestPhysAddr::new(0x20_0000));
    assert!(
        matches!(plan.bsp.mode, CpuMode::Protected32 { .. }),
        "{plan:?}"
    );
    assert_eq!(plan.ap.start, StartPolicy::WaitForSipi);
    // The segment's bytes past the file's are zeroed.
    assert_eq!(read(&vm, 0x20_0000, PVH_CODE.len()), PVH_CODE);
    assert!(read(&vm, 0x20_0000 + PVH_CODE.len() as u64, 0x100)
        .iter()
        .all(|&b| b == 0));
    let info = plan.info.expect("start_info").as_u64();
    check_start_info(&vm, info);
    let (outcome, printed) = run(vm, &console);
    assert_eq!(outcome, VmOutcome::Exited(42), "console: {printed:?}");
    assert_eq!(printed, PVH_LINE);
}

fn elf32_without_the_pvh_note_is_refused_with_what_would_boot_it() {
    require_kvm();
    // The same image with its notes but no PVH one (the foreign note alone).
    let kernel = elf32_kernel(0x20_0000, &pvh_notes(0x20_0000)[..20]);
    let message = assert_refused(
        config(1),
        &images(&kernel),
        "kernel.kernel_path",
        "32-bit ELF image without a PVH note or Multiboot header",
    );
    for words in ["XEN_ELFNOTE_PHYS32_ENTRY", "Multiboot header", "ELF64"] {
        assert!(message.contains(words), "{words:?} not in: {message}");
    }
}

fn pvh_kernel_gets_start_info_in_ebx() {
    require_kvm();
    let (vm, console) = create(config(2), &images(&pvh_kernel(0x10_0000)));
    let plan = vm.plan();
    assert_eq!(plan.format, ImageFormat::Pvh);
    assert_eq!(plan.bsp_entry, GuestPhysAddr::new(0x10_0000));
    assert!(
        matches!(plan.bsp.mode, CpuMode::Protected32 { .. }),
        "{plan:?}"
    );
    assert_eq!(plan.bsp.start, StartPolicy::AtBoot);
    assert_eq!(plan.ap.start, StartPolicy::WaitForSipi);
    let info = plan.info.expect("start_info").as_u64();
    assert_eq!(plan.bsp.regs.rbx, info);
    check_start_info(&vm, info);
    let (outcome, printed) = run(vm, &console);
    assert_eq!(outcome, VmOutcome::Exited(42), "console: {printed:?}");
    assert_eq!(printed, PVH_LINE);
}

/// Checks `hvm_start_info` for [`config`] with [`RAM`], [`CMDLINE`] and [`RAMDISK`].
fn check_start_info(vm: &axvm_kvm::KvmVm, info: u64) {
    assert_eq!(read_u32(vm, info), PVH_START_INFO_MAGIC);
    assert_eq!(read_u32(vm, info + 4), 1, "version");
    assert_eq!(read_u32(vm, info + 12), 1, "nr_modules");
    let module = read_u64(vm, info + 16);
    let (paddr, size) = (read_u64(vm, module), read_u64(vm, module + 8));
    assert_eq!(paddr, (RAM - RAMDISK.len() as u64) & !0xfff);
    assert_eq!(size, RAMDISK.len() as u64);
    assert_eq!(read(vm, paddr, RAMDISK.len()), RAMDISK);
    assert_eq!(read_cstr(vm, read_u64(vm, info + 24)), CMDLINE);
    // The VMM may pass an RSDP; when it does, the RSDP must be there.
    let rsdp = read_u64(vm, info + 32);
    if rsdp != 0 {
        assert_eq!(read(vm, rsdp, 8), b"RSD PTR ");
    }
    let (memmap, entries) = (read_u64(vm, info + 40), read_u32(vm, info + 48));
    let expected = [
        (0, 0x9_fc00, 1),
        (0x9_fc00, 0x6_0400, 2),
        (0x10_0000, RAM - 0x10_0000, 1),
    ];
    assert_eq!(entries as usize, expected.len());
    for (index, (addr, len, kind)) in expected.into_iter().enumerate() {
        let entry = memmap + 24 * index as u64;
        assert_eq!(read_u64(vm, entry), addr, "entry {index}: addr");
        assert_eq!(read_u64(vm, entry + 8), len, "entry {index}: size");
        assert_eq!(read_u32(vm, entry + 16), kind, "entry {index}: type");
    }
}

/// PVH kernels loaded over the PC layout's boot data area (0x9000) and over its ACPI area
/// (0xe0000): each boots, with `hvm_start_info` (and the tables it points to) moved to the
/// first free bytes after the kernel, where the RSDP pointer follows.
fn pvh_kernels_in_low_memory_get_their_data_beside_them() {
    require_kvm();
    for (paddr, moved) in [(0x9000, "start_info"), (0xe_0000, "RSDP")] {
        let (vm, console) = create(config(1), &images(&pvh_kernel(paddr)));
        let kernel_end = paddr + 0x2000;
        let info = vm.plan().info.expect("start_info").as_u64();
        check_start_info(&vm, info);
        let rsdp = read_u64(&vm, info + 32);
        let after_kernel = match moved {
            "start_info" => info,
            _ => rsdp,
        };
        assert!(
            (kernel_end..kernel_end + 0x1_0000).contains(&after_kernel),
            "{moved} at {after_kernel:#x}, the kernel at {paddr:#x}..{kernel_end:#x}"
        );
        let (outcome, printed) = run(vm, &console);
        assert_eq!(outcome, VmOutcome::Exited(42), "console: {printed:?}");
        assert_eq!(printed, PVH_LINE);
    }
}

axvm_test_harness::main!(
    pvh_kernels_are_detected_by_their_note,
    pvh_kernel_gets_start_info_in_ebx,
    elf32_pvh_kernel_boots_like_an_elf64_one,
    elf32_without_the_pvh_note_is_refused_with_what_would_boot_it,
    pvh_kernels_in_low_memory_get_their_data_beside_them,
);
