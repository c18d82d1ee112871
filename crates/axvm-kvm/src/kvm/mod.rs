//! The KVM backend: one safe type per kernel object (the VM as [`KvmHal`], the vCPU as
//! [`KvmVCpu`]); nothing outside this module issues a KVM ioctl.

mod cpuid;
mod debug;
mod debug_probe;
mod exit_ring;
mod hal;
mod halt_probe;
mod internal_error;
mod irq_lines;
mod irq_routing;
mod limits;
mod pass_through;
mod regs;
mod system;
mod vcpu;

pub use debug::{DebugStop, GuestDebug, VcpuRegisters};
pub use debug_probe::DebugSupport;
pub use exit_ring::{RecentExit, RECENT_EXITS};
pub use hal::{KvmHal, VCpuThreadGuard};
pub use halt_probe::BlockingProbe;
pub(crate) use limits::region_refusal;
pub use limits::{HostLimits, MAX_SLOT_BYTES};
pub use pass_through::{emulated_hpet, has_in_kernel_irqchip, pass_through_plan};
pub use regs::{BootRegs, CpuMode, StartPolicy, VCpuBoot};
pub use system::{check_host, is_software_nested_kvm, HostFinding, HostReport};
pub use vcpu::KvmVCpu;
