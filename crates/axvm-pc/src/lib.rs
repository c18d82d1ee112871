//! The parts of axvm's PC platform that need nothing from the host they run on, so that
//! every axvm host gives guests the same ones: the KVM host (`axvm-kvm`) and the bare-metal
//! SVM hypervisor (`hypervisor/`) both use these, and a guest sees the same ports, MSRs,
//! firmware tables and boot data under either, byte for byte. The crate is `no_std` (with
//! `alloc`), uses only the core, and touches a VM through `AxVM<H>` for any `H: AxVMHal`.
//! What it needs from a host is passed in: the wall clock ([`WallClock`] for the CMOS RTC,
//! seconds since 1970 for the BIOS Data Area); the vCPU count and RAM come from the config.
//!
//! Devices, one file each behind the core's
//! [`BaseDeviceOps`](axvm::device::BaseDeviceOps) (`devices/`):
//! - [`ExitPort`]: port 0xf4, where a guest writes its exit status (QEMU's `isa-debug-exit`).
//! - [`IdentMsrs`]: MSRs 0x4158_564d/e, which identify axvm and give a scratch register.
//! - [`PciHost`]: PCI configuration mechanism #1 with an i440FX host bridge.
//! - [`FwCfg`]: QEMU's fw_cfg (ports 0x510-0x511): CPU count, RAM size, `etc/e820`.
//! - [`Cmos`]: the CMOS RAM and RTC (ports 0x70-0x71), on the host's [`WallClock`].
//! - [`LocalApics`] (0xfee00000), [`IoApic`] (0xfec00000), [`Pit`] (ports 0x40-0x43 and
//!   0x61) and [`SilentPics`] (the 8259 ports, masked): the interrupt controllers and timer
//!   for a host without in-kernel ones (the SVM hypervisor; KVM has its own), each driven
//!   by the host through a small trait ([`ApicHost`], [`Clock`]).
//! - [`PortAccess`]: drives a device by port number, as the device manager would, for
//!   tests and fuzzing.
//!
//! The PC a kernel finds:
//! - [`layout`]: every guest-physical address, IRQ and pin of the platform;
//! - [`config_devices`]: which config rows are virtio devices, whether the VM has an HPET;
//! - [`e820`]: the memory map the boot protocols and fw_cfg pass;
//! - [`bda`]: the BIOS Data Area and EBDA, as SeaBIOS leaves them;
//! - [`acpi`] and [`mptable`]: the firmware tables in the BIOS area;
//! - [`low_memory`]: where a boot protocol's data and the tables go around the images;
//! - [`boot_info`]: the writer that fills the boot data area;
//! - [`cmdline`]: the command line the boot protocols pass.
//!
//! Loading images:
//! - [`elf`]: ELF32/ELF64 headers, loadable segments and the PVH note, bounds-checked;
//! - [`load`]: segments checked against the config's RAM, then copied (bss zeroed);
//! - [`placement`]: where the ramdisk goes, checked first;
//! - [`direct`]: axvm's direct starts (ELF64 in long mode, raw code in real mode);
//! - [`multiboot`]: the Multiboot start, one call to plan ([`multiboot::plan`]) and one to
//!   load ([`multiboot::MultibootPlan::load`]), with the BDA and firmware tables;
//! - [`boot_tables`]: the GDT and identity page tables a 64-bit guest starts with, at the
//!   same guest-physical addresses on every host;
//! - [`vcpu_boot`]: the mode and registers each vCPU starts with, whichever backend.
//!
//! Shared by every host's vCPUs:
//! - [`guest_paging`]: the walk of the guest's page tables, linear to guest-physical;
//! - [`disassemble`]: guest code as Intel-syntax text (iced-x86), for reports.
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

pub mod acpi;
pub mod bda;
pub mod boot_info;
pub mod boot_tables;
pub mod cmdline;
pub mod config_devices;
pub mod devices;
pub mod direct;
pub mod disassemble;
pub mod e820;
pub mod elf;
pub mod guest_paging;
pub mod layout;
pub mod load;
pub mod low_memory;
pub mod mptable;
pub mod multiboot;
pub mod placement;
#[cfg(test)]
mod test_config;
pub mod vcpu_boot;

pub use devices::ioapic::{IoApic, IOAPIC_BASE, IOAPIC_PINS};
pub use devices::lapic::{ApicHost, Destination, LocalApics, LAPIC_BASE};
pub use devices::pic::SilentPics;
pub use devices::pit::{Clock, Pit};
pub use devices::unix_time_of;
pub use devices::{
    exit_status, Cmos, ExitPort, FwCfg, IdentMsrs, PciHost, PortAccess, WallClock, AXVM_SIGNATURE,
    CMOS_DATA_PORT, CMOS_INDEX_PORT, EXIT_PORT, FW_CFG_DATA_PORT, FW_CFG_SELECTOR_PORT, IDENT_MSR,
    SATURATED_STATUS, SCRATCH_MSR,
};
