//! The exit loop: run a vCPU, handle the exits that are device or memory accesses, return
//! the rest.

use core::sync::atomic::Ordering;

use super::{AxVM, VMStatus};
use crate::device::{DeviceSpace, UnclaimedAccessPolicy, WriteOutcome};
use crate::vcpu::{AxArchVCpu, AxVCpuExitReason};
use crate::{AccessWidth, AxVMError, AxVMHal, AxVMResult};

/// What handling one exit decided.
enum Next {
    /// Handled: enter the guest again.
    Resume,
    /// Give this reason to `run_vcpu`'s caller.
    Return(AxVCpuExitReason),
}

fn not_booted() -> AxVMError {
    AxVMError::BadStatus {
        expected: "running (call boot first)",
        actual: "created",
    }
}

/// Counts the caller as a running vCPU for as long as it lives, so that the VM knows when
/// the last one has left after a shutdown.
struct ActiveRunner<'a, H: AxVMHal>(&'a AxVM<H>);

impl<H: AxVMHal> Drop for ActiveRunner<'_, H> {
    fn drop(&mut self) {
        self.0.active_runners.fetch_sub(1, Ordering::SeqCst);
        if self.0.status() == VMStatus::Stopping {
            self.0.stop_if_idle();
        }
    }
}

impl<H: AxVMHal> AxVM<H> {
    /// Runs vCPU `vcpu_id` until an exit that the VM does not handle itself.
    ///
    /// Port I/O, MMIO and system-register accesses go to the devices, and nested page
    /// faults to guest memory; every other exit ([`Halt`], [`CpuUp`], [`Hypercall`],
    /// [`SystemDown`], ...) is returned. [`Interrupted`] is returned when the vCPU was kicked
    /// or the VM is no longer running: look at [`status`](Self::status) and call again.
    ///
    /// Errors (a backend failure, a device error, an unclaimed access under the
    /// [`Error`](UnclaimedAccessPolicy::Error) policy) name the vCPU; the VM is then
    /// stopped so that the other vCPUs do not run on alone.
    ///
    /// [`Halt`]: AxVCpuExitReason::Halt
    /// [`CpuUp`]: AxVCpuExitReason::CpuUp
    /// [`Hypercall`]: AxVCpuExitReason::Hypercall
    /// [`SystemDown`]: AxVCpuExitReason::SystemDown
    /// [`Interrupted`]: AxVCpuExitReason::Interrupted
    pub fn run_vcpu(&self, vcpu_id: usize) -> AxVMResult<AxVCpuExitReason> {
        self.check_vcpu_id(vcpu_id)?;
        // Refused here, not in the loop: a call before `boot` is the caller's mistake and
        // must not shut the VM down as the loop's errors do.
        if self.status() == VMStatus::Created {
            return Err(not_booted());
        }
        self.active_runners.fetch_add(1, Ordering::SeqCst);
        let _runner = ActiveRunner(self);
        let mut vcpu = self.vcpus[vcpu_id].lock();
        let result = self.exit_loop(vcpu_id, &mut *vcpu);
        if result.is_err() {
            self.shutdown();
        }
        result
    }

    fn exit_loop(&self, vcpu_id: usize, vcpu: &mut H::VCpu) -> AxVMResult<AxVCpuExitReason> {
        loop {
            match self.status() {
                VMStatus::Running => {}
                VMStatus::Created => return Err(not_booted()),
                VMStatus::Stopping | VMStatus::Stopped => return Ok(AxVCpuExitReason::Interrupted),
            }
            let exit = vcpu.run().map_err(|message| AxVMError::VCpu {
                vcpu: vcpu_id,
                message,
            })?;
            log::trace!("vCPU {vcpu_id} exit: {exit:x?}");
            match self.handle_exit(vcpu_id, vcpu, exit)? {
                Next::Resume => {}
                Next::Return(reason) => return Ok(reason),
            }
        }
    }

    fn handle_exit(
        &self,
        vcpu_id: usize,
        vcpu: &mut H::VCpu,
        exit: AxVCpuExitReason,
    ) -> AxVMResult<Next> {
        use AxVCpuExitReason as Exit;
        let (space, addr, width, write) = match exit {
            Exit::IoRead { port, width } => (DeviceSpace::Port, u64::from(port), width, None),
            Exit::IoWrite { port, width, data } => {
                (DeviceSpace::Port, u64::from(port), width, Some(data))
            }
            Exit::MmioRead { addr, width } => (DeviceSpace::Mmio, addr.as_u64(), width, None),
            Exit::MmioWrite { addr, width, data } => {
                (DeviceSpace::Mmio, addr.as_u64(), width, Some(data))
            }
            Exit::SysRegRead { addr } => (
                DeviceSpace::SysReg,
                u64::from(addr),
                AccessWidth::Qword,
                None,
            ),
            Exit::SysRegWrite { addr, value } => (
                DeviceSpace::SysReg,
                u64::from(addr),
                AccessWidth::Qword,
                Some(value),
            ),
            Exit::NestedPageFault { addr, access_flags } => {
                return Ok(if self.memory.handle_page_fault(addr, access_flags) {
                    Next::Resume
                } else {
                    Next::Return(exit)
                });
            }
            other => return Ok(Next::Return(other)),
        };
        match write {
            None => {
                let value = self.device_read(vcpu_id, space, addr, width)?;
                vcpu.set_read_result(value)
                    .map_err(|message| AxVMError::VCpu {
                        vcpu: vcpu_id,
                        message,
                    })?;
                Ok(Next::Resume)
            }
            Some(value) => match self.device_write(vcpu_id, space, addr, width, value)? {
                WriteOutcome::Done => Ok(Next::Resume),
                WriteOutcome::StopVm { exit_status } => {
                    log::info!("vCPU {vcpu_id}: guest stops the VM with exit status {exit_status} ({space} {addr:#x})");
                    self.stop_with_status(exit_status);
                    Ok(Next::Return(Exit::SystemDown))
                }
            },
        }
    }

    fn device_read(
        &self,
        vcpu_id: usize,
        space: DeviceSpace,
        addr: u64,
        width: AccessWidth,
    ) -> AxVMResult<u64> {
        match self.devices.handle_read(space, addr, width)? {
            Some(value) => Ok(value),
            None => self
                .unclaimed(vcpu_id, "read", space, addr, width)
                .map(|()| 0),
        }
    }

    fn device_write(
        &self,
        vcpu_id: usize,
        space: DeviceSpace,
        addr: u64,
        width: AccessWidth,
        value: u64,
    ) -> AxVMResult<WriteOutcome> {
        match self.devices.handle_write(space, addr, width, value)? {
            Some(outcome) => Ok(outcome),
            None => self
                .unclaimed(vcpu_id, "write", space, addr, width)
                .map(|()| WriteOutcome::Done),
        }
    }

    /// Applies the unclaimed-access policy: `Ok` means "read as zero / drop the write".
    fn unclaimed(
        &self,
        vcpu_id: usize,
        access: &'static str,
        space: DeviceSpace,
        addr: u64,
        width: AccessWidth,
    ) -> AxVMResult {
        let error = || AxVMError::UnclaimedAccess {
            vcpu: vcpu_id,
            access,
            space: match space {
                DeviceSpace::Port => "port",
                DeviceSpace::Mmio => "MMIO",
                DeviceSpace::SysReg => "MSR",
            },
            addr,
            width,
        };
        match self.devices.policy() {
            UnclaimedAccessPolicy::Error => Err(error()),
            UnclaimedAccessPolicy::Ignore => {
                if self.devices.first_unclaimed(space, addr) {
                    log::warn!("{}; reads as zero, writes are dropped", error());
                }
                Ok(())
            }
        }
    }
}
