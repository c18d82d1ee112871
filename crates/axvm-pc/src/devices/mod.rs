//! The host-independent PC devices, one per file.

mod exit_port;
mod ident_msr;
pub mod ioapic;
pub mod lapic;
mod pci_host;
pub mod pic;
pub mod pit;
mod port_access;

pub use exit_port::{exit_status, ExitPort, EXIT_PORT, SATURATED_STATUS};
pub use ident_msr::{IdentMsrs, AXVM_SIGNATURE, IDENT_MSR, SCRATCH_MSR};
pub use pci_host::PciHost;
pub use port_access::PortAccess;
