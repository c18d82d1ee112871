//! The exit loop: run a vCPU, handle the exits that are device or memory accesses, return
//! the rest.

use core::sync::atomic::Ordering;

use super::{AxVM, ExitDisposition, ExitEvent, VMStatus};
use crate::device::{AccessKind, DeviceSpace, UnclaimedAccessPolicy, WriteOutcome};
use crate::vcpu::{AxArchVCpu, AxVCpuExitReason};
use crate::{AccessWidth, AxVMError, AxVMHal, AxVMResult};

/// What handling one exit decided.
enum Next {
    /// Handled: enter the guest again.
    Resume,
    /// Give this reason to `run_vcpu`'s caller.
    Return(AxVCpuExitReason),
}

/// What handling one exit did, for the loop and its observer.
struct Handling {
    next: Next,
    disposition: ExitDisposition,
    read_value: Option<u64>,
}

impl Handling {
    fn resumed(disposition: ExitDisposition, read_value: Option<u64>) -> Self {
        Self {
            next: Next::Resume,
            disposition,
            read_value,
        }
    }

    fn returned(reason: AxVCpuExitReason) -> Self {
        Self {
            next: Next::Return(reason),
            disposition: ExitDisposition::Returned,
            read_value: None,
        }
    }
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
            let exit = vcpu
                .run()
                .map_err(|cause| AxVMError::vcpu_failed(vcpu_id, cause))?;
            log::trace!("vCPU {vcpu_id} exit: {exit:x?}");
            let handling = match self.observer.get() {
                None => self.handle_exit(vcpu_id, vcpu, exit)?,
                Some(observer) => {
                    let start = self.hal.current_time_nanos();
                    let handling = self.handle_exit(vcpu_id, vcpu, exit)?;
                    let event = ExitEvent {
                        vcpu: vcpu_id,
                        exit,
                        disposition: handling.disposition,
                        read_value: handling.read_value,
                        time_nanos: start,
                        handling_nanos: self.hal.current_time_nanos().saturating_sub(start),
                    };
                    observer.on_exit(&event, vcpu);
                    handling
                }
            };
            if let Next::Return(reason) = handling.next {
                return Ok(reason);
            }
        }
    }

    fn handle_exit(
        &self,
        vcpu_id: usize,
        vcpu: &mut H::VCpu,
        exit: AxVCpuExitReason,
    ) -> AxVMResult<Handling> {
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
                    Handling::resumed(ExitDisposition::Handled, None)
                } else {
                    Handling::returned(exit)
                });
            }
            other => return Ok(Handling::returned(other)),
        };
        let access = Access {
            vcpu_id,
            space,
            addr,
            width,
        };
        match write {
            None => {
                let (value, disposition) = self.device_read(vcpu, access)?;
                vcpu.set_read_result(value)
                    .map_err(|cause| AxVMError::vcpu_failed(vcpu_id, cause))?;
                Ok(Handling::resumed(disposition, Some(value)))
            }
            Some(value) => match self.device_write(vcpu, access, value)? {
                (WriteOutcome::Done, disposition) => Ok(Handling::resumed(disposition, None)),
                (WriteOutcome::StopVm { exit_status }, _) => {
                    log::info!("vCPU {vcpu_id}: guest stops the VM with exit status {exit_status} ({space} {addr:#x})");
                    self.stop_with_status(exit_status);
                    Ok(Handling::returned(Exit::SystemDown))
                }
            },
        }
    }

    fn device_read(
        &self,
        vcpu: &mut H::VCpu,
        access: Access,
    ) -> AxVMResult<(u64, ExitDisposition)> {
        match self
            .devices
            .handle_read(access.space, access.addr, access.width)?
        {
            Some(value) => Ok((value, ExitDisposition::Handled)),
            None => self
                .unclaimed(vcpu, access, false)
                .map(|()| (0, ExitDisposition::Unclaimed)),
        }
    }

    fn device_write(
        &self,
        vcpu: &mut H::VCpu,
        access: Access,
        value: u64,
    ) -> AxVMResult<(WriteOutcome, ExitDisposition)> {
        match self
            .devices
            .handle_write(access.space, access.addr, access.width, value)?
        {
            Some(outcome) => Ok((outcome, ExitDisposition::Handled)),
            None => self
                .unclaimed(vcpu, access, true)
                .map(|()| (WriteOutcome::Done, ExitDisposition::Unclaimed)),
        }
    }

    /// Counts an access no device claims and applies the unclaimed-access policy: `Ok` means
    /// "read as zero / drop the write".
    ///
    /// Under `Ignore` nothing is logged but at debug level, and then once per run of
    /// adjacent addresses (see `unclaimed_log`), not as a warning: a stock kernel's boot
    /// probes absent devices (COM2-COM4, model-specific MSRs) as a matter of course, and the
    /// stop summary counts them all anyway. Without debug logging an access costs one lookup
    /// in the device manager's runs.
    fn unclaimed(&self, vcpu: &mut H::VCpu, access: Access, write: bool) -> AxVMResult {
        let new_run = self
            .devices
            .record_unclaimed(access.space, access.addr, access.width, write);
        match self.devices.policy() {
            UnclaimedAccessPolicy::Error => Err(AxVMError::UnclaimedAccess {
                vcpu: access.vcpu_id,
                access: if write { "write" } else { "read" },
                space: match access.space {
                    DeviceSpace::Port => "port",
                    DeviceSpace::Mmio => "MMIO",
                    DeviceSpace::SysReg => "MSR",
                },
                addr: access.addr,
                width: access.width,
            }),
            UnclaimedAccessPolicy::Ignore => {
                if log::log_enabled!(log::Level::Debug) {
                    let kind = AccessKind {
                        space: access.space,
                        width: access.width,
                        write,
                    };
                    self.unclaimed_log.note(
                        &self.devices,
                        access.vcpu_id,
                        (kind, access.addr),
                        new_run,
                        || self.describe_access(vcpu, access.space, access.width, write),
                    );
                }
                Ok(())
            }
        }
    }
}

/// One device access of a vCPU.
#[derive(Clone, Copy)]
struct Access {
    vcpu_id: usize,
    space: DeviceSpace,
    addr: u64,
    width: AccessWidth,
}
