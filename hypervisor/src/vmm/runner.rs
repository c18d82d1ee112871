//! Running the VM: vCPU *i* on physical CPU *i* (the BSP runs vCPU 0), each in the core's
//! exit loop ([`AxVM::run_vcpu`]), until the guest stops the VM or a vCPU cannot go on.
//!
//! What the core returns is handled as `axvm run` on KVM handles it: the guest's exit
//! status ends the run; a halted vCPU waits for an interrupt ([`super::irq`]); a triple
//! fault, an exit no one handles, or every vCPU halted with interrupts off is a failure, reported with the vCPU's registers and instruction and
//! ending the run with [`VM_FAILED`].

use alloc::string::String;
use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axvm::{AxVCpuExitReason as Exit, AxVM, VMStatus};

use super::exit_timing::ExitTiming;
use super::irq::VmInterrupts;
use super::{SvmHal, VM_FAILED};
use crate::{apic, cpu, hv_println, smp};

/// RFLAGS.IF.
const RFLAGS_IF: u64 = 1 << 9;

/// The running VM, for the APs' entry, which takes only a CPU number.
static VM: spin::Once<Arc<AxVM<SvmHal>>> = spin::Once::new();
/// Its interrupt controllers and timers.
static IRQ: spin::Once<Arc<VmInterrupts>> = spin::Once::new();
/// vCPUs whose loop has ended.
static FINISHED: AtomicUsize = AtomicUsize::new(0);
/// vCPUs that only another vCPU could wake: halted with interrupts off, or waiting for a
/// start-up IPI.
static STUCK: AtomicUsize = AtomicUsize::new(0);
/// Whether the run failed (reported already).
static FAILED: AtomicBool = AtomicBool::new(false);

/// Runs `vm` to its end on this CPU (vCPU 0) and the APs, with `irq` delivering its
/// interrupts, then prints `timing`'s exit figures; returns the status QEMU should exit
/// with.
pub fn run(vm: Arc<AxVM<SvmHal>>, timing: &ExitTiming, irq: Arc<VmInterrupts>) -> u8 {
    let vcpus = vm.vcpu_num();
    // Mailboxes open before any vCPU runs: vCPU 0 may send a start-up IPI before an AP's
    // loop begins.
    for id in 0..vcpus {
        if waits_for_sipi(&vm, id) {
            irq.await_startup(id);
        }
    }
    IRQ.call_once(|| irq);
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

fn irq() -> &'static VmInterrupts {
    IRQ.get()
        .expect("runner::run sets the interrupts before any vCPU runs")
}

/// Runs vCPU `id` until the VM stops; counts it finished. A vCPU that waits for
/// INIT-SIPI-SIPI (an AP of a boot protocol or the BIOS start) first waits for its start-up
/// IPI.
fn run_vcpu(vm: &AxVM<SvmHal>, id: usize) {
    cpu::enable_interrupts();
    if !waits_for_sipi(vm, id) || wait_for_startup(vm, id) {
        while let Some(()) = step(vm, id) {}
    }
    cpu::disable_interrupts();
    apic::arm_timer(None);
    FINISHED.fetch_add(1, Ordering::AcqRel);
}

/// Whether vCPU `id` waits for INIT-SIPI-SIPI.
fn waits_for_sipi(vm: &AxVM<SvmHal>, id: usize) -> bool {
    vm.try_inspect_vcpu(id, |vcpu| vcpu.is_waiting_for_sipi())
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// Waits until vCPU `id` gets a start-up IPI and starts it there; `false` when the VM
/// stopped first.
fn wait_for_startup(vm: &AxVM<SvmHal>, id: usize) -> bool {
    if stuck(
        vm,
        id,
        "waits for a start-up IPI, and every other vCPU is halted with interrupts off",
    ) {
        return false;
    }
    loop {
        cpu::disable_interrupts();
        if vm.status() != VMStatus::Running {
            return false;
        }
        if irq().startup_pending(id) {
            STUCK.fetch_sub(1, Ordering::SeqCst);
            if let Some(vector) = irq().take_startup(id) {
                let started = vm.try_inspect_vcpu(id, |vcpu| vcpu.start_at_sipi(vector));
                cpu::enable_interrupts();
                if matches!(started, Ok(Some(()))) {
                    return true;
                }
                let why = alloc::format!(
                    "vCPU {id} got a start-up IPI but could not be started (its state is in use)"
                );
                fail(vm, &why, None);
                return false;
            }
        }
        cpu::wait_for_interrupt();
    }
}

/// One return of the exit loop; `None` when this vCPU is done.
fn step(vm: &AxVM<SvmHal>, id: usize) -> Option<()> {
    let _ = vm.try_inspect_vcpu(id, |vcpu| irq().before_entry(id, vcpu));
    match vm.run_vcpu(id) {
        // A host interrupt (a kick, a timer) or a stop request: go on while the VM runs.
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

/// A halted vCPU waits for an interrupt to take (its APIC's, a due timer's, or one queued
/// already), in `hlt` with the host timer armed for its next deadline. Halted with
/// interrupts off, only the VM's end releases it; when every vCPU is in that state (or
/// waits for a start-up IPI), nothing ever will, and the VM is stopped as a failure, as
/// the KVM host does.
fn wait_while_halted(vm: &AxVM<SvmHal>, id: usize) -> Option<()> {
    let (interrupts_on, queued) = vm
        .try_inspect_vcpu(id, |vcpu| {
            (
                vcpu.vmcb().save.rflags & RFLAGS_IF != 0,
                vcpu.pending_interrupt().is_some(),
            )
        })
        .ok()
        .flatten()
        .unwrap_or((false, false));
    if !interrupts_on {
        if stuck(
            vm,
            id,
            "halted with interrupts off, as every vCPU has, and nothing can wake them",
        ) {
            return None;
        }
        while vm.status() == VMStatus::Running {
            cpu::wait_for_interrupt();
        }
        cpu::enable_interrupts();
        return None;
    }
    if queued {
        return Some(());
    }
    loop {
        cpu::disable_interrupts();
        if vm.status() != VMStatus::Running {
            cpu::enable_interrupts();
            return None;
        }
        if irq().wakes(id) {
            cpu::enable_interrupts();
            return Some(());
        }
        irq().arm_for_halt(id);
        cpu::wait_for_interrupt();
    }
}

/// Counts vCPU `id` as one only another vCPU can wake; when it is the last, fails the run
/// (`why`) and returns `true`.
fn stuck(vm: &AxVM<SvmHal>, id: usize, why: &str) -> bool {
    let count = STUCK.fetch_add(1, Ordering::SeqCst) + 1;
    if count == vm.vcpu_num() && !irq().any_startup_pending() {
        fail(vm, &alloc::format!("vCPU {id} {why}"), Some(id));
        return true;
    }
    false
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
