//! The FADT ("FACP"): the fixed ACPI hardware a kernel's ACPI interpreter needs before it
//! starts. Linux's ACPICA refuses to start without a PM1a event block and a PM1a control
//! block ("Required FADT field Pm1aEventBlock has zero address and/or length"); they, and
//! the PM timer, are the registers of the KVM host's `devices::AcpiPm`, each given twice: as the legacy
//! 32-bit port and length, and as the generic address ACPI 2.0+ readers prefer. Both forms
//! must agree, or ACPICA warns and picks one.

use alloc::vec::Vec;

use super::sdt::{finish_sdt, sdt_header};
use super::{
    PutLe, PM1A_CONTROL_PORT, PM1A_EVENT_PORT, PM1_CONTROL_LEN, PM1_EVENT_LEN, PM_TIMER_LEN,
    PM_TIMER_PORT, RESET_PORT, RESET_VALUE, SCI_IRQ,
};

/// FADT flags: WBINVD works (bit 0), C1 (HLT) works on every CPU (bit 2), the power and sleep
/// buttons are not fixed hardware (bits 4, 5, so kernels enable no button events nobody
/// would raise), the PM timer counts 32 bits (TMR_VAL_EXT, bit 8), and RESET_REG is supported
/// (bit 10).
pub(super) const FADT_FLAGS: u32 = 1 | 1 << 2 | 1 << 4 | 1 << 5 | 1 << 8 | 1 << 10;
/// IA-PC boot architecture flags: legacy ISA devices (LEGACY_DEVICES, bit 0), and bit 1
/// (8042) clear: axvm attaches no PS/2 keyboard or mouse, so kernels that honour the flag do
/// not probe for them.
pub(super) const IAPC_BOOT_ARCH: u16 = 1;
/// The FADT's length for its revision (6: the ACPI 6.0 layout, with the hypervisor vendor
/// identity), which ACPICA checks against the revision.
pub(super) const FADT_LEN: usize = 276;

/// Generic address access sizes (ACPI 6.0, table 5-25).
const ACCESS_WORD: u8 = 2;
const ACCESS_DWORD: u8 = 3;
const ACCESS_BYTE: u8 = 1;

/// The FADT, ACPI 6.0 layout (revision 6, [`FADT_LEN`] bytes). Offsets in the comments.
pub(super) fn fadt(facs: u64, dsdt: u64) -> Vec<u8> {
    let mut table = sdt_header(b"FACP", 6);
    table
        .put_u32(facs as u32) // 36 FIRMWARE_CTRL (X_FIRMWARE_CTRL stays 0, as the spec asks)
        .put_u32(dsdt as u32) // 40 DSDT
        .put_u8(0) // 44 reserved
        .put_u8(0) // 45 preferred PM profile: unspecified
        .put_u16(SCI_IRQ.into()) // 46 SCI_INT
        .put_u32(0) // 48 SMI_CMD: none, the machine is always in ACPI mode (SCI_EN reads 1)
        .put_bytes(&[0; 4]) // 52 ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
        .put_u32(PM1A_EVENT_PORT.into()) // 56 PM1a_EVT_BLK
        .put_u32(0) // 60 PM1b_EVT_BLK: none
        .put_u32(PM1A_CONTROL_PORT.into()) // 64 PM1a_CNT_BLK
        .put_u32(0) // 68 PM1b_CNT_BLK: none
        .put_u32(0) // 72 PM2_CNT_BLK: none
        .put_u32(PM_TIMER_PORT.into()) // 76 PM_TMR_BLK
        .put_u32(0) // 80 GPE0_BLK: none (no general-purpose events)
        .put_u32(0) // 84 GPE1_BLK: none
        .put_u8(PM1_EVENT_LEN) // 88 PM1_EVT_LEN
        .put_u8(PM1_CONTROL_LEN) // 89 PM1_CNT_LEN
        .put_u8(0) // 90 PM2_CNT_LEN
        .put_u8(PM_TIMER_LEN) // 91 PM_TMR_LEN
        .put_bytes(&[0; 4]) // 92 GPE0_BLK_LEN, GPE1_BLK_LEN, GPE1_BASE, CST_CNT
        .put_u16(101) // 96 P_LVL2_LAT > 100: no C2
        .put_u16(1001) // 98 P_LVL3_LAT > 1000: no C3
        .put_u32(0) // 100 FLUSH_SIZE, FLUSH_STRIDE
        .put_bytes(&[0; 5]) // 104 DUTY_OFFSET, DUTY_WIDTH, DAY_ALRM, MON_ALRM, CENTURY
        .put_u16(IAPC_BOOT_ARCH) // 109
        .put_u8(0) // 111 reserved
        .put_u32(FADT_FLAGS) // 112
        .put_bytes(&io_register(RESET_PORT, 1, ACCESS_BYTE)) // 116 RESET_REG
        .put_u8(RESET_VALUE) // 128
        .put_u16(0) // 129 ARM_BOOT_ARCH
        .put_u8(0) // 131 minor version: 6.0
        .put_u64(0) // 132 X_FIRMWARE_CTRL
        .put_u64(dsdt) // 140 X_DSDT
        .put_bytes(&io_register(PM1A_EVENT_PORT, PM1_EVENT_LEN, ACCESS_WORD)) // 148 X_PM1a_EVT_BLK
        .put_bytes(&[0; 12]) // 160 X_PM1b_EVT_BLK
        .put_bytes(&io_register(
            PM1A_CONTROL_PORT,
            PM1_CONTROL_LEN,
            ACCESS_WORD,
        )) // 172 X_PM1a_CNT_BLK
        .put_bytes(&[0; 24]) // 184 X_PM1b_CNT_BLK, X_PM2_CNT_BLK
        .put_bytes(&io_register(PM_TIMER_PORT, PM_TIMER_LEN, ACCESS_DWORD)) // 208 X_PM_TMR_BLK
        .put_bytes(&[0; 12 * 4]) // 220 X_GPE0_BLK, X_GPE1_BLK, SLEEP_CONTROL, SLEEP_STATUS
        .put_bytes(b"AXVM\0\0\0\0"); // 268 hypervisor vendor identity
    debug_assert_eq!(table.len(), FADT_LEN);
    finish_sdt(table)
}

/// A generic address structure naming `len` bytes of I/O space at `port`, read `access`
/// (an access size code) at a time. The bit width is the block's whole length, as ACPICA
/// checks it against the legacy length field.
fn io_register(port: u16, len: u8, access: u8) -> [u8; 12] {
    let mut gas = Vec::with_capacity(12);
    gas.put_u8(1) // address space: system I/O
        .put_u8(len * 8) // register width in bits
        .put_u8(0) // bit offset
        .put_u8(access)
        .put_u64(port.into());
    gas.try_into()
        .expect("a generic address structure is 12 bytes")
}

#[cfg(test)]
mod tests {
    use super::super::tests::{le, sum};
    use super::*;

    /// (legacy address offset, length offset, generic address offset, port, length) of each
    /// PM register block.
    const BLOCKS: [(usize, usize, usize, u16, u8); 3] = [
        (56, 88, 148, PM1A_EVENT_PORT, PM1_EVENT_LEN),
        (64, 89, 172, PM1A_CONTROL_PORT, PM1_CONTROL_LEN),
        (76, 91, 208, PM_TIMER_PORT, PM_TIMER_LEN),
    ];

    #[test]
    fn the_pm_blocks_are_named_in_both_forms_and_agree() {
        let fadt = fadt(0xe_0040, 0xe_0080);
        assert_eq!((fadt.len(), fadt[8], sum(&fadt)), (FADT_LEN, 6, 0));
        for (legacy, length, generic, port, len) in BLOCKS {
            assert_eq!(le::<4>(&fadt, legacy), u64::from(port), "{port:#x}");
            assert_eq!(fadt[length], len, "{port:#x}");
            let gas = &fadt[generic..generic + 12];
            assert_eq!((gas[0], gas[1], gas[2]), (1, len * 8, 0), "{port:#x}");
            assert_eq!(le::<8>(gas, 4), u64::from(port), "{port:#x}");
        }
        assert_eq!((fadt[92], le::<4>(&fadt, 80)), (0, 0), "no GPE0 block");
    }

    #[test]
    fn acpi_mode_is_fixed_and_the_timer_is_32_bits() {
        let fadt = fadt(0xe_0040, 0xe_0080);
        assert_eq!(le::<4>(&fadt, 48), 0, "SMI_CMD");
        assert_eq!(le::<2>(&fadt, 46), u64::from(SCI_IRQ), "SCI_INT");
        let flags = le::<4>(&fadt, 112);
        assert_ne!(flags & 1 << 8, 0, "TMR_VAL_EXT");
        assert_eq!(flags & 1 << 20, 0, "not HW_REDUCED_ACPI");
    }

    #[test]
    fn legacy_devices_are_declared_but_no_8042() {
        let fadt = fadt(0xe_0040, 0xe_0080);
        assert_eq!(le::<2>(&fadt, 109) & 0b11, 0b01);
    }
}
