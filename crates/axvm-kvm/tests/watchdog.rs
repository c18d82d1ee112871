//! The watchdog (`DiagnosticsOptions::watchdog`): each test provokes one failure class of the
//! troubleshooting guide with a broken guest or config, and checks that axvm stops the VM
//! soon after the timeout with a report naming the cause; and that a guest that keeps
//! printing is left alone.

mod common;

use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use axvm::device::UnclaimedAccessPolicy;
use axvm::AxVMConfig;
use axvm_kvm::{DiagnosticsOptions, Error, KvmVm, VmOptions, VmOutcome};
use common::guests::SPIN;
use common::{built, create, options, raw_builder, raw_config, require_kvm, Console};

/// The watchdog timeout of these tests.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long after the timeout the VM must have stopped: two snapshot rounds and a stop
/// take well under a second; the rest is slack for a loaded CI host.
const STOP_WITHIN: Duration = Duration::from_secs(6);

/// Polls a port no device claims:
/// ```text
///     mov dx, 0x3e5
/// 1:  in al, dx
///     jmp 1b
/// ```
const PORT_POLL: &[u8] = &[0xba, 0xe5, 0x03, 0xec, 0xeb, 0xfd];

/// Polls MMIO 0xa0010, below 1 MiB but past the end of RAM (0x80000) and of any device:
/// ```text
///     mov ax, 0xa000
///     mov ds, ax
/// 1:  mov al, [0x10]
///     jmp 1b
/// ```
const MMIO_POLL: &[u8] = &[0xb8, 0x00, 0xa0, 0x8e, 0xd8, 0xa0, 0x10, 0x00, 0xeb, 0xfb];

/// Prints a dot to COM1 about every thousand instructions, forever:
/// ```text
///     mov dx, 0x3f8
/// 1:  mov al, '.'
///     out dx, al
///     mov cx, 0x400
/// 2:  loop 2b
///     jmp 1b
/// ```
const PRINT_FOREVER: &[u8] = &[
    0xba, 0xf8, 0x03, 0xb0, 0x2e, 0xee, 0xb9, 0x00, 0x04, 0xe2, 0xfe, 0xeb, 0xf6,
];

fn watched_options(console: &Console) -> VmOptions {
    VmOptions {
        diagnostics: DiagnosticsOptions {
            watchdog: Some(TIMEOUT),
            ..Default::default()
        },
        ..options(console, UnclaimedAccessPolicy::Ignore)
    }
}

/// Runs `image` under `config` with the watchdog on; fails unless the watchdog stops it
/// within [`STOP_WITHIN`] of its timeout. Returns the report.
fn stopped_by_watchdog(config: AxVMConfig, image: &[u8]) -> String {
    let console = Console::default();
    let vm = Arc::new(create(config, image, watched_options(&console)));
    let start = Instant::now();
    let result = run_for(&vm, TIMEOUT + STOP_WITHIN);
    let elapsed = start.elapsed();
    let report = vm.watchdog_report();
    let outcome = match result {
        Some(Ok(outcome)) => outcome,
        other => panic!("the VM did not stop in time or failed: {other:?}; report {report:?}"),
    };
    assert_eq!(outcome, VmOutcome::NoProgress, "report {report:?}");
    assert!(
        elapsed >= TIMEOUT,
        "stopped after {elapsed:?}, before the timeout"
    );
    let report = report.expect("a watchdog stop leaves a report");
    eprintln!("stopped after {elapsed:?}:\n{report}");
    report
}

/// Runs `vm` on another thread for at most `limit`; `None` (after shutting it down) if it
/// was still running then.
fn run_for(vm: &Arc<KvmVm>, limit: Duration) -> Option<Result<VmOutcome, Error>> {
    let (done, ended) = mpsc::channel();
    let runner = Arc::clone(vm);
    thread::spawn(move || {
        let _ = done.send(runner.run());
    });
    match ended.recv_timeout(limit) {
        Ok(result) => Some(result),
        Err(_) => {
            vm.vm().shutdown();
            let after = ended.recv_timeout(Duration::from_secs(5));
            assert!(after.is_ok(), "run() did not return after shutdown()");
            None
        }
    }
}

fn assert_names(report: &str, words: &str) {
    assert!(
        report.contains(words),
        "the report should say `{words}`:\n{report}"
    );
}

/// A VM boot hang: the entry point is below the image, in RAM nothing was loaded into. The
/// zeros run as `add [bx+si], al` up to the image, which here spins.
fn entry_point_in_empty_ram_is_a_boot_hang() {
    require_kvm();
    let config = built(raw_builder(0x10_0000).entry(0x7c00));
    let report = stopped_by_watchdog(config, SPIN);
    assert_names(
        &report,
        "entry point 0x7c00 holds zeros: no image was loaded there",
    );
    assert_names(&report, "loaded at 0x8000");
}

/// A vCPU spinning in place makes no exits at all; two RIP samples show where.
fn spin_without_exits_is_named_with_its_address() {
    require_kvm();
    let report = stopped_by_watchdog(raw_config(), SPIN);
    assert_names(
        &report,
        "vCPU 0 spins at RIP 0x8000 (jmp short 8000h) without exits",
    );
    assert_names(&report, "jmp");
}

/// A device I/O stall: the guest polls a port no device claims. Exits, but no progress.
fn polling_an_absent_port_is_a_device_stall() {
    require_kvm();
    let report = stopped_by_watchdog(raw_config(), PORT_POLL);
    assert_names(&report, "guest polls port 0x3e5, where no device is");
    // The repeating exit, at the `in` (0x8003); the vCPU itself, kicked after the read
    // completed, stands at the `jmp` back to it.
    assert_names(&report, "port 0x3e5 read (unclaimed) at RIP 0x8003");
    assert_names(&report, "jmp short 8003h");
}

/// The same stall on MMIO: RAM ends at 0x80000 and nothing is at 0xa0000.
fn polling_absent_mmio_is_a_device_stall() {
    require_kvm();
    let config = built(raw_builder(0x8_0000));
    let report = stopped_by_watchdog(config, MMIO_POLL);
    assert_names(&report, "guest polls MMIO 0xa0010, where no device is");
}

/// Console output is progress: a guest printing all the time outlives the watchdog.
fn a_guest_that_keeps_printing_is_not_stopped() {
    require_kvm();
    let console = Console::default();
    let vm = Arc::new(create(
        raw_config(),
        PRINT_FOREVER,
        watched_options(&console),
    ));
    let result = run_for(&vm, 3 * TIMEOUT);
    assert!(
        result.is_none(),
        "the VM stopped by itself: {result:?}; report {:?}",
        vm.watchdog_report()
    );
    assert!(vm.watchdog_report().is_none());
    assert!(
        console.text().len() > 10,
        "the guest printed {:?}",
        console.text()
    );
}

/// Off by default, and then it costs nothing: no observer is installed.
fn without_the_watchdog_no_observer_is_installed() {
    require_kvm();
    let console = Console::default();
    let vm = create(
        raw_config(),
        SPIN,
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    assert!(vm.diagnostics().is_none());
    assert!(vm.watchdog_report().is_none());
}

axvm_test_harness::main!(
    entry_point_in_empty_ram_is_a_boot_hang,
    spin_without_exits_is_named_with_its_address,
    polling_an_absent_port_is_a_device_stall,
    polling_absent_mmio_is_a_device_stall,
    a_guest_that_keeps_printing_is_not_stopped,
    without_the_watchdog_no_observer_is_installed,
);
