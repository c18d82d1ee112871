//! The PC's guest-physical layout: the constants live in `axvm-pc` (`axvm_pc::layout`), which
//! every axvm host shares, and are re-exported here so the KVM host's code keeps naming
//! `platform::pc::layout`. Only what is KVM's own is written here.
//!
//! # Interrupt wiring under KVM
//!
//! KVM's default GSI routing (`kvm_setup_default_irq_routing` in the kernel's
//! `arch/x86/kvm/irq_comm.c`) connects GSI n, for n below 16, to pin n % 8 of the primary
//! (n < 8) or secondary 8259 *and* to IOAPIC pin n, and GSIs 16-23 to IOAPIC pins 16-23
//! only. So by default the in-kernel PIT's GSI 0 reaches IOAPIC pin 0. A PC wires the
//! timer to IOAPIC pin [`TIMER_IOAPIC_PIN`] instead (pin 0 carries the 8259's ExtINT
//! output), and the ACPI MADT's interrupt source override and the MP table say so; axvm
//! therefore replaces KVM's routing with the PC's (`kvm/irq_routing.rs`), which differs
//! from the default only in sending GSI 0 to pin 2 and leaving out the cascade, IRQ 2.

pub use axvm_pc::layout::*;

/// Where KVM puts the three pages of real-mode TSS it needs on Intel hosts: just below the
/// 4 GiB boundary, below the firmware area, where no guest RAM is configured.
pub const KVM_TSS_ADDRESS: u64 = 0xfffb_d000;
