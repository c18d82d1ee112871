//! # axvm-linux: the Linux plumbing both KVM hosts share
//!
//! axvm has a KVM host per architecture (`axvm-kvm` for x86 PCs, `axvm-kvm-arm64` for the
//! arm64 virt board). What they do with Linux itself, rather than with an architecture's
//! KVM, lives here once:
//!
//! - [`KickRegistry`]: getting a vCPU thread out of `KVM_RUN` by signal, with no window in
//!   which a kick is lost;
//! - [`map_guest_ram`]: host memory for guest RAM, reserved lazily and kept out of core dumps;
//! - [`BootImages`]: the images a VM boots from, as read from a config's files;
//! - [`StopHandle`]: ends a VM's run from any thread;
//! - [`diagnostics`]: exit statistics and exit traces, fed by the core's exit observer;
//! - [`sandbox`]: the seccomp filter of each kind of thread of a running VM.
//!
//! ```
//! let ram = axvm_linux::map_guest_ram(1 << 20)?;
//! assert_ne!(ram.as_u64(), 0);
//! # Ok::<(), axvm_linux::GuestRamError>(())
//! ```
#![deny(missing_docs)]

mod boot_images;
pub mod diagnostics;
mod guest_ram;
mod kick;
pub mod sandbox;
mod stop_handle;

pub use boot_images::BootImages;
pub use guest_ram::{map_guest_ram, unmap_guest_ram, GuestRamError};
pub use kick::{install_kick_handler, KickGuard, KickRegistry};
pub use stop_handle::StopHandle;
