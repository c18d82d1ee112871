//! Running the VM: vCPU *i* on physical CPU *i* (the BSP runs vCPU 0), each in the core's
//! exit loop ([`AxVM::run_vcpu`]), until the guest stops the VM or a vCPU cannot go on.
//!
//! What the core returns is handled as `axvm run` on KVM handles it: the guest's exit
//! status ends the run; a triple fault, an exit no one handles, or every vCPU halted with
//! nothing to wake it is a failure, reported with the vCPU's registers and instruction and
//! ending the run with [`VM_FAILED`].

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axvm::{AxVCpuExitReason as Exit, AxVM, VMStatus};

use super::exit_timing::ExitTiming;
use super::{SvmHal, VM_FAILED};
use crate::{cpu, hv_println, smp};

/// The running VM, for the APs' entry, which takes only a CPU number.
static VM: spin::Once<Arc<AxVM<SvmHal>>> = spin::Once::new();
/// vCPUs whose loop has ended.
static FINISHED: AtomicUsize = AtomicUsize::new(0);
/// vCPUs halted with nothing to wake them.
static HALTED: AtomicUsize = AtomicUsize::new(0);
/// Whether the run failed (reported already).
static FAILED: AtomicBool = AtomicBool::new(false);

/// Runs `vm` to its end on this CPU (vCPU 0) and the APs, then prints `timing`'s exit
/// figures; returns the status QEMU should exit with.
pub fn run(vm: Arc<AxVM<SvmHal>>, timing: &ExitTiming) -> u8 {
    let vcpus = vm.vcpu_num();
    let vm = VM.call_once(|| vm);
    smp::run_on_aps(ap_entry);
    run_vcpu(vm, 0);
    while FINISHED.load(Ordering::Acquire) < vcpus {
        core::hint::spin_loop();
    }
    timing.report();
    match (FAILED.load(Ordering::Acquire), vm.exit_status()) {
        (false, Some(status)) => status,
        (false, None) => 0,
        (true, _) => VM_FAILED,
    }
}

/// An AP's work: its vCPU, if the VM has one for it.
fn ap_entry(cpu: usize) {
    if let Some(vm) = VM.get() {
        if cpu < vm.vcpu_num() {
            run_vcpu(vm, cpu);
        }
    }
}

/// Runs vCPU `id` until the VM stops; counts it finished. A vCPU that waits for
/// INIT-SIPI-SIPI (an AP of the BIOS start) waits as a halted one does: this host has no
/// local APIC to deliver a start-up IPI yet.
fn run_vcpu(vm: &AxVM<SvmHal>, id: usize) {
    cpu::enable_interrupts();
    let waits_for_sipi = vm
        .try_inspect_vcpu(id, |vcpu| vcpu.is_waiting_for_sipi())
        .ok()
        .flatten()
        .unwrap_or(false);
    if waits_for_sipi {
        wait_while_halted(vm, id);
    } else {
        while let Some(()) = step(vm, id) {}
    }
    FINISHED.fetch_add(1, Ordering::AcqRel);
}

/// One return of the exit loop; `None` when this vCPU is done.
fn step(vm: &AxVM<SvmHal>, id: usize) -> Option<()> {
    match vm.run_vcpu(id) {
        // A host interrupt (a kick) or a stop request: go on while the VM runs.
        Ok(Exit::Interrupted) => running(vm),
        Ok(Exit::Halt) => wait_while_halted(vm, id),
        Ok(Exit::SystemDown) if vm.exit_status().is_some() => None,
        Ok(Exit::SystemDown) => fail(
            vm,
            &alloc::format!("vCPU {id} reset the machine without an exit status (a triple fault: an exception the guest could not handle)"),
            Some(id),
        ),
        Ok(other) => fail(
            vm,
            &alloc::format!("vCPU {id}: exit {other:x?} has no handler on this host"),
            Some(id),
        ),
        // The backend's errors carry the vCPU's state already (exit, instruction, registers).
        Err(err) => fail(vm, &alloc::format!("{err}"), None),
    }
}

fn running(vm: &AxVM<SvmHal>) -> Option<()> {
    (vm.status() == VMStatus::Running).then_some(())
}

/// A halted vCPU waits until the VM stops: this host delivers no interrupts yet, so nothing
/// can wake it. When every vCPU is halted, nothing ever will, and the VM is stopped as a
/// failure (KVM's host says the same: "every vCPU halted and nothing can wake them").
fn wait_while_halted(vm: &AxVM<SvmHal>, id: usize) -> Option<()> {
    let halted = HALTED.fetch_add(1, Ordering::AcqRel) + 1;
    if halted == vm.vcpu_num() {
        let why = alloc::format!("vCPU {id} halted, as every vCPU has, and nothing can wake them");
        return fail(vm, &why, Some(id));
    }
    while vm.status() == VMStatus::Running {
        cpu::wait_for_interrupt();
    }
    None
}

/// Reports why the VM failed (`why`, several lines maybe), with the state of vCPU
/// `state_of` when given, and stops the VM. Only the first failure is reported.
fn fail(vm: &AxVM<SvmHal>, why: &str, state_of: Option<usize>) -> Option<()> {
    if !FAILED.swap(true, Ordering::AcqRel) {
        let mut lines = why.lines();
        hv_println!(
            "VM `{}`: {}",
            vm.config().name,
            lines.next().unwrap_or_default()
        );
        let state = state_of.map(|id| state_report(vm, id)).unwrap_or_default();
        for line in lines.chain(state.lines()) {
            hv_println!("  {line}");
        }
    }
    vm.shutdown();
    None
}

/// vCPU `id`'s registers, exit and instruction, from the backend.
fn state_report(vm: &AxVM<SvmHal>, id: usize) -> String {
    vm.try_inspect_vcpu(id, |vcpu| {
        let mut report = vcpu.describe_state();
        if let Some(at) = vm.describe_instruction(vcpu, 3) {
            report.push('\n');
            report.push_str(&at);
        }
        report
    })
    .ok()
    .flatten()
    .unwrap_or_else(|| String::from("(the vCPU's state is not available)"))
}
