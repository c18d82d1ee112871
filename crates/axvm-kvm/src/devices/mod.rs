//! The PC platform devices axvm's KVM host provides to every VM, one per file.

mod exit_port;
mod i8042;
mod ident_msr;
mod pci_host;
mod serial;

use std::io::Write;
use std::sync::Arc;

use axvm::device::{AxVmDevices, UnclaimedAccessPolicy};

pub use exit_port::{ExitPort, EXIT_PORT};
pub use i8042::I8042;
pub use ident_msr::{IdentMsrs, AXVM_SIGNATURE, IDENT_MSR, SCRATCH_MSR};
pub use pci_host::PciHost;
pub use serial::{SerialConsole, COM1_BASE};

/// The platform devices: COM1 writing to `console`, the exit device, the i8042 reset line,
/// the PCI configuration ports and the identification MSRs.
pub fn platform_devices(
    console: Box<dyn Write + Send>,
    policy: UnclaimedAccessPolicy,
) -> AxVmDevices {
    let mut devices = AxVmDevices::new(policy);
    let platform: [Arc<dyn axvm::device::BaseDeviceOps>; 5] = [
        Arc::new(SerialConsole::new(console)),
        Arc::new(ExitPort),
        Arc::new(I8042::default()),
        Arc::new(PciHost::default()),
        Arc::new(IdentMsrs::default()),
    ];
    for device in platform {
        // The platform's own ranges are disjoint by construction.
        if let Err(err) = devices.add(device) {
            unreachable!("platform devices overlap: {err}");
        }
    }
    devices
}
