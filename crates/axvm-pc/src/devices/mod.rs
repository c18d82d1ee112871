//! The host-independent PC devices, one per file.

mod civil_time;
pub use civil_time::unix_time_of;
mod cmos;
mod exit_port;
mod fw_cfg;
mod ident_msr;
pub mod ioapic;
pub mod lapic;
mod pci_host;
pub mod pic;
pub mod pit;
mod port_access;

pub use cmos::{Cmos, WallClock, CMOS_DATA_PORT, CMOS_INDEX_PORT};
pub use exit_port::{exit_status, ExitPort, EXIT_PORT, SATURATED_STATUS};
pub use fw_cfg::{FwCfg, FW_CFG_DATA_PORT, FW_CFG_SELECTOR_PORT};
pub use ident_msr::{IdentMsrs, AXVM_SIGNATURE, IDENT_MSR, SCRATCH_MSR};
pub use pci_host::PciHost;
pub use port_access::PortAccess;
