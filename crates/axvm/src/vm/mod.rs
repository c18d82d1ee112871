//! [`AxVM`]: one virtual machine, from creation to stop.

mod create;
mod describe;
mod observer;
mod run;
mod unclaimed_log;

pub use observer::{ExitDisposition, ExitEvent, ExitObserver, InstructionPointer};

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use crate::device::AxVmDevices;
use crate::memory::{release_memory, GuestMemory, GuestPod, GuestSlice};
use crate::vcpu::AxArchVCpu;
use crate::{AxVMConfig, AxVMError, AxVMHal, AxVMResult, GuestMemoryError, GuestPhysAddr};

/// Where a VM is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum VMStatus {
    /// Created: memory mapped, vCPUs made, not started.
    Created = 0,
    /// Booted: vCPUs may run.
    Running = 1,
    /// Asked to stop: vCPUs leave guest mode and do not enter it again.
    Stopping = 2,
    /// No vCPU is in guest mode, and none will be.
    Stopped = 3,
}

impl VMStatus {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Created,
            1 => Self::Running,
            2 => Self::Stopping,
            _ => Self::Stopped,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Running => "running",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for VMStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A virtual machine: guest memory, devices and vCPUs, run through a host `H`.
///
/// Create it with [`AxVM::new`], load images through the guest-memory accessors, [`boot`]
/// it, then call [`run_vcpu`] for each vCPU, usually one host thread per vCPU. [`shutdown`]
/// may be called from any thread.
///
/// [`boot`]: AxVM::boot
/// [`run_vcpu`]: AxVM::run_vcpu
/// [`shutdown`]: AxVM::shutdown
pub struct AxVM<H: AxVMHal> {
    config: AxVMConfig,
    vcpus: Vec<spin::Mutex<H::VCpu>>,
    devices: AxVmDevices,
    memory: GuestMemory,
    status: AtomicU8,
    /// vCPUs currently inside `run_vcpu`: the VM is Stopped once it is Stopping and this is 0.
    active_runners: AtomicUsize,
    exit_status: spin::Once<u8>,
    observer: spin::Once<Arc<dyn ExitObserver<H::VCpu>>>,
    /// The debug log of unclaimed accesses, one line per run.
    unclaimed_log: unclaimed_log::UnclaimedLog,
    hal: H,
}

impl<H: AxVMHal> AxVM<H> {
    /// The VM's id.
    pub fn id(&self) -> usize {
        self.config.id
    }

    /// The config it was created from.
    pub fn config(&self) -> &AxVMConfig {
        &self.config
    }

    /// The host it runs on.
    pub fn hal(&self) -> &H {
        &self.hal
    }

    /// Whether its host can run VMs: the seed's `has_hardware_support()`, asked of the host.
    pub fn has_hardware_support(&self) -> bool {
        self.hal.has_hardware_support()
    }

    /// Its guest memory.
    pub fn memory(&self) -> &GuestMemory {
        &self.memory
    }

    /// Its devices.
    pub fn devices(&self) -> &AxVmDevices {
        &self.devices
    }

    /// How many vCPUs it has.
    pub fn vcpu_num(&self) -> usize {
        self.vcpus.len()
    }

    /// Where it is in its life.
    pub fn status(&self) -> VMStatus {
        VMStatus::from_u8(self.status.load(Ordering::SeqCst))
    }

    /// The status the guest asked to exit with (exit device, reset), once it has.
    pub fn exit_status(&self) -> Option<u8> {
        self.exit_status.get().copied()
    }

    /// Reads a `T` from guest RAM at `gpa`.
    pub fn read_from_guest_of<T: GuestPod>(&self, gpa: GuestPhysAddr) -> AxVMResult<T> {
        Ok(self.memory.read_from_guest_of(gpa)?)
    }

    /// Writes `value` to guest RAM at `gpa`.
    pub fn write_to_guest_of<T: GuestPod>(&self, gpa: GuestPhysAddr, value: &T) -> AxVMResult {
        Ok(self.memory.write_to_guest_of(gpa, value)?)
    }

    /// A checked view of `len` bytes of guest RAM at `gpa`.
    pub fn translated_byte_buffer(
        &self,
        gpa: GuestPhysAddr,
        len: usize,
    ) -> Result<GuestSlice<'_>, GuestMemoryError> {
        self.memory.translated_byte_buffer(gpa, len)
    }

    /// Sets where vCPU `vcpu_id` starts, overriding the config's entry (for images whose
    /// format names the entry, such as ELF). Only before [`boot`](Self::boot).
    pub fn set_vcpu_entry(&self, vcpu_id: usize, entry: GuestPhysAddr) -> AxVMResult {
        self.expect_status(VMStatus::Created)?;
        self.with_vcpu(vcpu_id, |vcpu| vcpu.set_entry(entry))
    }

    /// Gives vCPU `vcpu_id` its backend-specific initial state. Only before
    /// [`boot`](Self::boot).
    pub fn setup_vcpu(
        &self,
        vcpu_id: usize,
        config: <H::VCpu as AxArchVCpu>::SetupConfig,
    ) -> AxVMResult {
        self.expect_status(VMStatus::Created)?;
        self.with_vcpu(vcpu_id, |vcpu| vcpu.setup(config))
    }

    /// Starts the VM: from now on [`run_vcpu`](Self::run_vcpu) enters the guest. Refused
    /// when the host cannot run VMs, or the VM was booted already.
    pub fn boot(&self) -> AxVMResult {
        if !self.hal.has_hardware_support() {
            return Err(AxVMError::host_refused(
                "boot the VM",
                "no hardware virtualization support (see `axvm check`)".into(),
            ));
        }
        self.transition(VMStatus::Created, VMStatus::Running)
    }

    /// Asks the VM to stop: every vCPU leaves guest mode soon and its `run_vcpu` returns.
    /// Callable from any thread, any number of times; never blocks.
    pub fn shutdown(&self) {
        let _ = self.transition(VMStatus::Created, VMStatus::Stopped);
        if self
            .transition(VMStatus::Running, VMStatus::Stopping)
            .is_ok()
        {
            log::debug!("VM {} stopping", self.id());
            for vcpu_id in 0..self.vcpus.len() {
                self.hal.kick_vcpu(vcpu_id);
            }
            self.stop_if_idle();
        }
    }

    /// Records the guest's exit status (the first one wins) and stops the VM.
    pub fn stop_with_status(&self, exit_status: u8) {
        self.exit_status.call_once(|| exit_status);
        self.shutdown();
    }

    /// Lets `observer` see every exit from now on (statistics, traces, a watchdog). One per
    /// VM, set before [`boot`](Self::boot); a VM without one pays one branch per exit.
    pub fn set_exit_observer(&self, observer: Arc<dyn ExitObserver<H::VCpu>>) -> AxVMResult {
        self.expect_status(VMStatus::Created)?;
        let mut installed = false;
        self.observer.call_once(|| {
            installed = true;
            observer
        });
        if installed {
            Ok(())
        } else {
            Err(AxVMError::BadStatus {
                expected: "without an exit observer",
                actual: "observed already",
            })
        }
    }

    /// Runs `inspect` on vCPU `vcpu_id` unless a thread is running it (then `None`): for
    /// diagnostics from the vCPU's own thread between `run_vcpu` calls, or after a stop.
    pub fn try_inspect_vcpu<R>(
        &self,
        vcpu_id: usize,
        inspect: impl FnOnce(&mut H::VCpu) -> R,
    ) -> AxVMResult<Option<R>> {
        self.check_vcpu_id(vcpu_id)?;
        Ok(self.vcpus[vcpu_id]
            .try_lock()
            .map(|mut vcpu| inspect(&mut vcpu)))
    }

    /// "`0x8004` (real mode): `in al, dx`": where `vcpu` executes and the instructions
    /// there (up to `count`), for messages. `None` when the backend cannot say where it is.
    pub fn describe_instruction(&self, vcpu: &mut H::VCpu, count: usize) -> Option<String> {
        let ip = vcpu.instruction_pointer()?;
        let mode = describe::mode_name(ip.bitness);
        let mut text = alloc::format!("RIP {:#x} ({mode})", ip.rip);
        match ip.physical.map(|gpa| (gpa, self.code_at(gpa))) {
            Some((_, Some(code))) => {
                match self.hal.disassemble(&code, ip.linear, ip.bitness, count) {
                    Some(assembly) => text = alloc::format!("{text}: {assembly}"),
                    None => text = alloc::format!("{text}: bytes {code:02x?}"),
                }
            }
            Some((gpa, None)) => text = alloc::format!("{text}: {gpa} is not in guest RAM"),
            None => {
                text = alloc::format!(
                "{text}: linear address {:#x} does not translate through the vCPU's page tables",
                ip.linear
            )
            }
        }
        Some(text)
    }

    /// The instructions at `vcpu`'s RIP (up to `count`), disassembled, e.g. "`in al, dx`";
    /// `None` when RIP is not in guest RAM or the backend cannot disassemble.
    pub fn disassemble_at_rip(&self, vcpu: &mut H::VCpu, count: usize) -> Option<String> {
        let ip = vcpu.instruction_pointer()?;
        let code = self.code_at(ip.physical?)?;
        self.hal.disassemble(&code, ip.linear, ip.bitness, count)
    }

    /// Up to 32 bytes of guest RAM at `gpa`, stopping at the end of its region.
    fn code_at(&self, gpa: GuestPhysAddr) -> Option<Vec<u8>> {
        let region = self.memory.region_of(gpa)?;
        let available = region.end().as_u64() - gpa.as_u64();
        let mut code = alloc::vec![0u8; available.min(32) as usize];
        self.memory.read(gpa, &mut code).ok()?;
        Some(code)
    }

    /// Delivers interrupt `vector` to each vCPU in `targets`, from any thread.
    pub fn inject_interrupt_to_vcpu(&self, targets: &[usize], vector: u8) -> AxVMResult {
        for &vcpu_id in targets {
            self.check_vcpu_id(vcpu_id)?;
            self.hal
                .inject_irq_to_vcpu(vcpu_id, vector)
                .map_err(|cause| AxVMError::VCpu {
                    vcpu: vcpu_id,
                    message: alloc::format!("cannot inject interrupt {vector:#x}: {cause}"),
                    cause: Some(alloc::boxed::Box::new(cause)),
                })?;
        }
        Ok(())
    }

    fn check_vcpu_id(&self, vcpu_id: usize) -> AxVMResult {
        if vcpu_id < self.vcpus.len() {
            Ok(())
        } else {
            Err(AxVMError::NoSuchVCpu {
                vcpu: vcpu_id,
                count: self.vcpus.len(),
            })
        }
    }

    fn with_vcpu(
        &self,
        vcpu_id: usize,
        action: impl FnOnce(&mut H::VCpu) -> Result<(), <H::VCpu as AxArchVCpu>::Error>,
    ) -> AxVMResult {
        self.check_vcpu_id(vcpu_id)?;
        action(&mut self.vcpus[vcpu_id].lock())
            .map_err(|cause| AxVMError::vcpu_failed(vcpu_id, cause))
    }

    fn expect_status(&self, expected: VMStatus) -> AxVMResult {
        let actual = self.status();
        if actual == expected {
            Ok(())
        } else {
            Err(AxVMError::BadStatus {
                expected: expected.name(),
                actual: actual.name(),
            })
        }
    }

    fn transition(&self, from: VMStatus, to: VMStatus) -> AxVMResult {
        self.status
            .compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::SeqCst)
            .map(|_| ())
            .map_err(|actual| AxVMError::BadStatus {
                expected: from.name(),
                actual: VMStatus::from_u8(actual).name(),
            })
    }

    fn stop_if_idle(&self) {
        if self.active_runners.load(Ordering::SeqCst) == 0
            && self
                .transition(VMStatus::Stopping, VMStatus::Stopped)
                .is_ok()
        {
            // No vCPU runs on: the runs they were in the middle of have ended.
            self.unclaimed_log.flush(&self.devices);
        }
    }
}

impl<H: AxVMHal> Drop for AxVM<H> {
    fn drop(&mut self) {
        for region in self.memory.regions() {
            release_memory(&self.hal, region.hva, &region.config, region.outcome);
        }
    }
}
