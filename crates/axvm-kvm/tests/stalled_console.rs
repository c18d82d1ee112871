//! A console whose writer takes nothing (a pipe nobody reads): the guest feels it as a real
//! UART's back-pressure, never as a blocked vCPU, so its exit, a stop and the watchdog all
//! end the run, with the guest's own status.

mod common;

use std::io::Write;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::{DiagnosticsOptions, KvmVm, VmOptions, VmOutcome};
use common::{create, raw_config, require_kvm};

/// How long a run may take here before the test calls it hung: longer than the suite's
/// usual deadline, since the floods below cost ~80k port exits, ~100 µs each on a nested
/// KVM (the kvm_amd harness).
const STALLED_DEADLINE: Duration = Duration::from_secs(90);

/// Prints 80 KiB to port 0xe9 (more than the console buffer and the write in flight
/// hold), then exits with status 7. `rep outsb` makes few exits (KVM hands over a page of
/// string I/O at a time), so this is quick even on a nested KVM whose exits cost a hundred
/// microseconds:
/// ```text
///     mov dx, 0xe9
///     mov bx, 5
/// 1:  mov si, 0
///     mov cx, 0x4000
///     rep outsb          ; 16 KiB of whatever is at DS:0
///     dec bx
///     jnz 1b
///     mov al, 7
///     out 0xf4, al
///     jmp $
/// ```
const FLOOD_DEBUGCON_THEN_EXIT_7: &[u8] = &[
    0xba, 0xe9, 0x00, 0xbb, 0x05, 0x00, 0xbe, 0x00, 0x00, 0xb9, 0x00, 0x40, 0xf3, 0x6e, 0x4b, 0x75,
    0xf5, 0xb0, 0x07, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// The same to COM1's data register, ignoring its line status, then exits with status 9.
const FLOOD_COM1_THEN_EXIT_9: &[u8] = &[
    0xba, 0xf8, 0x03, 0xbb, 0x05, 0x00, 0xbe, 0x00, 0x00, 0xb9, 0x00, 0x40, 0xf3, 0x6e, 0x4b, 0x75,
    0xf5, 0xb0, 0x09, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// Prints 60 KiB through COM1 with `rep outsb` (at most the console buffer, so the guest
/// gets there without dropping anything), then 'y' to COM1 forever as a polling driver
/// does, waiting for "transmitter holding register empty" (LSR bit 5) before each byte:
/// ```text
///     mov dx, 0x3f8
///     mov bx, 15
/// 1:  mov si, 0
///     mov cx, 0x1000
///     rep outsb
///     dec bx
///     jnz 1b
/// 2:  mov dx, 0x3fd
/// 3:  in al, dx
///     test al, 0x20
///     jz 3b
///     mov dx, 0x3f8
///     mov al, 'y'
///     out dx, al
///     jmp 2b
/// ```
const POLITE_COM1_FOREVER: &[u8] = &[
    0xba, 0xf8, 0x03, 0xbb, 0x0f, 0x00, 0xbe, 0x00, 0x00, 0xb9, 0x00, 0x10, 0xf3, 0x6e, 0x4b, 0x75,
    0xf5, 0xba, 0xfd, 0x03, 0xec, 0xa8, 0x20, 0x74, 0xfb, 0xba, 0xf8, 0x03, 0xb0, 0x79, 0xee, 0xeb,
    0xf0,
];

/// A writer that takes nothing: each write blocks until the test drops the other end, then
/// fails. Tells `started` when the first write begins.
struct NeverTakes {
    release: Receiver<()>,
    started: Mutex<Option<Sender<()>>>,
}

impl Write for NeverTakes {
    fn write(&mut self, _buf: &[u8]) -> std::io::Result<usize> {
        if let Some(started) = self.started.lock().unwrap().take() {
            let _ = started.send(());
        }
        let _ = self.release.recv();
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A console writer that takes nothing, the sender that releases it (keep it until the
/// end of the test) and the receiver told when the first write starts.
fn never_taking() -> (Box<dyn Write + Send>, Sender<()>, Receiver<()>) {
    let (release_tx, release) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    let writer = NeverTakes {
        release,
        started: Mutex::new(Some(started_tx)),
    };
    (Box::new(writer), release_tx, started)
}

/// Runs `image` (bounded by the tests' deadline) with a console that takes nothing and the
/// watchdog at `watchdog`; returns how it ended and the watchdog's report.
fn run_stalled(image: &[u8], watchdog: Option<Duration>) -> (VmOutcome, Option<String>) {
    let (writer, release, _started) = never_taking();
    let options = VmOptions {
        console: writer,
        diagnostics: DiagnosticsOptions {
            watchdog,
            ..Default::default()
        },
        unclaimed: UnclaimedAccessPolicy::Ignore,
        ..Default::default()
    };
    let vm = Arc::new(create(raw_config(), image, options));
    let outcome = run_kept_bounded(&vm);
    let report = vm.watchdog_report();
    drop(vm);
    drop(release);
    (outcome, report)
}

/// Runs `vm` on another thread; fails the test (after shutting the VM down) if it still
/// runs after the tests' deadline, a last resort against a hang.
fn run_kept_bounded(vm: &Arc<KvmVm>) -> VmOutcome {
    let (done, ended) = mpsc::channel();
    let runner = vm.clone();
    std::thread::spawn(move || {
        let _ = done.send(runner.run());
    });
    match ended.recv_timeout(STALLED_DEADLINE) {
        Ok(result) => result.unwrap_or_else(|err| panic!("the VM failed: {err}")),
        Err(_) => {
            vm.vm().shutdown();
            panic!(
                "the VM still ran after {:?} with a console that takes nothing",
                STALLED_DEADLINE
            );
        }
    }
}

fn a_guest_flooding_port_0xe9_exits_with_its_status() {
    require_kvm();
    let (outcome, _) = run_stalled(FLOOD_DEBUGCON_THEN_EXIT_7, None);
    assert_eq!(outcome, VmOutcome::Exited(7));
}

fn a_guest_flooding_com1_regardless_of_its_status_exits_with_its_status() {
    require_kvm();
    let (outcome, _) = run_stalled(FLOOD_COM1_THEN_EXIT_9, None);
    assert_eq!(outcome, VmOutcome::Exited(9));
}

fn a_polling_guest_waits_in_the_guest_and_the_watchdog_stops_it() {
    require_kvm();
    // The guest prints until the console is full, then polls LSR forever: the same exit at
    // the same place, no output, so the watchdog fires; before, its vCPU was stuck in the
    // console write and nothing could stop it.
    let (outcome, report) = run_stalled(POLITE_COM1_FOREVER, Some(Duration::from_secs(1)));
    assert_eq!(outcome, VmOutcome::NoProgress, "report: {report:?}");
    let report = report.expect("the watchdog wrote a report");
    assert!(report.contains("0x3fd"), "{report}");
}

fn a_stop_ends_a_run_whose_console_takes_nothing() {
    require_kvm();
    let (writer, release, started) = never_taking();
    let options = VmOptions {
        console: writer,
        ..Default::default()
    };
    let vm = Arc::new(create(raw_config(), POLITE_COM1_FOREVER, options));
    let stop = vm.stop_handle();
    let stopper = std::thread::spawn(move || {
        // Once the writer is stuck, the buffer fills and the guest waits in its LSR loop.
        let _ = started.recv();
        stop.stop();
    });
    assert_eq!(run_kept_bounded(&vm), VmOutcome::Stopped);
    stopper.join().unwrap();
    drop(vm);
    drop(release);
}

axvm_test_harness::main!(
    a_guest_flooding_port_0xe9_exits_with_its_status,
    a_guest_flooding_com1_regardless_of_its_status_exits_with_its_status,
    a_polling_guest_waits_in_the_guest_and_the_watchdog_stops_it,
    a_stop_ends_a_run_whose_console_takes_nothing,
);
