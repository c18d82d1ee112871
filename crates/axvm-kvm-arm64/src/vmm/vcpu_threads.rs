//! A host thread per vCPU, each in the core's `run_vcpu` loop, and what ends them.

use std::sync::{Arc, Mutex};
use std::thread;

use axvm::{AxArchVCpu, AxVCpuExitReason, AxVM, AxVMError, VMStatus};

use axvm_linux::sandbox::{self, StartGate, ThreadRole};

use crate::error::Arm64Error;
use crate::kvm::{Arm64Hal, SystemEvent};

/// How the vCPU threads ended, together.
#[derive(Default)]
pub(super) struct Ends {
    /// The first failure, which stopped the VM.
    pub(super) error: Option<Arm64Error>,
    /// The vCPU that asked for a reset, if one did.
    pub(super) reset_by: Option<usize>,
}

/// Runs every vCPU of the booted `vm` on its own thread until the VM stops. When
/// `sandboxed`, each vCPU thread confines itself before it enters the guest, and so does the
/// calling thread once every vCPU thread is started (it can start no thread after that):
/// no guest instruction runs before every thread of the run is confined.
pub(super) fn run_all(vm: &Arc<AxVM<Arm64Hal>>, sandboxed: bool) -> Result<Ends, Arm64Error> {
    let ends = Arc::new(Mutex::new(Ends::default()));
    let gate = Arc::new(StartGate::default());
    let blocked_syscall_hook =
        std::env::var_os(sandbox::BLOCKED_SYSCALL_TEST_HOOK).is_some_and(|value| value == "1");
    let mut threads = Vec::new();
    for vcpu in 0..vm.vcpu_num() {
        let (thread_vm, thread_ends) = (Arc::clone(vm), Arc::clone(&ends));
        let thread_gate = Arc::clone(&gate);
        let spawned = thread::Builder::new()
            .name(format!("vcpu{vcpu}"))
            .spawn(move || {
                let _kickable = thread_vm.hal().register_vcpu_thread(vcpu);
                if let Err(err) = sandbox::confine_if(sandboxed, ThreadRole::Vcpu) {
                    thread_gate.wait();
                    return fail(&thread_vm, &thread_ends, err.into());
                }
                if sandboxed && blocked_syscall_hook {
                    sandbox::make_a_blocked_syscall();
                }
                if thread_gate.wait() {
                    run_one(&thread_vm, vcpu, &thread_ends);
                }
            });
        match spawned {
            Ok(handle) => threads.push(handle),
            Err(cause) => {
                vm.shutdown();
                gate.open(false);
                join(threads);
                return Err(Arm64Error::Thread { vcpu, cause });
            }
        }
    }
    let confined = sandbox::confine_if(sandboxed, ThreadRole::Supervisor);
    if confined.is_err() {
        vm.shutdown();
    }
    gate.open(confined.is_ok());
    join(threads);
    confined?;
    let mut ends = ends.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    Ok(std::mem::take(&mut *ends))
}

fn join(threads: Vec<thread::JoinHandle<()>>) {
    for handle in threads {
        // A vCPU thread does not panic on guest input; if it did, the others still stop.
        let _ = handle.join();
    }
}

/// vCPU `vcpu`'s loop: the core handles MMIO; what it returns ends the VM or is a kick.
fn run_one(vm: &Arc<AxVM<Arm64Hal>>, vcpu: usize, ends: &Mutex<Ends>) {
    loop {
        if matches!(vm.status(), VMStatus::Stopping | VMStatus::Stopped) {
            return;
        }
        let exit = match vm.run_vcpu(vcpu) {
            Ok(exit) => exit,
            Err(err) => return fail(vm, ends, Arm64Error::Vm(err)),
        };
        match exit {
            AxVCpuExitReason::Interrupted | AxVCpuExitReason::Nothing => continue,
            AxVCpuExitReason::SystemDown => return system_down(vm, vcpu, ends),
            other => {
                let pc = vm
                    .try_inspect_vcpu(vcpu, |cpu| cpu.instruction_pointer())
                    .ok()
                    .flatten()
                    .flatten()
                    .map_or_else(|| "unknown".to_string(), |ip| format!("{:#x}", ip.rip));
                let message =
                    format!("stopped on an exit the arm64 host cannot handle: {other:?} (pc {pc})");
                return fail(vm, ends, Arm64Error::Vm(AxVMError::vcpu(vcpu, message)));
            }
        }
    }
}

/// PSCI `SYSTEM_OFF` or `SYSTEM_RESET`: the VM ends with status 0 (a reset is said so). Any
/// other system event (KVM reports none other unless a capability asks it to) fails the VM,
/// naming it, rather than passing for a power-off.
fn system_down(vm: &AxVM<Arm64Hal>, vcpu: usize, ends: &Mutex<Ends>) {
    let event = vm
        .try_inspect_vcpu(vcpu, |cpu| cpu.last_event())
        .ok()
        .flatten()
        .flatten();
    match event {
        Some(SystemEvent::Reset) => {
            lock(ends).reset_by.get_or_insert(vcpu);
            log::info!("vCPU {vcpu} asked for a reset (PSCI SYSTEM_RESET); the VM stops");
        }
        Some(SystemEvent::Other(kind)) => {
            let message = format!("KVM reported system event {kind}, which axvm does not handle");
            return fail(vm, ends, Arm64Error::Vm(AxVMError::vcpu(vcpu, message)));
        }
        Some(SystemEvent::Off) | None => {
            log::info!("vCPU {vcpu} powered the VM off (PSCI SYSTEM_OFF)");
        }
    }
    vm.stop_with_status(0);
}

fn fail(vm: &AxVM<Arm64Hal>, ends: &Mutex<Ends>, err: Arm64Error) {
    let mut ends = lock(ends);
    if ends.error.is_none() {
        ends.error = Some(err);
    }
    drop(ends);
    vm.shutdown();
}

fn lock(ends: &Mutex<Ends>) -> std::sync::MutexGuard<'_, Ends> {
    ends.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
