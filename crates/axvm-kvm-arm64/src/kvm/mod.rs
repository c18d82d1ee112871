//! Everything that talks to arm64 KVM: the VM ([`Arm64Hal`]), its vCPUs ([`Arm64VCpu`]) and
//! its in-kernel interrupt controller (`gic`). Nothing outside this folder issues an ioctl.

mod disassemble;
mod gic;
mod hal;
mod regs;
mod vcpu;

pub use axvm_virt::GicVersion;
pub use hal::Arm64Hal;
pub(crate) use vcpu::SystemEvent;
pub use vcpu::{Arm64VCpu, VCpuStart};
