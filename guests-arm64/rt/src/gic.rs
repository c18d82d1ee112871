//! The GICv3 set-up a guest needs to take private interrupts (PPIs) on its
//! vCPU: the distributor (affinity routing, group 1 on), this vCPU's
//! redistributor (awake; the PPI in group 1, enabled, with a priority) and the
//! CPU interface's system registers (SRE, PMR, IGRPEN1).
//!
//! Addresses are the arm64 contract's (QEMU virt's too).

use crate::mmio::{read32, read64, write32, write8};

/// The distributor's base.
pub const GICD_BASE: usize = 0x0800_0000;
/// The first redistributor's base; each takes [`GICR_STRIDE`] bytes.
pub const GICR_BASE: usize = 0x080A_0000;
/// Size of one redistributor (RD_base and SGI_base frames).
pub const GICR_STRIDE: usize = 0x2_0000;
/// INTIDs from here are special (1023: no pending interrupt).
const FIRST_SPECIAL_INTID: u32 = 1020;
/// Redistributors searched for this vCPU's at most (the contract's maximum).
const MAX_REDISTRIBUTORS: usize = 123;

const GICD_CTLR: usize = GICD_BASE;
/// GICD_CTLR.RWP: a write is still taking effect.
const GICD_CTLR_RWP: u32 = 1 << 31;
/// GICD_CTLR bits: ARE (ARE_NS in the non-secure view), EnableGrp1 (Grp1A).
const GICD_CTLR_ARE_GRP1: u32 = (1 << 4) | (1 << 1);

const GICR_TYPER: usize = 0x8;
/// GICR_TYPER.Last: the last redistributor of the range.
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_WAKER: usize = 0x14;
const WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// The SGI/PPI frame follows RD_base.
const SGI_FRAME: usize = 0x1_0000;
const GICR_IGROUPR0: usize = SGI_FRAME + 0x80;
const GICR_ISENABLER0: usize = SGI_FRAME + 0x100;
const GICR_IPRIORITYR: usize = SGI_FRAME + 0x400;

/// Why the GIC could not be set up.
#[derive(Debug)]
pub enum GicError {
    /// No redistributor's GICR_TYPER names this vCPU's affinity.
    NoRedistributor {
        /// This vCPU's MPIDR affinity (Aff3..Aff0 as in GICR_TYPER).
        affinity: u32,
    },
}

/// This vCPU's affinity in GICR_TYPER's form: Aff3.Aff2.Aff1.Aff0.
fn my_affinity() -> u32 {
    let mpidr: u64;
    // SAFETY: reading MPIDR_EL1 has no side effect.
    unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) mpidr, options(nomem, nostack)) };
    ((mpidr & 0xff_ffff) | ((mpidr >> 8) & 0xff00_0000)) as u32
}

/// The redistributor whose GICR_TYPER affinity is this vCPU's.
fn my_redistributor() -> Result<usize, GicError> {
    let affinity = my_affinity();
    for i in 0..MAX_REDISTRIBUTORS {
        let rd = GICR_BASE + i * GICR_STRIDE;
        // SAFETY: GICR_TYPER of a redistributor frame, read-only.
        let typer = unsafe { read64(rd + GICR_TYPER) };
        if (typer >> 32) as u32 == affinity {
            return Ok(rd);
        }
        if typer & GICR_TYPER_LAST != 0 {
            break;
        }
    }
    Err(GicError::NoRedistributor { affinity })
}

/// Sets up the distributor, this vCPU's redistributor and CPU interface, and
/// enables the private interrupt `ppi` (INTID 16..32) in group 1.
pub fn init_for_ppi(ppi: u32) -> Result<(), GicError> {
    let rd = my_redistributor()?;
    // SAFETY: the GICv3 registers of the contract's layout, written as the
    // architecture specifies for this set-up.
    unsafe {
        write32(GICD_CTLR, GICD_CTLR_ARE_GRP1);
        while read32(GICD_CTLR) & GICD_CTLR_RWP != 0 {}
        let waker = read32(rd + GICR_WAKER);
        write32(rd + GICR_WAKER, waker & !WAKER_PROCESSOR_SLEEP);
        while read32(rd + GICR_WAKER) & WAKER_CHILDREN_ASLEEP != 0 {}
        let groups = read32(rd + GICR_IGROUPR0);
        write32(rd + GICR_IGROUPR0, groups | 1 << ppi);
        write8(rd + GICR_IPRIORITYR + ppi as usize, 0xa0);
        write32(rd + GICR_ISENABLER0, 1 << ppi);
        init_cpu_interface();
    }
    Ok(())
}

/// ICC_SRE_EL1.SRE (system register access), a priority mask letting every
/// priority through, no group-priority split, group 1 on.
///
/// # Safety
/// Changes how this vCPU takes interrupts.
unsafe fn init_cpu_interface() {
    // SAFETY: the caller accepts the effect; the encodings are ICC_SRE_EL1, ICC_PMR_EL1,
    // ICC_BPR1_EL1 and ICC_IGRPEN1_EL1.
    unsafe {
        core::arch::asm!(
            "mrs {t}, S3_0_C12_C12_5",
            "orr {t}, {t}, #1",
            "msr S3_0_C12_C12_5, {t}",
            "isb",
            "mov {t}, #0xff",
            "msr S3_0_C4_C6_0, {t}",
            "msr S3_0_C12_C12_3, xzr",
            "mov {t}, #1",
            "msr S3_0_C12_C12_7, {t}",
            "isb",
            t = out(reg) _,
            options(nostack),
        );
    }
}

/// Acknowledges the pending interrupt (ICC_IAR1_EL1), runs `handler` with its
/// INTID, and ends it (ICC_EOIR1_EL1). Called by the vector table.
pub(crate) fn handle_irq(handler: Option<fn(u32)>) {
    let intid: u64;
    // SAFETY: reading ICC_IAR1_EL1 acknowledges the interrupt, which is what this is for.
    unsafe { core::arch::asm!("mrs {}, S3_0_C12_C12_0", out(reg) intid, options(nostack)) };
    let intid = (intid & 0xff_ffff) as u32;
    if intid >= FIRST_SPECIAL_INTID {
        return;
    }
    if let Some(handler) = handler {
        handler(intid);
    }
    // SAFETY: ending the interrupt acknowledged above.
    unsafe {
        core::arch::asm!("msr S3_0_C12_C12_1, {}", in(reg) u64::from(intid), options(nostack))
    };
}

/// Unmasks IRQs on this vCPU (PSTATE.I).
pub fn enable_irqs() {
    // SAFETY: the vector table is installed by the entry stub.
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack)) };
}

/// Masks IRQs on this vCPU.
pub fn disable_irqs() {
    // SAFETY: masking interrupts is always safe.
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack)) };
}
