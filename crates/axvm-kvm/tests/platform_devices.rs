//! The PC platform devices kernels built for QEMU expect, seen from tiny real-mode guests:
//! fw_cfg's signature and CPU count, the CMOS base-memory size, the 0xe9 debug console next
//! to COM1, the 0xcf9 reset, and the ACPI PM block (power-off through PM1_CNT, the PM
//! timer). Every guest runs under the `Error` policy for unclaimed
//! accesses, so a port no device answers fails the test instead of reading 0.
//!
//! The guests were assembled with `as --32` (`.code16`) and `objcopy -O binary`; they are
//! loaded and entered at 0x8000 in real mode with DS = ES = SS = 0.

mod common;

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::VmOutcome;
use common::{boot, parse_config, raw_config, raw_config_text, require_kvm};

/// Prints the fw_cfg signature on COM1 and exits with the CPU count; other vCPUs halt:
/// ```text
///     mov eax, 1
///     cpuid
///     shr ebx, 24          ; initial APIC id
///     jnz ap
///     mov dx, 0x510
///     xor ax, ax           ; FW_CFG_SIGNATURE
///     out dx, ax
///     mov cx, 4
/// 1:  mov dx, 0x511
///     in al, dx
///     mov dx, 0x3f8
///     out dx, al
///     loop 1b
///     mov dx, 0x510
///     mov ax, 5            ; FW_CFG_NB_CPUS
///     out dx, ax
///     mov dx, 0x511
///     in al, dx            ; low byte of the u16
///     out 0xf4, al
///     jmp $
/// ap: cli
///     hlt
///     jmp ap
/// ```
const FW_CFG_GUEST: &[u8] = &[
    0x66, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, 0x66, 0xc1, 0xeb, 0x18, 0x75, 0x22, 0xba, 0x10,
    0x05, 0x31, 0xc0, 0xef, 0xb9, 0x04, 0x00, 0xba, 0x11, 0x05, 0xec, 0xba, 0xf8, 0x03, 0xee, 0xe2,
    0xf6, 0xba, 0x10, 0x05, 0xb8, 0x05, 0x00, 0xef, 0xba, 0x11, 0x05, 0xec, 0xe6, 0xf4, 0xeb, 0xfe,
    0xfa, 0xf4, 0xeb, 0xfc,
];

/// Reads the CMOS base-memory size (KiB, registers 0x15 low and 0x16 high) and exits with
/// it minus 512:
/// ```text
///     mov al, 0x16
///     out 0x70, al
///     in al, 0x71
///     mov ah, al
///     mov al, 0x15
///     out 0x70, al
///     in al, 0x71
///     sub ax, 512
///     out 0xf4, al
///     jmp $
/// ```
const CMOS_GUEST: &[u8] = &[
    0xb0, 0x16, 0xe6, 0x70, 0xe4, 0x71, 0x88, 0xc4, 0xb0, 0x15, 0xe6, 0x70, 0xe4, 0x71, 0x2d, 0x00,
    0x02, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// The line [`DEBUG_PORT_GUEST`] prints on port 0xe9.
const DEBUG_PORT_TEXT: &str = "debug port 0xe9\n";

/// Prints "S" on COM1, then [`DEBUG_PORT_TEXT`] on port 0xe9, and exits with what a read of
/// port 0xe9 returns:
/// ```text
///     mov al, 'S'
///     mov dx, 0x3f8
///     out dx, al
///     cld
///     mov si, 0x8000 + msg
///     mov cx, msgend - msg
///     mov dx, 0xe9
///     rep outsb
///     in al, dx
///     out 0xf4, al
///     jmp $
/// msg: .ascii "debug port 0xe9\n"
/// msgend:
/// ```
const DEBUG_PORT_GUEST: &[u8] = &[
    0xb0, 0x53, 0xba, 0xf8, 0x03, 0xee, 0xfc, 0xbe, 0x17, 0x80, 0xb9, 0x10, 0x00, 0xba, 0xe9, 0x00,
    0xf3, 0x6e, 0xec, 0xe6, 0xf4, 0xeb, 0xfe, 0x64, 0x65, 0x62, 0x75, 0x67, 0x20, 0x70, 0x6f, 0x72,
    0x74, 0x20, 0x30, 0x78, 0x65, 0x39, 0x0a,
];

/// ```text
///     mov al, 0x06         ; system reset + reset CPU
///     mov dx, 0xcf9
///     out dx, al
///     jmp $
/// ```
const RESET_GUEST: &[u8] = &[0xb0, 0x06, 0xba, 0xf9, 0x0c, 0xee, 0xeb, 0xfe];

/// Powers off the ACPI way, as Linux's `poweroff` ends: SLP_TYP of `\_S5` (0, QEMU's) with
/// SLP_EN to PM1_CNT, which is also the 0x2000 to port 0x604 that ArceOS and NimbOS write on
/// QEMU's q35. Exits with 0x10 plus SCI_EN should the VM go on after the write:
/// ```text
///     mov dx, 0x604        ; PM1a_CNT
///     in ax, dx
///     mov bx, ax           ; SCI_EN in bit 0
///     mov ax, 0x2000       ; SLP_TYP 0 << 10 | SLP_EN (1 << 13)
///     out dx, ax
///     mov al, bl
///     add al, 0x10
///     out 0xf4, al
///     jmp $
/// ```
const ACPI_POWER_OFF_GUEST: &[u8] = &[
    0xba, 0x04, 0x06, 0xed, 0x89, 0xc3, 0xb8, 0x00, 0x20, 0xef, 0x88, 0xd8, 0x04, 0x10, 0xe6, 0xf4,
    0xeb, 0xfe,
];

/// Asks for sleep state type 3 (not supported: ignored), then exits with PM1_CNT's low and
/// high bytes or-ed: SCI_EN (1) | SLP_TYP 3 << 2 (0x0c), SLP_EN reading 0:
/// ```text
///     mov dx, 0x604
///     mov ax, 0x2c00       ; SLP_TYP 3 << 10 | SLP_EN
///     out dx, ax
///     in ax, dx
///     or al, ah
///     out 0xf4, al
///     jmp $
/// ```
const ACPI_OTHER_SLEEP_GUEST: &[u8] = &[
    0xba, 0x04, 0x06, 0xb8, 0x00, 0x2c, 0xef, 0xed, 0x08, 0xe0, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// Reads the PM timer until it changes, then exits with 0x22 (a stopped timer leaves the
/// guest looping until the test's deadline):
/// ```text
///     mov dx, 0x608        ; PM_TMR
///     in eax, dx
///     mov ebx, eax
/// 1:  in eax, dx
///     cmp eax, ebx
///     je 1b
///     mov al, 0x22
///     out 0xf4, al
///     jmp $
/// ```
const PM_TIMER_GUEST: &[u8] = &[
    0xba, 0x08, 0x06, 0x66, 0xed, 0x66, 0x89, 0xc3, 0x66, 0xed, 0x66, 0x39, 0xd8, 0x74, 0xf9, 0xb0,
    0x22, 0xe6, 0xf4, 0xeb, 0xfe,
];

fn fw_cfg_reports_the_qemu_signature_and_the_cpu_count() {
    require_kvm();
    let text = raw_config_text(0x10_0000, 0x8000, 0x8000).replace("cpu_num = 1", "cpu_num = 3");
    let (result, console) = boot(
        parse_config(&text),
        FW_CFG_GUEST,
        UnclaimedAccessPolicy::Error,
    );
    let outcome = result.unwrap_or_else(|err| panic!("the VM failed: {err}; console {console:?}"));
    assert_eq!(console, "QEMU");
    assert_eq!(outcome, VmOutcome::Exited(3), "console {console:?}");
}

fn cmos_reports_the_base_memory_size() {
    require_kvm();
    // 1 MiB of RAM: the 640 KiB of base memory installed, as QEMU's CMOS says (the BDA
    // says 639: the EBDA takes the last KiB).
    let (result, console) = boot(raw_config(), CMOS_GUEST, UnclaimedAccessPolicy::Error);
    let outcome = result.unwrap_or_else(|err| panic!("the VM failed: {err}; console {console:?}"));
    assert_eq!(outcome, VmOutcome::Exited((640 - 512) as u8));
}

fn debug_port_prints_on_the_com1_console_and_reads_0xe9() {
    require_kvm();
    let (result, console) = boot(raw_config(), DEBUG_PORT_GUEST, UnclaimedAccessPolicy::Error);
    let outcome = result.unwrap_or_else(|err| panic!("the VM failed: {err}; console {console:?}"));
    assert_eq!(console, format!("S{DEBUG_PORT_TEXT}"));
    assert_eq!(outcome, VmOutcome::Exited(0xe9));
}

fn reset_control_port_resets_with_status_0() {
    require_kvm();
    let (result, console) = boot(raw_config(), RESET_GUEST, UnclaimedAccessPolicy::Error);
    let outcome = result.unwrap_or_else(|err| panic!("the VM failed: {err}; console {console:?}"));
    assert_eq!(outcome, VmOutcome::Exited(0));
}

fn writing_s5_0x2000_to_port_0x604_powers_off_with_status_0() {
    require_kvm();
    let (result, console) = boot(
        raw_config(),
        ACPI_POWER_OFF_GUEST,
        UnclaimedAccessPolicy::Error,
    );
    let outcome = result.unwrap_or_else(|err| panic!("the VM failed: {err}; console {console:?}"));
    assert_eq!(outcome, VmOutcome::Exited(0));
}

fn other_sleep_types_leave_the_guest_running() {
    require_kvm();
    let (result, console) = boot(
        raw_config(),
        ACPI_OTHER_SLEEP_GUEST,
        UnclaimedAccessPolicy::Error,
    );
    let outcome = result.unwrap_or_else(|err| panic!("the VM failed: {err}; console {console:?}"));
    assert_eq!(outcome, VmOutcome::Exited(0x0d));
}

fn the_pm_timer_counts_for_the_guest() {
    require_kvm();
    let (result, console) = boot(raw_config(), PM_TIMER_GUEST, UnclaimedAccessPolicy::Error);
    let outcome = result.unwrap_or_else(|err| panic!("the VM failed: {err}; console {console:?}"));
    assert_eq!(outcome, VmOutcome::Exited(0x22));
}

axvm_test_harness::main!(
    fw_cfg_reports_the_qemu_signature_and_the_cpu_count,
    cmos_reports_the_base_memory_size,
    debug_port_prints_on_the_com1_console_and_reads_0xe9,
    reset_control_port_resets_with_status_0,
    writing_s5_0x2000_to_port_0x604_powers_off_with_status_0,
    other_sleep_types_leave_the_guest_running,
    the_pm_timer_counts_for_the_guest,
);
