//! The arm64 "virt" board every axvm arm64 host gives its guests, `#![no_std]` + `alloc`,
//! depending on the core only: the guest-physical layout ([`layout`]), the device tree a
//! guest gets when its config names none ([`fdt`]), the devices that need nothing from a
//! host ([`pl011::Pl011`], the console UART, and [`exit_device::ExitDevice`]), and where a
//! kernel, initrd and device tree go in RAM ([`image::plan`]), which pass-through rows the
//! board serves itself ([`pass_through`]), and a data abort's syndrome decoded for a host
//! that takes guest aborts itself ([`syndrome`]). It is pure data code, so it
//! builds and is unit-tested on x86_64 as well; the host (`axvm-kvm-arm64`) creates the vCPUs
//! and the in-kernel GIC at these addresses and copies the planned bytes.
//!
//! # The board
//!
//! The layout mirrors QEMU's `-M virt` where it has the same device:
//!
//! | what | base | size | interrupt |
//! |---|---|---|---|
//! | GIC distributor (v2 and v3) | 0x0800_0000 | 0x1_0000 | |
//! | GICv2 CPU interface | 0x0801_0000 | 0x1_0000 | |
//! | GICv3 redistributors (0x2_0000 per vCPU) | 0x080A_0000 | 0x2_0000 × vCPUs (max 123 vCPUs: up to 0x0900_0000) | |
//! | PL011 UART (console) | 0x0900_0000 | 0x1000 | SPI 1 (INTID 33), level-high |
//! | axvm exit device | 0x0910_0000 | 0x1000 | |
//! | (reserved for virtio-mmio later) | 0x0a00_0000 | | |
//! | device window: RAM must not overlap | 0x0800_0000 .. 0x4000_0000 | | |
//! | RAM | from the config's `memory_regions` (QEMU virt: 0x4000_0000; axvisor: 0x4000_0000 or 0x8000_0000) | | |
//!
//! The architected timer's PPIs are INTIDs 29 (secure physical), 30 (non-secure physical),
//! 27 (virtual) and 26 (hypervisor). PSCI 0.2 is called through HVC (the generated tree
//! can say 1.0 too, [`fdt::FdtSpec::psci_1_0`], for a host that offers it).
//!
//! # How a vCPU starts
//!
//! As the Linux arm64 boot protocol says, for every image format: EL1h, MMU and caches
//! off, DAIF masked; PC = the entry [`image::plan`] gives; x0 = the device tree's
//! guest-physical address ([`image::LoadPlan::dtb_gpa`]); x1..x3 = 0. Secondary vCPUs
//! start powered off and come up by PSCI `CPU_ON`; vCPU *i*'s MPIDR is
//! [`layout::vcpu_mpidr`]`(i)`.
//!
//! # Stopping
//!
//! A guest stops the VM by writing its status at offset 0 of the exit device (0 = success),
//! or by PSCI `SYSTEM_OFF` (status 0).
//!
//! A host's boot sequence, with a generated device tree (sized first, since it names the
//! initrd the plan places):
//!
//! ```
//! use axvm_virt::fdt::{generate_fdt, FdtSpec};
//! use axvm_virt::{image, layout, GicVersion};
//!
//! let config = axvm::AxVMConfig::builder("linux")
//!     .ram(0x4000_0000, 0x1000_0000)
//!     .kernel_at(0x4020_0000)
//!     .build()
//!     .unwrap();
//! layout::check_ram(&config).unwrap();
//! let kernel = vec![0u8; 0x1000]; // a raw image: no header
//! let initrd = vec![0u8; 0x800];
//! let mut spec = FdtSpec {
//!     vcpus: 1,
//!     ram: vec![(0x4000_0000, 0x1000_0000)],
//!     gic: GicVersion::V3,
//!     bootargs: Some("console=ttyAMA0".into()),
//!     initrd: Some((0, 0)), // any addresses: the length is the same
//!     psci_1_0: false,
//! };
//! let dtb_len = generate_fdt(&spec).unwrap().len();
//! let plan = image::plan(&config, &kernel, Some(initrd.len()), dtb_len).unwrap();
//! spec.initrd = plan.initrd;
//! let dtb = generate_fdt(&spec).unwrap();
//! assert_eq!(dtb.len(), dtb_len);
//! assert_eq!(plan.entry, 0x4020_0000);
//! assert_eq!(plan.initrd, Some((0x4020_1000, 0x4020_1800)));
//! // The host now copies kernel segments, initrd and tree, and starts vCPU 0 at
//! // `plan.entry` with x0 = `plan.dtb_gpa`.
//! ```

#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod exit_device;
pub mod fdt;
pub mod image;
pub mod layout;
pub mod pass_through;
pub mod pl011;
pub mod syndrome;

pub use exit_device::ExitDevice;
pub use pl011::Pl011;

/// Which generic interrupt controller the host gives the guest. The device tree and the
/// layout differ: a GICv3 has a redistributor per vCPU, a GICv2 a CPU interface (and at
/// most 8 CPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GicVersion {
    /// GICv2: distributor and CPU interface.
    V2,
    /// GICv3: distributor and redistributors.
    V3,
}
