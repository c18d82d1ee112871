//! `AxVM::shutdown` from another thread stops a running VM whatever its guest does: a vCPU
//! spinning in guest code (`jmp $`) and a vCPU halted waiting for an interrupt (`sti; hlt`,
//! which with KVM's in-kernel irqchip blocks inside the kernel) are both kicked out, and
//! `run()` returns `VmOutcome::Stopped`; so does a `StopHandle`'s `stop()`, from any thread
//! and even before the run. A VM whose every vCPU halted with interrupts off
//! (`cli; hlt`) can never run again: axvm stops it by itself as `VmOutcome::AllHalted`.
//! To notice that without kicking running vCPUs, axvm reads whether each vCPU blocks in the
//! kernel (`BlockingProbe`): true for a halted vCPU, never for a spinning one.

mod common;

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::testing::BlockingProbe;
use axvm_kvm::{KvmVm, VmOutcome};
use common::guests::{EXIT_42, HALT, SPIN, WAIT_FOR_INTERRUPT};
use common::{create, options, raw_config, require_kvm, wait_until_booted, Console, DEADLINE};

/// How long the guest runs before the host stops it.
const RUN_FOR: Duration = Duration::from_millis(200);

/// Runs `guest`, which never ends by itself, and stops it from this thread after
/// [`RUN_FOR`]; returns the outcome. Fails if the VM ends before it is stopped, or does not
/// stop within [`DEADLINE`] of the shutdown.
fn run_then_shutdown(guest: &[u8]) -> VmOutcome {
    run_then_shutdown_watching(guest, |_| (), |_| {})
}

/// [`run_then_shutdown`], calling `prepare` with the VM before it runs and `watch` with
/// what `prepare` returned while it runs, before it is stopped.
fn run_then_shutdown_watching<T>(
    guest: &[u8],
    prepare: impl FnOnce(&KvmVm) -> T,
    watch: impl FnOnce(T),
) -> VmOutcome {
    let console = Console::default();
    let vm = Arc::new(create(
        raw_config(),
        guest,
        options(&console, UnclaimedAccessPolicy::Error),
    ));
    let prepared = prepare(&vm);
    let (done, ended) = mpsc::channel();
    let runner = Arc::clone(&vm);
    thread::spawn(move || {
        let _ = done.send(runner.run());
    });
    wait_until_booted(&vm, &ended);
    if let Ok(result) = ended.recv_timeout(RUN_FOR) {
        panic!("the VM ended by itself before the shutdown: {result:?}");
    }
    watch(prepared);
    vm.vm().shutdown();
    match ended.recv_timeout(DEADLINE) {
        Ok(result) => result.unwrap_or_else(|err| panic!("the VM failed: {err}")),
        Err(_) => panic!("run() did not return within {DEADLINE:?} of shutdown()"),
    }
}

fn shutdown_stops_a_guest_waiting_for_interrupts() {
    require_kvm();
    assert_eq!(run_then_shutdown(WAIT_FOR_INTERRUPT), VmOutcome::Stopped);
}

fn a_vm_halted_with_interrupts_off_is_stopped_and_reported() {
    require_kvm();
    let (outcome, _) = common::boot_raw(HALT);
    assert_eq!(outcome, VmOutcome::AllHalted);
}

fn shutdown_stops_a_spinning_guest() {
    require_kvm();
    assert_eq!(run_then_shutdown(SPIN), VmOutcome::Stopped);
}

/// A `StopHandle` moved to another thread ends a `run()` on this one; the handle needs no
/// `Arc` around the VM.
fn a_stop_handle_stops_a_spinning_guest_from_another_thread() {
    require_kvm();
    let console = Console::default();
    let vm = create(
        raw_config(),
        SPIN,
        options(&console, UnclaimedAccessPolicy::Error),
    );
    let handle = vm.stop_handle();
    let (go, stop_now) = mpsc::channel::<()>();
    let stopper = thread::spawn(move || {
        if stop_now.recv().is_ok() {
            handle.stop();
        }
    });
    let outcome = thread::scope(|scope| {
        let (done, ended) = mpsc::channel();
        let vm = &vm;
        scope.spawn(move || done.send(vm.run()));
        wait_until_booted(vm, &ended);
        if let Ok(result) = ended.recv_timeout(RUN_FOR) {
            panic!("the VM ended by itself before the stop: {result:?}");
        }
        go.send(()).expect("the stopper thread waits");
        ended.recv_timeout(DEADLINE).unwrap_or_else(|_| {
            vm.vm().shutdown();
            panic!("run() did not return within {DEADLINE:?} of stop()");
        })
    });
    stopper.join().expect("the stopper thread ends");
    assert_eq!(outcome.expect("the VM runs"), VmOutcome::Stopped);
}

/// A stop that comes before `run()` makes it return at once, without running the guest
/// (which would otherwise exit with 42).
fn a_stop_before_run_ends_the_run_at_once() {
    require_kvm();
    let console = Console::default();
    let vm = create(
        raw_config(),
        EXIT_42,
        options(&console, UnclaimedAccessPolicy::Error),
    );
    let handle = vm.stop_handle();
    handle.clone().stop();
    assert!(handle.stop_requested());
    assert_eq!(vm.run().expect("the VM runs"), VmOutcome::Stopped);
}

/// Opens vCPU 0's probe; only before the vCPU runs (a running vCPU is locked).
fn probe(vm: &KvmVm) -> BlockingProbe {
    vm.vm()
        .try_inspect_vcpu(0, |vcpu| BlockingProbe::open(vcpu.fd()))
        .expect("vCPU 0 exists")
        .expect("vCPU 0 is not running yet")
        .unwrap_or_else(|why| panic!("this KVM cannot say whether a vCPU blocks: {why}"))
}

/// How many of 20 readings, 10 ms apart, say that vCPU 0 of `guest` blocks in the kernel.
fn blocking_readings(guest: &[u8]) -> usize {
    let mut readings = 0;
    let outcome = run_then_shutdown_watching(guest, probe, |probe| {
        for _ in 0..20 {
            if probe.is_blocking().expect("the statistic reads") {
                readings += 1;
            }
            thread::sleep(Duration::from_millis(10));
        }
    });
    assert_eq!(outcome, VmOutcome::Stopped);
    readings
}

fn a_halted_vcpu_is_seen_blocking_and_a_spinning_one_never() {
    require_kvm();
    assert!(blocking_readings(WAIT_FOR_INTERRUPT) > 0);
    assert_eq!(blocking_readings(SPIN), 0);
}

axvm_test_harness::main!(
    shutdown_stops_a_guest_waiting_for_interrupts,
    a_vm_halted_with_interrupts_off_is_stopped_and_reported,
    shutdown_stops_a_spinning_guest,
    a_stop_handle_stops_a_spinning_guest_from_another_thread,
    a_stop_before_run_ends_the_run_at_once,
    a_halted_vcpu_is_seen_blocking_and_a_spinning_one_never,
);
