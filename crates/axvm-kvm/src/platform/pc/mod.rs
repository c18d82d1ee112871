//! The PC platform: an x86 machine as firmware leaves it to a kernel (low-memory boot data,
//! ACPI and MP tables in the BIOS area, the BIOS Data Area, local APICs, an IOAPIC and two
//! 8259 PICs). Its facts are `axvm-pc`'s, shared with every host; `layout` adds the KVM
//! host's own.

pub use axvm_pc::bda;
pub mod layout;
