//! The KVM `ioctl`s each kind of thread may issue, per architecture: the ioctl numbers and
//! the vCPU's calls differ between the x86 PC host and the arm64 virt host.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
pub(in crate::sandbox) use aarch64::{
    console_input_ioctls, timer_ioctls, vcpu_ioctls, watcher_ioctls,
};
#[cfg(target_arch = "x86_64")]
pub(in crate::sandbox) use x86_64::{
    console_input_ioctls, timer_ioctls, vcpu_ioctls, watcher_ioctls,
};
