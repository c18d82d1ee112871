//! Exit statistics and the exit trace through `KvmVm`, with a tiny inline guest that makes
//! a known number of port writes: the counts must be exact, every trace line valid JSON
//! naming the right kind, port and RIP; and without diagnostics no observer is installed.
//! The `exitloop` guest of `axvm-guests`, the exit benchmarks' workload, is counted too.

mod common;

use std::io::Write;
use std::sync::{mpsc, Arc};
use std::thread;

use axvm::device::{DeviceSpace, UnclaimedAccessPolicy};
use axvm::{ExitEvent, ExitObserver};
use axvm_kvm::{DiagnosticsOptions, ExitTarget, KvmVCpu, KvmVm, VmOutcome};
use common::{create, options, parse_config, raw_config, require_kvm, Console, DEADLINE};

/// How many times [`SCRATCH_WRITES`] writes the scratch port.
const WRITES: u64 = 5;
/// COM1's scratch register, which the UART only stores.
const SCRATCH_PORT: u16 = 0x3ff;
/// Where [`SCRATCH_WRITES`]'s `out %al, (%dx)` is.
const OUT_RIP: u64 = 0x8008;

/// Writes 0x41 to port 0x3ff five times, then exits 0:
/// ```text
///  0: b9 05 00    mov  $5, %cx
///  3: ba ff 03    mov  $0x3ff, %dx
///  6: b0 41       mov  $0x41, %al
///  8: ee       1: out  %al, (%dx)
///  9: e2 fd       loop 1b
///  b: b0 00       mov  $0, %al
///  d: e6 f4       out  %al, $0xf4
///  f: eb fe       jmp  .
/// ```
const SCRATCH_WRITES: &[u8] = &[
    0xb9, 0x05, 0x00, 0xba, 0xff, 0x03, 0xb0, 0x41, 0xee, 0xe2, 0xfd, 0xb0, 0x00, 0xe6, 0xf4, 0xeb,
    0xfe,
];

/// Reads port 0x3e5 (no device) three times, then exits 0:
/// ```text
///  0: b9 03 00    mov  $3, %cx
///  3: ba e5 03    mov  $0x3e5, %dx
///  6: ec       1: in   (%dx), %al
///  7: e2 fd       loop 1b
///  9: b0 00       mov  $0, %al
///  b: e6 f4       out  %al, $0xf4
///  d: eb fe       jmp  .
/// ```
const UNCLAIMED_READS: &[u8] = &[
    0xb9, 0x03, 0x00, 0xba, 0xe5, 0x03, 0xec, 0xe2, 0xfd, 0xb0, 0x00, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// Runs `vm` to its end on another thread (failing after [`DEADLINE`]) and gives it back,
/// so that its diagnostics can be read afterwards.
fn run_kept(vm: KvmVm) -> (Arc<KvmVm>, VmOutcome) {
    let vm = Arc::new(vm);
    let runner = Arc::clone(&vm);
    let (done, ended) = mpsc::channel();
    let thread = thread::spawn(move || done.send(runner.run().map_err(|e| e.to_string())));
    let result = ended.recv_timeout(DEADLINE).unwrap_or_else(|_| {
        vm.vm().shutdown();
        panic!("the VM still ran after {DEADLINE:?}")
    });
    let _sent = thread.join().expect("the VM thread panicked");
    let outcome = result.unwrap_or_else(|err| panic!("the VM failed: {err}"));
    (vm, outcome)
}

fn with_diagnostics(console: &Console, diagnostics: DiagnosticsOptions) -> axvm_kvm::VmOptions {
    axvm_kvm::VmOptions {
        diagnostics,
        ..options(console, UnclaimedAccessPolicy::Ignore)
    }
}

fn stats_count_every_port_write() {
    require_kvm();
    let console = Console::default();
    let diagnostics = DiagnosticsOptions {
        stats: true,
        ..Default::default()
    };
    let vm = create(
        raw_config(),
        SCRATCH_WRITES,
        with_diagnostics(&console, diagnostics),
    );
    let (vm, outcome) = run_kept(vm);
    assert_eq!(outcome, VmOutcome::Exited(0));
    let stats = vm
        .diagnostics()
        .and_then(|d| d.stats())
        .expect("stats are on");
    let count = |port: u16| {
        stats
            .tallies()
            .iter()
            .filter(|t| t.kind == "io-write" && t.target == ExitTarget::Port(port))
            .map(|t| t.count)
            .sum::<u64>()
    };
    assert_eq!(count(SCRATCH_PORT), WRITES, "{:?}", stats.tallies());
    assert_eq!(count(0xf4), 1, "{:?}", stats.tallies());
    let report = stats.report(vm.vm().devices());
    assert!(report.contains("io-write"), "{report}");
    let scratch_line = report
        .lines()
        .find(|line| line.contains("port 0x3ff"))
        .unwrap_or_else(|| panic!("no line for port 0x3ff:\n{report}"));
    assert!(scratch_line.contains("serial"), "{report}");
    assert!(
        scratch_line
            .split_whitespace()
            .any(|w| w == WRITES.to_string()),
        "{report}"
    );
    assert!(report.contains("port 0xf4: exit"), "{report}");
}

/// The `exitloop` guest with its own config makes exactly the exits every exit round-trip
/// figure divides by: 20 000 writes of port 0x3ff and one of the exit port, and exits 0.
/// The report's first line is what `scripts/svm-bench.sh` reads from `axvm run --stats`.
fn exitloop_guest_makes_20001_exits() {
    require_kvm();
    let console = Console::default();
    let diagnostics = DiagnosticsOptions {
        stats: true,
        ..Default::default()
    };
    let vm = create(
        parse_config(axvm_guests::EXITLOOP_CONFIG),
        axvm_guests::EXITLOOP,
        with_diagnostics(&console, diagnostics),
    );
    let (vm, outcome) = run_kept(vm);
    assert_eq!(outcome, VmOutcome::Exited(0));
    let stats = vm
        .diagnostics()
        .and_then(|d| d.stats())
        .expect("stats are on");
    assert_eq!(
        stats.total_exits(),
        axvm_guests::EXITLOOP_EXITS,
        "{:?}",
        stats.tallies()
    );
    let scratch_writes: u64 = stats
        .tallies()
        .iter()
        .filter(|t| t.kind == "io-write" && t.target == ExitTarget::Port(SCRATCH_PORT))
        .map(|t| t.count)
        .sum();
    assert_eq!(scratch_writes, 20_000, "{:?}", stats.tallies());
    assert!(
        stats.span_nanos() > 0,
        "no time between the first exit and the last"
    );
    let report = stats.report(vm.vm().devices());
    let first = report.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("exit statistics: 20001 exits in "),
        "scripts/svm-bench.sh cannot read this first line: {first}"
    );
    assert_eq!(console.text(), "", "the exit-loop guest prints nothing");
}

/// A trace sink the test can read after the VM is gone.
#[derive(Clone, Default)]
struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The RIP KVM reports at the scratch OUT's exit: hardware KVM (kvm_intel, kvm_amd) stops
/// at the OUT itself and completes it on the next entry; kvm_pvm has already moved past the
/// one-byte instruction.
fn reported_out_rip() -> u64 {
    if axvm_kvm::testing::is_software_nested_kvm() {
        OUT_RIP + 1
    } else {
        OUT_RIP
    }
}

fn trace_has_one_json_line_per_exit() {
    require_kvm();
    let console = Console::default();
    let sink = Shared::default();
    let diagnostics = DiagnosticsOptions {
        trace_exits: Some(Box::new(sink.clone())),
        ..Default::default()
    };
    let vm = create(
        raw_config(),
        SCRATCH_WRITES,
        with_diagnostics(&console, diagnostics),
    );
    let (vm, outcome) = run_kept(vm);
    assert_eq!(outcome, VmOutcome::Exited(0));
    // Dropping the VM must flush the trace: nothing else does here.
    drop(vm);
    let text = String::from_utf8(sink.0.lock().unwrap().clone()).expect("UTF-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(lines.len() as u64, WRITES + 1, "{text}");
    for line in &lines[..WRITES as usize] {
        assert_eq!(line["kind"], "io-write", "{line}");
        assert_eq!(line["port"], u64::from(SCRATCH_PORT), "{line}");
        assert_eq!(line["width"], 1, "{line}");
        assert_eq!(line["data"], "0x41", "{line}");
        assert_eq!(line["disposition"], "handled", "{line}");
        assert_eq!(line["vcpu"], 0, "{line}");
        assert!(line["addr"].is_null(), "{line}");
        assert_eq!(line["rip"], format!("{:#x}", reported_out_rip()), "{line}");
    }
    let last = &lines[WRITES as usize];
    assert_eq!(last["port"], 0xf4, "{last}");
    assert_eq!(last["disposition"], "returned", "{last}");
    let times: Vec<u64> = lines.iter().map(|l| l["t_ns"].as_u64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
}

fn unclaimed_reads_are_summarised_with_their_count() {
    require_kvm();
    let console = Console::default();
    let vm = create(
        raw_config(),
        UNCLAIMED_READS,
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    let (vm, outcome) = run_kept(vm);
    assert_eq!(outcome, VmOutcome::Exited(0));
    let summary = vm.unclaimed_summary().expect("a summary");
    assert!(
        summary.contains("unclaimed: 3 x 1-byte read at port 0x3e5 (nearest device: serial"),
        "{summary}"
    );
    assert_eq!(summary.lines().count(), 1, "{summary}");
    let (accesses, _) = vm.vm().devices().unclaimed_accesses();
    assert_eq!(accesses[0].space, DeviceSpace::Port);
}

/// Counts exits; installed by the test to show whether the VM already had an observer.
#[derive(Default)]
struct Counter(std::sync::atomic::AtomicU64);

impl ExitObserver<KvmVCpu> for Counter {
    fn on_exit(&self, _event: &ExitEvent, _vcpu: &mut KvmVCpu) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

fn no_diagnostics_no_observer() {
    require_kvm();
    let console = Console::default();
    let vm = create(
        raw_config(),
        SCRATCH_WRITES,
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    assert!(vm.diagnostics().is_none());
    // The VM takes one observer: that ours is accepted shows axvm installed none.
    let counter = Arc::new(Counter::default());
    vm.vm()
        .set_exit_observer(counter.clone())
        .expect("a VM without diagnostics has no exit observer");
    let (vm, outcome) = run_kept(vm);
    assert_eq!(outcome, VmOutcome::Exited(0));
    assert_eq!(
        counter.0.load(std::sync::atomic::Ordering::Relaxed),
        WRITES + 1
    );
    assert!(vm.unclaimed_summary().is_none());

    let diagnostics = DiagnosticsOptions {
        stats: true,
        ..Default::default()
    };
    let vm = create(
        raw_config(),
        SCRATCH_WRITES,
        with_diagnostics(&console, diagnostics),
    );
    assert!(vm.vm().set_exit_observer(counter).is_err());
}

axvm_test_harness::main!(
    stats_count_every_port_write,
    exitloop_guest_makes_20001_exits,
    trace_has_one_json_line_per_exit,
    unclaimed_reads_are_summarised_with_their_count,
    no_diagnostics_no_observer,
);
