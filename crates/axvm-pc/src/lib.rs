//! The parts of axvm's PC platform that need nothing from the host they run on, so that
//! every axvm host gives guests the same ones: the KVM host (`axvm-kvm`) and the bare-metal
//! SVM hypervisor (`hypervisor/`) both use these, and a guest sees the same ports, MSRs and
//! boot tables under either. The crate is `no_std` (with `alloc`) and uses only the core.
//!
//! Devices, one file each behind the core's
//! [`BaseDeviceOps`](axvm::device::BaseDeviceOps) (`devices/`):
//! - [`ExitPort`]: port 0xf4, where a guest writes its exit status (QEMU's `isa-debug-exit`).
//! - [`IdentMsrs`]: MSRs 0x4158_564d/e, which identify axvm and give a scratch register.
//! - [`PciHost`]: PCI configuration mechanism #1 with an i440FX host bridge.
//! - [`LocalApics`] (0xfee00000), [`IoApic`] (0xfec00000), [`Pit`] (ports 0x40-0x43 and
//!   0x61) and [`SilentPics`] (the 8259 ports, masked): the interrupt controllers and timer
//!   for a host without in-kernel ones (the SVM hypervisor; KVM has its own), each driven
//!   by the host through a small trait ([`ApicHost`], [`Clock`]).
//! - [`PortAccess`]: drives a device by port number, as the device manager would, for
//!   tests and fuzzing.
//!
//! Loading images:
//! - [`elf`]: ELF32/ELF64 headers, loadable segments and the PVH note, bounds-checked;
//! - [`load`]: segments checked against the config's RAM, then copied (bss zeroed);
//! - [`direct`]: axvm's direct starts (ELF64 in long mode, raw code in real mode);
//! - [`boot_tables`]: the GDT and identity page tables a 64-bit guest starts with, at the
//!   same guest-physical addresses on every host;
//! - [`vcpu_boot`]: the mode and registers each vCPU starts with, whichever backend.
//!
//! ```
//! use axvm::AccessWidth;
//! use axvm_pc::{PciHost, PortAccess};
//!
//! let pci = PciHost::default();
//! pci.write_port(0xcf8, AccessWidth::Dword, 0x8000_0000).unwrap();
//! assert_eq!(pci.read_port(0xcfc, AccessWidth::Dword).unwrap(), 0x1237_8086);
//! ```

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod boot_tables;
pub mod devices;
pub mod direct;
pub mod elf;
pub mod load;
pub mod vcpu_boot;

pub use devices::ioapic::{IoApic, IOAPIC_BASE, IOAPIC_PINS};
pub use devices::lapic::{ApicHost, Destination, LocalApics, LAPIC_BASE};
pub use devices::pic::SilentPics;
pub use devices::pit::{Clock, Pit};
pub use devices::{
    exit_status, ExitPort, IdentMsrs, PciHost, PortAccess, AXVM_SIGNATURE, EXIT_PORT, IDENT_MSR,
    SATURATED_STATUS, SCRATCH_MSR,
};
