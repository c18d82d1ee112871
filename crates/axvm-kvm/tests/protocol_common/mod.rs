//! Shared helpers of the boot-protocol tests (`protocol_*.rs`): configs with a command line,
//! a ramdisk and several vCPUs, creating a VM from full [`BootImages`], reading guest memory
//! back, and the tiny synthetic kernels' code, assembled once with GNU as and pasted here
//! with its source (AT&T syntax), so the tests need no assembler.
//!
//! Each test binary uses only part of this module, hence `allow(dead_code)`.
#![allow(dead_code)]

use axvm::device::UnclaimedAccessPolicy;
use axvm::{AxVMConfig, GuestPhysAddr};
use axvm_kvm::{BootImages, ImageFormat, KvmVm, VmOutcome, VmPlan};

use crate::common::{
    assert_images_refused, options, parse_config, read_guest, run_bounded, Console,
};

/// RAM of the test VMs: 64 MiB from 0, so `mem_upper` is 63 MiB = 0xfc00 KiB.
pub const RAM: u64 = 0x400_0000;
/// The command line the guests get; they print its first byte.
pub const CMDLINE: &str = "quiet console=ttyS0";
/// The kernel's name, as the configs' `kernel_path` writes it: a Multiboot kernel's command
/// line starts with it.
pub const KERNEL_NAME: &str = "inline";
/// The ramdisk the guests get; they print its first byte.
pub const RAMDISK: &[u8] = b"RAMDISK contents, page-aligned near the top of RAM";

/// The config text of a VM with `cpus` vCPUs, [`RAM`] bytes of RAM at 0, `cmdline` and,
/// when given, an explicit ramdisk address. `entry_point` is unused by the boot protocols
/// but must lie in RAM.
pub fn config_text(
    cpus: usize,
    ram: u64,
    cmdline: Option<&str>,
    ramdisk_at: Option<u64>,
) -> String {
    let cmdline = cmdline.map_or(String::new(), |text| format!("cmdline = {text:?}\n"));
    let ramdisk = ramdisk_at.map_or(String::new(), |at| format!("ramdisk_load_addr = {at:#x}\n"));
    format!(
        r#"
[base]
id = 11
name = "protocol-guest"
vm_type = 2
cpu_num = {cpus}

[kernel]
entry_point = 0x100000
image_location = "memory"
kernel_path = "inline"
kernel_load_addr = 0x100000
{cmdline}{ramdisk}memory_regions = [[0x0, {ram:#x}, 0x7, 0]]

[devices]
passthrough_devices = []
emu_devices = []
interrupt_mode = "no_irq"
"#
    )
}

/// [`config_text`] parsed, with [`CMDLINE`] and an automatically placed ramdisk.
pub fn config(cpus: usize) -> AxVMConfig {
    parse_config(&config_text(cpus, RAM, Some(CMDLINE), None))
}

/// How axvm plans to load `kernel` in a one-vCPU [`config`], without a VM (no KVM needed):
/// the format detected, vCPU 0's entry, and (start, size) of each range the kernel occupies.
pub fn kernel_plan(kernel: &[u8]) -> (ImageFormat, GuestPhysAddr, Vec<(GuestPhysAddr, u64)>) {
    let images = BootImages {
        kernel: kernel.to_vec(),
        ..Default::default()
    };
    let plan = VmPlan::for_config(&config(1), &images)
        .unwrap_or_else(|err| panic!("the kernel is refused: {err}"));
    let ranges = plan
        .images
        .iter()
        .filter(|range| range.field == Some("kernel.kernel_path"))
        .map(|range| (GuestPhysAddr::new(range.start), range.end - range.start))
        .collect();
    (plan.format, plan.bsp_entry, ranges)
}

/// `kernel`, named [`KERNEL_NAME`], with [`RAMDISK`].
pub fn images(kernel: &[u8]) -> BootImages {
    BootImages {
        kernel: kernel.to_vec(),
        ramdisk: Some(RAMDISK.to_vec()),
        kernel_name: Some(KERNEL_NAME.to_string()),
        ..Default::default()
    }
}

/// Creates the VM, panicking with the reason if that fails; returns it with its console.
pub fn create(config: AxVMConfig, images: &BootImages) -> (KvmVm, Console) {
    let console = Console::default();
    let vm = KvmVm::create(
        config,
        images,
        options(&console, UnclaimedAccessPolicy::Ignore),
    )
    .unwrap_or_else(|err| panic!("cannot create the VM: {err}"));
    (vm, console)
}

/// Runs `vm` (bounded) and returns how it ended and what it printed.
pub fn run(vm: KvmVm, console: &Console) -> (VmOutcome, String) {
    let outcome = run_bounded(vm, console)
        .unwrap_or_else(|err| panic!("the VM failed: {err}; console: {:?}", console.text()));
    (outcome, console.text())
}

/// `len` bytes of guest memory at `gpa`.
pub fn read(vm: &KvmVm, gpa: u64, len: usize) -> Vec<u8> {
    read_guest(vm.vm(), gpa, len)
}

/// The little-endian u32 at `gpa`.
pub fn read_u32(vm: &KvmVm, gpa: u64) -> u32 {
    u32::from_le_bytes(read(vm, gpa, 4).try_into().unwrap())
}

/// The little-endian u64 at `gpa`.
pub fn read_u64(vm: &KvmVm, gpa: u64) -> u64 {
    u64::from_le_bytes(read(vm, gpa, 8).try_into().unwrap())
}

/// The NUL-terminated string at `gpa` (at most 4 KiB).
pub fn read_cstr(vm: &KvmVm, gpa: u64) -> String {
    let bytes = read(vm, gpa, 0x1000);
    let end = bytes.iter().position(|&b| b == 0).expect("no NUL in 4 KiB");
    String::from_utf8(bytes[..end].to_vec()).expect("not UTF-8")
}

/// Asserts that creating a VM from `config` and `images` is refused with an error about a
/// field starting with `field`, whose message contains `words`; returns the message.
pub fn assert_refused(config: AxVMConfig, images: &BootImages, field: &str, words: &str) -> String {
    assert_images_refused(config, images, field, words)
}

/// 32-bit Multiboot kernel code (position-independent): checks EAX, then prints on COM1
/// `mem_upper` in hex, a space, the command line's first byte, the first module's first
/// byte and a newline, and exits with 42 (1 when EAX is wrong).
/// ```text
///     cmp $0x2BADB002, %eax
///     jne fail
///     mov $0x3f8, %dx
///     mov 8(%ebx), %esi         # mem_upper
///     mov $8, %ecx
/// hex:
///     rol $4, %esi
///     mov %esi, %eax
///     and $0xf, %al
///     add $0x30, %al
///     cmp $0x39, %al
///     jbe 1f
///     add $7, %al
/// 1:  out %al, %dx
///     loop hex
///     mov $0x20, %al
///     out %al, %dx
///     mov 16(%ebx), %esi        # cmdline
///     mov (%esi), %al
///     out %al, %dx
///     mov 24(%ebx), %esi        # mods_addr
///     mov (%esi), %esi          # mod_start
///     mov (%esi), %al
///     out %al, %dx
///     mov $0x0a, %al
///     out %al, %dx
///     mov $42, %al
///     out %al, $0xf4
///     jmp .
/// fail:
///     mov $1, %al
///     out %al, $0xf4
///     jmp .
/// ```
pub const MULTIBOOT_CODE: &[u8] = &[
    0x3d, 0x02, 0xb0, 0xad, 0x2b, 0x75, 0x38, 0x66, 0xba, 0xf8, 0x03, 0x8b, 0x73, 0x08, 0xb9, 0x08,
    0x00, 0x00, 0x00, 0xc1, 0xc6, 0x04, 0x89, 0xf0, 0x24, 0x0f, 0x04, 0x30, 0x3c, 0x39, 0x76, 0x02,
    0x04, 0x07, 0xee, 0xe2, 0xee, 0xb0, 0x20, 0xee, 0x8b, 0x73, 0x10, 0x8a, 0x06, 0xee, 0x8b, 0x73,
    0x18, 0x8b, 0x36, 0x8a, 0x06, 0xee, 0xb0, 0x0a, 0xee, 0xb0, 0x2a, 0xe6, 0xf4, 0xeb, 0xfe, 0xb0,
    0x01, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// What [`MULTIBOOT_CODE`] prints with [`RAM`], [`CMDLINE`] and [`RAMDISK`]: the command
/// line starts with [`KERNEL_NAME`].
pub const MULTIBOOT_LINE: &str = "0000FC00 iR\n";

/// 32-bit PVH kernel code (position-independent): checks `hvm_start_info`'s magic and
/// version, then prints on COM1 the command line's first byte, `nr_modules` as a digit, the
/// first module's first byte and a newline, and exits with 42 (1 when a check fails).
/// ```text
///     cmpl $0x336ec578, (%ebx)  # magic
///     jne fail
///     cmpl $1, 4(%ebx)          # version
///     jne fail
///     mov $0x3f8, %dx
///     mov 24(%ebx), %esi        # cmdline_paddr
///     mov (%esi), %al
///     out %al, %dx
///     mov 12(%ebx), %al         # nr_modules
///     add $0x30, %al
///     out %al, %dx
///     mov 16(%ebx), %esi        # modlist_paddr
///     mov (%esi), %esi          # paddr of module 0
///     mov (%esi), %al
///     out %al, %dx
///     mov $0x0a, %al
///     out %al, %dx
///     mov $42, %al
///     out %al, $0xf4
///     jmp .
/// fail:
///     mov $1, %al
///     out %al, $0xf4
///     jmp .
/// ```
pub const PVH_CODE: &[u8] = &[
    0x81, 0x3b, 0x78, 0xc5, 0x6e, 0x33, 0x75, 0x27, 0x83, 0x7b, 0x04, 0x01, 0x75, 0x21, 0x66, 0xba,
    0xf8, 0x03, 0x8b, 0x73, 0x18, 0x8a, 0x06, 0xee, 0x8a, 0x43, 0x0c, 0x04, 0x30, 0xee, 0x8b, 0x73,
    0x10, 0x8b, 0x36, 0x8a, 0x06, 0xee, 0xb0, 0x0a, 0xee, 0xb0, 0x2a, 0xe6, 0xf4, 0xeb, 0xfe, 0xb0,
    0x01, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// What [`PVH_CODE`] prints with [`CMDLINE`] and [`RAMDISK`].
pub const PVH_LINE: &str = "q1R\n";

/// 64-bit Linux-entry code (position-independent): checks the zero page RSI points at
/// ("HdrS", loader type 0xff), then prints on COM1 the command line's first byte, the
/// ramdisk's first byte, the number of e820 entries as a digit and a newline, and exits
/// with 42 (1 when a check fails).
/// ```text
///     .code64
///     cmpl $0x53726448, 0x202(%rsi)   # hdr.header
///     jne fail
///     cmpb $0xff, 0x210(%rsi)         # hdr.type_of_loader
///     jne fail
///     mov $0x3f8, %dx
///     mov 0x228(%rsi), %edi           # hdr.cmd_line_ptr
///     movb (%rdi), %al
///     out %al, %dx
///     mov 0x218(%rsi), %edi           # hdr.ramdisk_image
///     movb (%rdi), %al
///     out %al, %dx
///     movb 0x1e8(%rsi), %al           # e820_entries
///     add $0x30, %al
///     out %al, %dx
///     mov $0x0a, %al
///     out %al, %dx
///     mov $42, %al
///     out %al, $0xf4
///     jmp .
/// fail:
///     mov $1, %al
///     out %al, $0xf4
///     jmp .
/// ```
pub const LINUX64_CODE: &[u8] = &[
    0x81, 0xbe, 0x02, 0x02, 0x00, 0x00, 0x48, 0x64, 0x72, 0x53, 0x75, 0x31, 0x80, 0xbe, 0x10, 0x02,
    0x00, 0x00, 0xff, 0x75, 0x28, 0x66, 0xba, 0xf8, 0x03, 0x8b, 0xbe, 0x28, 0x02, 0x00, 0x00, 0x8a,
    0x07, 0xee, 0x8b, 0xbe, 0x18, 0x02, 0x00, 0x00, 0x8a, 0x07, 0xee, 0x8a, 0x86, 0xe8, 0x01, 0x00,
    0x00, 0x04, 0x30, 0xee, 0xb0, 0x0a, 0xee, 0xb0, 0x2a, 0xe6, 0xf4, 0xeb, 0xfe, 0xb0, 0x01, 0xe6,
    0xf4, 0xeb, 0xfe,
];

/// What [`LINUX64_CODE`] prints with [`RAM`] (3 e820 entries), [`CMDLINE`] and [`RAMDISK`].
pub const LINUX64_LINE: &str = "qR3\n";

/// Appends `value` little-endian.
pub fn put32(bytes: &mut Vec<u8>, value: u32) {
    bytes.extend_from_slice(&value.to_le_bytes());
}

/// Appends `value` little-endian.
pub fn put64(bytes: &mut Vec<u8>, value: u64) {
    bytes.extend_from_slice(&value.to_le_bytes());
}

/// Writes `value` little-endian at `at`.
pub fn set32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}
