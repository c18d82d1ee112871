//! Multiboot v1: tiny synthetic kernels (an a.out-kludge image and an ELF32 image) that
//! check EAX and read the information structure through EBX, the information structure read
//! back from guest memory, and the kernels axvm refuses with the field named.

mod common;
mod protocol_common;

use axvm::GuestPhysAddr;
use axvm_kvm::{CpuMode, ImageFormat, StartPolicy, VmOutcome};
use axvm_pc::multiboot::{self, MultibootImages};
use common::{parse_config, require_kvm};
use protocol_common::*;

const MAGIC: u32 = 0x1BAD_B002;
/// What a Multiboot loader leaves in EAX (the specification's).
const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
const MEMORY_INFO: u32 = 1 << 1;
const VIDEO_MODE: u32 = 1 << 2;
const AOUT_KLUDGE: u32 = 1 << 16;

/// A Multiboot header with `flags` and, for the a.out kludge, its five address fields.
fn header(flags: u32, addresses: &[u32]) -> Vec<u8> {
    let mut bytes = Vec::new();
    put32(&mut bytes, MAGIC);
    put32(&mut bytes, flags);
    put32(&mut bytes, 0u32.wrapping_sub(MAGIC).wrapping_sub(flags));
    for &address in addresses {
        put32(&mut bytes, address);
    }
    bytes
}

/// An a.out-kludge kernel loaded at `load` (header first, then [`MULTIBOOT_CODE`]), with
/// `bss` zero bytes after the file, entered right after the 32-byte header.
fn kludge_kernel(load: u32, bss: u32) -> Vec<u8> {
    kludge_kernel_with(load, bss, MULTIBOOT_CODE)
}

/// [`kludge_kernel`] with other code.
fn kludge_kernel_with(load: u32, bss: u32, code: &[u8]) -> Vec<u8> {
    let file_len = 32 + code.len() as u32;
    let fields = [load, load, 0, load + file_len + bss, load + 32];
    let mut image = header(AOUT_KLUDGE | MEMORY_INFO, &fields);
    image.extend_from_slice(code);
    image
}

/// 32-bit code that wakes vCPU 1 the way a kernel does: it writes a real-mode trampoline
/// at 0x8000 that exits with 42, enables its local APIC, sends INIT then two SIPIs with
/// vector 0x08 (0x8000) to APIC id 1 through the ICR, and spins. Only a vCPU 1 that waited
/// for the SIPI and started there can end the VM with 42.
/// ```text
///     cmp $0x2BADB002, %eax
///     jne fail
///     movl $0xf4e62ab0, 0x8000          # trampoline: mov $42, %al; out %al, $0xf4
///     movw $0xfeeb, 0x8004              #             jmp .
///     orl $0x100, 0xfee000f0            # SVR: APIC software-enabled
///     movl $0x01000000, 0xfee00310      # ICR high: destination APIC id 1
///     movl $0x00004500, 0xfee00300      # ICR low: INIT, assert
///     mov $2, %ecx
/// sipi:
///     movl $0x01000000, 0xfee00310
///     movl $0x00004608, 0xfee00300      # ICR low: start-up, vector 0x08
///     loop sipi
/// 1:  pause
///     jmp 1b
/// fail:
///     mov $1, %al
///     out %al, $0xf4
///     jmp .
/// ```
const WAKE_AP_CODE: &[u8] = &[
    0x3d, 0x02, 0xb0, 0xad, 0x2b, 0x75, 0x50, 0xc7, 0x05, 0x00, 0x80, 0x00, 0x00, 0xb0, 0x2a, 0xe6,
    0xf4, 0x66, 0xc7, 0x05, 0x04, 0x80, 0x00, 0x00, 0xeb, 0xfe, 0x81, 0x0d, 0xf0, 0x00, 0xe0, 0xfe,
    0x00, 0x01, 0x00, 0x00, 0xc7, 0x05, 0x10, 0x03, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x01, 0xc7, 0x05,
    0x00, 0x03, 0xe0, 0xfe, 0x00, 0x45, 0x00, 0x00, 0xb9, 0x02, 0x00, 0x00, 0x00, 0xc7, 0x05, 0x10,
    0x03, 0xe0, 0xfe, 0x00, 0x00, 0x00, 0x01, 0xc7, 0x05, 0x00, 0x03, 0xe0, 0xfe, 0x08, 0x46, 0x00,
    0x00, 0xe2, 0xea, 0xf3, 0x90, 0xeb, 0xfc, 0xb0, 0x01, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// An i386 ELF32 kernel with one segment (a header without the kludge, then
/// [`MULTIBOOT_CODE`], then 0x1000 bytes of bss) at physical `paddr`, linked at virtual
/// `vaddr`, whose ELF entry is the code's virtual address.
fn elf32_kernel(paddr: u32, vaddr: u32) -> Vec<u8> {
    const CONTENT_OFFSET: u32 = 0x60;
    let mut content = header(MEMORY_INFO, &[]);
    content.extend_from_slice(MULTIBOOT_CODE);
    let mut elf = b"\x7fELF\x01\x01\x01\x00".to_vec(); // ELFCLASS32, little-endian
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&3u16.to_le_bytes()); // e_machine: EM_386
    put32(&mut elf, 1); // e_version
    put32(&mut elf, vaddr + 12); // e_entry: after the 12-byte header
    put32(&mut elf, 52); // e_phoff
    put32(&mut elf, 0); // e_shoff
    put32(&mut elf, 0); // e_flags
    for half in [52u16, 32, 1, 0, 0, 0] {
        // e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx
        elf.extend_from_slice(&half.to_le_bytes());
    }
    let filesz = content.len() as u32;
    // PT_LOAD: type, offset, vaddr, paddr, filesz, memsz, flags (R|W|X), align
    for word in [
        1,
        CONTENT_OFFSET,
        vaddr,
        paddr,
        filesz,
        filesz + 0x1000,
        7,
        0x1000,
    ] {
        put32(&mut elf, word);
    }
    elf.resize(CONTENT_OFFSET as usize, 0);
    elf.extend_from_slice(&content);
    elf
}

fn multiboot_images_are_detected_and_laid_out_without_a_vm() {
    let kludge = kludge_kernel(0x10_0000, 0x1000);
    let (format, entry, ranges) = kernel_plan(&kludge);
    assert_eq!(format, ImageFormat::Multiboot);
    assert_eq!(entry, GuestPhysAddr::new(0x10_0020));
    let len = kludge.len() as u64 + 0x1000;
    assert_eq!(ranges, [(GuestPhysAddr::new(0x10_0000), len)]);
    let (format, entry, _) = kernel_plan(&elf32_kernel(0x20_0000, 0xc020_0000));
    assert_eq!(format, ImageFormat::Multiboot);
    assert_eq!(entry, GuestPhysAddr::new(0x20_000c));
}

fn kludge_kernel_gets_the_magic_and_the_information_structure() {
    require_kvm();
    let kernel = kludge_kernel(0x10_0000, 0x1000);
    let (vm, console) = create(config(2), &images(&kernel));
    let plan = vm.plan();
    assert_eq!(plan.format, ImageFormat::Multiboot);
    assert_eq!(plan.bsp_entry, GuestPhysAddr::new(0x10_0020));
    assert!(
        matches!(plan.bsp.mode, CpuMode::Protected32 { .. }),
        "{plan:?}"
    );
    assert_eq!(plan.bsp.regs.rax, u64::from(MULTIBOOT_BOOTLOADER_MAGIC));
    assert_eq!(
        plan.bsp.regs.rsp, 0x7000,
        "a usable stack below the boot data, as the ArceOS hypervisor's BIOS stub gives"
    );
    assert_eq!(plan.bsp.start, StartPolicy::AtBoot);
    assert_eq!(plan.ap.start, StartPolicy::WaitForSipi);
    let info = plan.info.expect("an information structure").as_u64();
    assert_eq!(plan.bsp.regs.rbx, info);
    check_information(&vm, info);
    // The bss after the file is zero.
    let bss_start = 0x10_0000 + kernel.len() as u64;
    assert!(read(&vm, bss_start, 0x1000).iter().all(|&b| b == 0));
    let (outcome, printed) = run(vm, &console);
    assert_eq!(outcome, VmOutcome::Exited(42), "console: {printed:?}");
    assert_eq!(printed, MULTIBOOT_LINE);
}

/// Checks every field axvm fills, for [`config`] with [`RAM`], [`CMDLINE`], [`RAMDISK`].
fn check_information(vm: &axvm_kvm::KvmVm, info: u64) {
    let field = |offset: u64| read_u32(vm, info + offset);
    let flags = field(0);
    assert_eq!(flags, 0x1 | 0x4 | 0x8 | 0x40 | 0x200, "flags {flags:#x}");
    assert_eq!((field(4), field(8)), (639, (RAM - 0x10_0000) as u32 / 1024));
    assert_eq!(
        read_cstr(vm, field(16).into()),
        format!("{KERNEL_NAME} {CMDLINE}"),
        "the kernel's name first, as QEMU and GRUB pass it"
    );
    assert_eq!(field(20), 1, "mods_count");
    let module = u64::from(field(24));
    let (start, end) = (read_u32(vm, module), read_u32(vm, module + 4));
    assert_eq!(start % 0x1000, 0, "modules are page-aligned");
    assert_eq!(
        start,
        (RAM as u32 - RAMDISK.len() as u32) & !0xfff,
        "near the top"
    );
    assert_eq!(end - start, RAMDISK.len() as u32);
    assert_eq!(read(vm, start.into(), RAMDISK.len()), RAMDISK);
    assert_eq!(read_cstr(vm, read_u32(vm, module + 8).into()), "ramdisk");
    let (mmap_length, mmap) = (field(44), u64::from(field(48)));
    let expected = [
        (0, 0x9_fc00, 1),
        (0x9_fc00, 0x6_0400, 2),
        (0x10_0000, RAM - 0x10_0000, 1),
    ];
    assert_eq!(mmap_length as usize, expected.len() * 24);
    for (index, (addr, len, kind)) in expected.into_iter().enumerate() {
        let entry = mmap + 24 * index as u64;
        assert_eq!(read_u32(vm, entry), 20, "entry {index}: size field");
        assert_eq!(read_u64(vm, entry + 4), addr, "entry {index}: base");
        assert_eq!(read_u64(vm, entry + 12), len, "entry {index}: length");
        assert_eq!(read_u32(vm, entry + 20), kind, "entry {index}: type");
    }
    assert_eq!(read_cstr(vm, field(64).into()), "axvm");
}

fn the_kernel_wakes_vcpu_1_with_init_sipi_sipi() {
    require_kvm();
    let kernel = kludge_kernel_with(0x10_0000, 0, WAKE_AP_CODE);
    let (vm, console) = create(config(2), &images(&kernel));
    let (outcome, printed) = run(vm, &console);
    assert_eq!(outcome, VmOutcome::Exited(42), "console: {printed:?}");
}

fn elf32_kernel_is_loaded_by_physical_address_and_entered_there() {
    require_kvm();
    let kernel = elf32_kernel(0x20_0000, 0xc020_0000);
    let (vm, console) = create(config(1), &images(&kernel));
    let plan = vm.plan();
    assert_eq!(plan.format, ImageFormat::Multiboot);
    assert_eq!(plan.bsp_entry, GuestPhysAddr::new(0x20_000c));
    assert_eq!(read_u32(&vm, 0x20_0000), MAGIC);
    let (outcome, printed) = run(vm, &console);
    assert_eq!(outcome, VmOutcome::Exited(42), "console: {printed:?}");
    assert_eq!(printed, MULTIBOOT_LINE);
}

fn no_cmdline_is_the_kernel_name_and_a_space_and_an_explicit_ramdisk_address_is_used() {
    require_kvm();
    let config = parse_config(&config_text(1, RAM, None, Some(0x80_0000)));
    let (vm, _console) = create(config, &images(&kludge_kernel(0x10_0000, 0)));
    let info = vm.plan().info.expect("info").as_u64();
    // As QEMU passes `-kernel PATH` without `-append`: "PATH ".
    assert_eq!(
        read_cstr(&vm, read_u32(&vm, info + 16).into()),
        format!("{KERNEL_NAME} ")
    );
    let module = u64::from(read_u32(&vm, info + 24));
    assert_eq!(read_u32(&vm, module), 0x80_0000);
    assert_eq!(read(&vm, 0x80_0000, RAMDISK.len()), RAMDISK);
}

fn bad_multiboot_kernels_are_refused_with_the_field_named() {
    require_kvm();
    let mut bad_checksum = kludge_kernel(0x10_0000, 0);
    bad_checksum[8] ^= 0x80;
    let mut video = header(
        AOUT_KLUDGE | VIDEO_MODE,
        &[0x10_0000, 0x10_0000, 0, 0, 0x10_0020],
    );
    video.extend_from_slice(MULTIBOOT_CODE);
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("bad checksum", bad_checksum, "bad checksum"),
        ("video mode", video, "video mode"),
        // Starts inside RAM, but its bss runs 0x1000 bytes past the end.
        (
            "bss past RAM",
            kludge_kernel(RAM as u32 - 0x1000, 0x1000),
            "does not fit",
        ),
        (
            "outside RAM",
            kludge_kernel(RAM as u32 + 0x10_0000, 0),
            "not inside any memory region",
        ),
        // 0xd0000..0x110060: no byte of 0xe0000-0xfffff is left for the RSDP.
        (
            "over the BIOS area",
            kludge_kernel(0xd_0000, 0x4_0000),
            "covers 0xe0000..0x100000",
        ),
    ];
    for (what, kernel, words) in cases {
        eprintln!("case: {what}");
        assert_refused(config(1), &images(&kernel), "kernel.kernel_path", words);
    }
}

/// A kernel linked at 0x9000, over the PC layout's boot data area (boot loaders built as
/// Multiboot kernels link there): it boots, with every field of its information, which
/// axvm puts in the first free page after it, as QEMU puts its Multiboot data after the
/// kernel.
fn a_kernel_linked_at_0x9000_gets_its_information_after_it() {
    require_kvm();
    let kernel = kludge_kernel(0x9000, 0x1000);
    let kernel_end = 0x9000 + kernel.len() as u64 + 0x1000;
    let (vm, console) = create(config(1), &images(&kernel));
    let info = vm.plan().info.expect("an information structure").as_u64();
    assert!(
        (kernel_end..0x9_f000).contains(&info),
        "info at {info:#x}, the kernel ends at {kernel_end:#x}"
    );
    check_information(&vm, info);
    assert_eq!(read_u32(&vm, 0x9000), MAGIC, "the kernel is where it asked");
    let (outcome, printed) = run(vm, &console);
    assert_eq!(outcome, VmOutcome::Exited(42), "console: {printed:?}");
    assert_eq!(printed, MULTIBOOT_LINE);
}

fn a_ramdisk_over_the_kernel_is_refused() {
    require_kvm();
    let config = parse_config(&config_text(1, RAM, Some(CMDLINE), Some(0x10_0000)));
    assert_refused(
        config,
        &images(&kludge_kernel(0x10_0000, 0)),
        "kernel.ramdisk_load_addr",
        "overlaps the kernel",
    );
}

/// The platform's Multiboot loader (`axvm_pc::multiboot`), which hosts without KVM use,
/// leaves guest memory as the KVM host's loader does: a second VM with the same config, its
/// RAM cleared and loaded through `plan` and `load`, holds the same bytes (all but the BIOS
/// Data Area's tick count, each loader's own clock reading) and starts its vCPUs the same.
fn the_platform_loader_leaves_the_same_memory_as_the_kvm_host() {
    require_kvm();
    let kernel = kludge_kernel(0x10_0000, 0x1000);
    let (kvm_loaded, _) = create(config(2), &images(&kernel));
    let (pc_loaded, _) = create(config(2), &images(&kernel));
    let vm = pc_loaded.vm();
    vm.memory()
        .write(GuestPhysAddr::new(0), &vec![0; RAM as usize])
        .expect("RAM is cleared");
    let pc_images = MultibootImages {
        kernel: &kernel,
        ramdisk: Some(RAMDISK),
        kernel_name: Some(KERNEL_NAME),
        others: &[],
    };
    let plan = multiboot::plan(vm.config(), &pc_images).expect("the platform plans it");
    let start = plan
        .load(vm, &pc_images, 12 * 3600)
        .expect("the platform loads it");
    let expected = kvm_loaded.plan();
    assert_eq!(
        (start.vcpu(0), start.vcpu(1)),
        (expected.vcpu(0), expected.vcpu(1))
    );
    assert_eq!(
        (Some(start.info), start.ramdisk),
        (expected.info, expected.ramdisk)
    );
    let mut by_kvm = read(&kvm_loaded, 0, RAM as usize);
    let mut by_pc = read(&pc_loaded, 0, RAM as usize);
    assert_eq!(
        &by_pc[0xe_0000..0xe_0008],
        b"RSD PTR ",
        "the firmware tables too"
    );
    assert_eq!(by_pc[0x400..0x402], [0xf8, 0x03], "and the BDA");
    const TICKS: std::ops::Range<usize> = 0x46c..0x470;
    by_kvm[TICKS].fill(0);
    by_pc[TICKS].fill(0);
    let first_difference = (0..by_kvm.len()).find(|&at| by_kvm[at] != by_pc[at]);
    assert_eq!(first_difference, None, "guest memory differs");
}

axvm_test_harness::main!(
    multiboot_images_are_detected_and_laid_out_without_a_vm,
    the_platform_loader_leaves_the_same_memory_as_the_kvm_host,
    kludge_kernel_gets_the_magic_and_the_information_structure,
    the_kernel_wakes_vcpu_1_with_init_sipi_sipi,
    elf32_kernel_is_loaded_by_physical_address_and_entered_there,
    no_cmdline_is_the_kernel_name_and_a_space_and_an_explicit_ramdisk_address_is_used,
    bad_multiboot_kernels_are_refused_with_the_field_named,
    a_kernel_linked_at_0x9000_gets_its_information_after_it,
    a_ramdisk_over_the_kernel_is_refused,
);
