//! How an x86 vCPU starts: the processor mode, the registers a boot protocol passes values
//! in, and when it starts. One type for every x86 backend, so a boot loader decides a guest's
//! initial state once and each backend (KVM's registers, an SVM VMCB) applies the same.

use alloc::format;

use axvm::{AxVM, AxVMHal, ConfigError, GuestPhysAddr};

use crate::boot_tables::write_gdt;

/// The processor mode a vCPU starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuMode {
    /// 16-bit real mode at the entry address, like a PC after reset jumping to a BIOS-style
    /// entry (how the ArceOS hypervisor starts x86 guests).
    #[default]
    Real,
    /// 32-bit protected mode, paging off, interrupts off, flat 4 GiB segments from the GDT at
    /// `gdt_base` (code 0x18, data 0x10): the Multiboot and PVH entry state.
    Protected32 {
        /// Guest-physical address of the GDT.
        gdt_base: GuestPhysAddr,
    },
    /// 64-bit long mode, paging on, interrupts off, with the page tables at
    /// `page_table_root` and the GDT at `gdt_base` (code 0x8, data 0x10).
    Long {
        /// Guest-physical address of the PML4.
        page_table_root: GuestPhysAddr,
        /// Guest-physical address of the GDT.
        gdt_base: GuestPhysAddr,
    },
}

/// Registers a boot protocol hands values in (Multiboot: EAX magic, EBX info block; PVH: EBX
/// start_info; Linux: RSI zero page). The others start at zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BootRegs {
    /// RAX.
    pub rax: u64,
    /// RBX.
    pub rbx: u64,
    /// RSI.
    pub rsi: u64,
    /// RSP.
    pub rsp: u64,
}

/// When a vCPU starts running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartPolicy {
    /// At boot, at its entry (axvm's direct start; always the case for vCPU 0).
    #[default]
    AtBoot,
    /// When another vCPU sends it INIT-SIPI-SIPI through the local APIC, as on a real PC:
    /// the entry is then the SIPI vector, and the entry set here is unused.
    WaitForSipi,
}

/// How one vCPU starts: the `SetupConfig` of every x86 backend (`axvm_kvm::KvmVCpu`,
/// `axvm_svm::SvmVCpu`), chosen by the boot loader from the image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VCpuBoot {
    /// The processor mode.
    pub mode: CpuMode,
    /// Registers with values from the boot protocol.
    pub regs: BootRegs,
    /// When it starts.
    pub start: StartPolicy,
}

/// vCPU 0's state for the 32-bit protocols (Multiboot, PVH): protected mode, paging and
/// interrupts off, flat segments from the GDT written at `gdt` (the boot layout's), and
/// `regs`. Refused, naming the memory regions, when `gdt` is not RAM.
pub fn protected32_boot<H: AxVMHal>(
    vm: &AxVM<H>,
    gdt: u64,
    regs: BootRegs,
) -> Result<VCpuBoot, ConfigError> {
    let gdt_base = write_gdt(vm, gdt).map_err(|err| {
        ConfigError::invalid(
            "kernel.memory_regions",
            format!("cannot write the GDT at {gdt:#x}, which must be RAM: {err}"),
        )
    })?;
    Ok(VCpuBoot {
        mode: CpuMode::Protected32 { gdt_base },
        regs,
        start: StartPolicy::AtBoot,
    })
}

/// How an application processor starts under the PC boot protocols: it waits for the
/// kernel's INIT-SIPI-SIPI, as on a PC, whose firmware hands over with only the BSP running.
pub const WAIT_FOR_SIPI: VCpuBoot = VCpuBoot {
    mode: CpuMode::Real,
    regs: BootRegs {
        rax: 0,
        rbx: 0,
        rsi: 0,
        rsp: 0,
    },
    start: StartPolicy::WaitForSipi,
};
