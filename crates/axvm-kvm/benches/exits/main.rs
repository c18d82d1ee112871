//! # The exit benchmark: what axvm costs on top of KVM
//!
//! `cargo bench -p axvm-kvm --bench exits` prints one table:
//!
//! - **Port-I/O exit round trip.** A raw real-mode guest (`guests/exitloop`, with its loop
//!   count set to `N`) writes COM1's scratch register (port 0x3ff) `N` times in a counted
//!   loop, then writes the exit port. Through axvm,
//!   every write is a `KVM_RUN` return handled by [`AxVM::run_vcpu`]'s exit loop (exit
//!   translation, device lookup, the UART model); the reference runs the same bytes at the
//!   same address on a VM built with kvm-ioctls, whose loop only calls `KVM_RUN` and
//!   matches the exit ([`bare`]). A third side is axvm with `--stats` on: the diagnostics
//!   observer installed, counting every exit. Only the run is timed, each on a fresh VM;
//!   the sides take turns in a rotating order round by round, so host drift hits all. The
//!   ratio axvm / bare is what axvm adds per exit: near 1.0 means little; stats / axvm is
//!   what the statistics add when on.
//! - **VM lifecycle.** `KvmVm::create` + `run` (boot, one vCPU thread per vCPU) + drop, for
//!   a guest that stops at once (`mov al,0; out 0xf4,al`, 1 MiB RAM) and for the embedded
//!   demo guest (2 vCPUs, 16 MiB, long mode, its checks and console output). For
//!   reference, the same cycle of the trivial guest on a bare kvm-ioctls VM (no vCPU thread).
//!
//! - **Console throughput.** A raw real-mode guest prints `N` bytes to COM1's transmit
//!   register (`out dx, al` in a counted loop) and stops; the console is a pipe that a
//!   reader thread empties, as with `axvm run | tee log`. `KvmVm::run` is timed, from boot
//!   until it returns with every byte written to the pipe (the reader checks the count).
//!   The same loop writing COM1's scratch register (the same exits, nothing printed) runs
//!   in alternation; the difference per byte is what printing a byte costs. Both run with
//!   `--stats` on, whose mean handling time of the port writes is axvm's own time per byte
//!   on the vCPU thread (where the console's write used to be). A second case prints to a
//!   slow console, a writer that takes 200 µs per write call, the cost per console byte
//!   measured on the nested-kvm_amd harness, where stdout writes are that expensive.
//!
//! The other guests' consoles go to [`std::io::sink`]. Run without `--bench` (as `cargo test
//! --all-targets` does), it makes one small round of each, as a smoke test, skipped
//! without `/dev/kvm` unless `AXVM_REQUIRE_KVM=1`. `--bench --quick` does a tenth of the
//! work, for the nested kvm_amd of `scripts/kvm-amd.sh bench`, where an exit costs tens of
//! microseconds.
//!
//! [`AxVM::run_vcpu`]: axvm::AxVM::run_vcpu

mod bare;
mod console;
mod guest;

use std::time::{Duration, Instant};

use axvm::config::toml::AxVMCrateConfig;
use axvm::{AxVCpuExitReason, AxVMConfig};
use axvm_kvm::{BootImages, DiagnosticsOptions, KvmVm, VmOptions, VmOutcome};
use kvm_ioctls::Kvm;

/// How much to measure.
struct Plan {
    /// Port writes per exit-loop run.
    outs: u16,
    /// Timed exit-loop runs per side.
    rounds: usize,
    /// Lifecycle runs of the trivial guest.
    raw_runs: usize,
    /// Lifecycle runs of the demo guest.
    demo_runs: usize,
    /// Bytes the console guest prints per run.
    console_bytes: u16,
    /// Timed console-guest runs.
    console_runs: usize,
    /// Bytes the console guest prints per run to the slow console.
    slow_console_bytes: u16,
    /// Timed runs with the slow console.
    slow_console_runs: usize,
}

const BENCH: Plan = Plan {
    outs: 20_000,
    rounds: 11,
    raw_runs: 200,
    demo_runs: 50,
    console_bytes: 32 * 1024,
    console_runs: 7,
    slow_console_bytes: 4 * 1024,
    slow_console_runs: 3,
};

/// `--bench --quick`: a tenth of the work, for hosts where each exit costs tens of
/// microseconds (the nested kvm_amd of `scripts/kvm-amd.sh bench`); the same measures.
const QUICK: Plan = Plan {
    outs: 2_000,
    rounds: 5,
    raw_runs: 20,
    demo_runs: 5,
    console_bytes: 4 * 1024,
    console_runs: 3,
    slow_console_bytes: 512,
    slow_console_runs: 1,
};

const SMOKE: Plan = Plan {
    outs: 100,
    rounds: 1,
    raw_runs: 2,
    demo_runs: 1,
    console_bytes: 64,
    console_runs: 1,
    slow_console_bytes: 16,
    slow_console_runs: 1,
};

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let quick = std::env::args().any(|arg| arg == "--quick");
    let plan = match (bench, quick) {
        (true, false) => BENCH,
        (true, true) => QUICK,
        (false, _) => SMOKE,
    };
    // Like the tests: without KVM the smoke run skips, unless AXVM_REQUIRE_KVM=1.
    let required = bench || std::env::var("AXVM_REQUIRE_KVM").as_deref() == Ok("1");
    let kvm = match Kvm::new() {
        Ok(kvm) => kvm,
        Err(err) if !required => return eprintln!("exits: skipped, no /dev/kvm ({err})"),
        Err(err) => panic!("the benchmark needs /dev/kvm: {err}"),
    };

    // Other work on the host's CPUs skews every figure; the load average before the runs
    // shows whether there was some.
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<_> = load.split_whitespace().take(3).collect();
    let exits = u64::from(plan.outs) + 1;
    let image = guest::loop_guest(plan.outs);
    // Warm-up: one untimed run of each side (page cache, allocator, CPU frequency).
    axvm_exit_loop(&image, exits, false);
    axvm_exit_loop(&image, exits, true);
    bare_exit_loop(&kvm, &image, exits);
    let (mut axvm, mut bare, mut stats) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ratios, mut stats_ratios) = (Vec::new(), Vec::new());
    for round in 0..plan.rounds {
        // [axvm, bare, stats], each round starting one further along.
        let mut times = [Duration::ZERO; 3];
        for turn in 0..3 {
            let side = (round + turn) % 3;
            times[side] = match side {
                0 => axvm_exit_loop(&image, exits, false),
                1 => bare_exit_loop(&kvm, &image, exits),
                _ => axvm_exit_loop(&image, exits, true),
            };
        }
        let [a, b, s] = times;
        axvm.push(per_exit_ns(a, exits));
        bare.push(per_exit_ns(b, exits));
        stats.push(per_exit_ns(s, exits));
        ratios.push(a.as_secs_f64() / b.as_secs_f64());
        stats_ratios.push(s.as_secs_f64() / a.as_secs_f64());
    }

    let raw = BootImages {
        kernel: guest::EXIT_GUEST.to_vec(),
        ..Default::default()
    };
    let raw_ns = lifecycle(&guest::raw_config(), &raw, plan.raw_runs);
    let bare_raw_ns = timed_runs(plan.raw_runs, || {
        assert_eq!(bare::BareVm::new(&kvm, &raw.kernel).run_to_exit_port(), 1);
    });
    let demo_config = AxVMCrateConfig::from_toml(axvm_guests::DEMO_CONFIG)
        .and_then(AxVMCrateConfig::into_vm_config)
        .expect("the demo config parses");
    let demo = BootImages {
        kernel: axvm_guests::DEMO.to_vec(),
        ..Default::default()
    };
    let demo_ns = lifecycle(&demo_config, &demo, plan.demo_runs);
    let console = console::throughput(plan.console_bytes, plan.console_runs);
    let slow = console::slow_console(plan.slow_console_bytes, plan.slow_console_runs);

    println!();
    if !bench {
        println!("smoke run (no --bench): the figures mean nothing");
    }
    println!("exit: {exits} exits per run, axvm, bare and axvm --stats rotating; lifecycle: create+run+drop");
    println!("host load average before the runs: {}", load.join(" "));
    println!(
        "{:<30} {:>5} {:>10} {:>10} {:>10} {:>10}",
        "measure", "runs", "median", "p90", "min", "max"
    );
    let diffs = axvm.iter().zip(&bare).map(|(a, b)| a - b).collect();
    let stats_diffs = stats.iter().zip(&axvm).map(|(s, a)| s - a).collect();
    row("exit, axvm run_vcpu", axvm, fmt_ns);
    row("exit, bare KVM_RUN loop", bare, fmt_ns);
    row("exit, axvm --stats", stats, fmt_ns);
    row("exit, axvm - bare", diffs, fmt_ns);
    row("exit, axvm / bare", ratios, |r| format!("{r:.3}"));
    row("exit, stats - axvm", stats_diffs, fmt_ns);
    row("exit, stats / axvm", stats_ratios, |r| format!("{r:.3}"));
    row("lifecycle, trivial, axvm", raw_ns, fmt_ns);
    row("lifecycle, trivial, bare KVM", bare_raw_ns, fmt_ns);
    row("lifecycle, demo (2 vCPUs)", demo_ns, fmt_ns);
    let console_name = format!("console, per byte ({} B)", plan.console_bytes);
    row(&console_name, console.printing, fmt_ns);
    row("console, scratch-port loop", console.scratch, fmt_ns);
    row("console - scratch, per byte", console.cost, fmt_ns);
    row(
        "console, axvm handling/byte",
        console.printing_handling,
        fmt_ns,
    );
    row(
        "scratch, axvm handling/exit",
        console.scratch_handling,
        fmt_ns,
    );
    let slow_name = format!("slow console, per byte ({} B)", plan.slow_console_bytes);
    row(&slow_name, slow.printing, fmt_ns);
    row(
        "slow console, handling/byte",
        slow.printing_handling,
        fmt_ns,
    );
}

/// A fresh axvm VM running the loop guest: times [`axvm::AxVM::run_vcpu`] from the first
/// guest entry until it returns on the exit-port write. The call also applies the boot
/// registers (five ioctls, untimed on the bare side): a few ns per exit at 20 001 exits.
/// With `stats`, the VM counts every exit as `axvm run --stats` does (checked after).
fn axvm_exit_loop(image: &[u8], exits: u64, stats: bool) -> Duration {
    let images = BootImages {
        kernel: image.to_vec(),
        ..Default::default()
    };
    let options = VmOptions {
        diagnostics: DiagnosticsOptions {
            stats,
            ..Default::default()
        },
        ..quiet()
    };
    let kvm_vm = KvmVm::create(guest::raw_config(), &images, options).expect("KvmVm::create");
    let vm = kvm_vm.vm();
    vm.boot().expect("boot");
    let _thread = vm.hal().enter_vcpu_thread(0);
    let start = Instant::now();
    let reason = vm.run_vcpu(0);
    let elapsed = start.elapsed();
    assert!(
        matches!(reason, Ok(AxVCpuExitReason::SystemDown)) && vm.exit_status() == Some(0),
        "the loop guest did not stop through the exit port: {reason:?}"
    );
    let counted = kvm_vm.diagnostics().and_then(|d| d.stats());
    assert_eq!(counted.is_some(), stats);
    if let Some(counted) = counted {
        assert_eq!(counted.total_exits(), exits, "the statistics missed exits");
    }
    elapsed
}

/// A fresh bare KVM VM running the loop guest: times the `KVM_RUN` loop, and checks the
/// guest made `exits` exits.
fn bare_exit_loop(kvm: &Kvm, image: &[u8], exits: u64) -> Duration {
    let mut vm = bare::BareVm::new(kvm, image);
    let start = Instant::now();
    let made = vm.run_to_exit_port();
    let elapsed = start.elapsed();
    assert_eq!(
        made, exits,
        "the loop guest made an unexpected number of exits"
    );
    elapsed
}

/// Nanoseconds of each of `runs` create → run → drop cycles of an axvm VM that must exit 0.
fn lifecycle(config: &AxVMConfig, images: &BootImages, runs: usize) -> Vec<f64> {
    timed_runs(runs, || {
        let vm = KvmVm::create(config.clone(), images, quiet()).expect("KvmVm::create");
        assert_eq!(vm.run().expect("KvmVm::run"), VmOutcome::Exited(0));
    })
}

/// Nanoseconds of each of `runs` calls of `cycle`, after one untimed warm-up call.
fn timed_runs(runs: usize, mut cycle: impl FnMut()) -> Vec<f64> {
    cycle();
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            cycle();
            start.elapsed().as_secs_f64() * 1e9
        })
        .collect()
}

/// Console to nowhere, unclaimed accesses ignored.
pub(crate) fn quiet() -> VmOptions {
    VmOptions {
        console: Box::new(std::io::sink()),
        ..Default::default()
    }
}

fn per_exit_ns(elapsed: Duration, exits: u64) -> f64 {
    elapsed.as_secs_f64() * 1e9 / exits as f64
}

/// Prints median, p90 (nearest rank), min and max of `values`.
fn row(name: &str, mut values: Vec<f64>, fmt: impl Fn(f64) -> String) {
    values.sort_by(f64::total_cmp);
    let rank = |p: f64| values[((p * values.len() as f64).ceil() as usize).max(1) - 1];
    let (median, p90) = (rank(0.5), rank(0.9));
    let (min, max) = (values[0], values[values.len() - 1]);
    println!(
        "{name:<30} {:>5} {:>10} {:>10} {:>10} {:>10}",
        values.len(),
        fmt(median),
        fmt(p90),
        fmt(min),
        fmt(max)
    );
}

/// `ns` in ns, µs or ms.
fn fmt_ns(ns: f64) -> String {
    match ns.abs() {
        x if x >= 1e6 => format!("{:.2} ms", ns / 1e6),
        x if x >= 1e3 => format!("{:.2} µs", ns / 1e3),
        _ => format!("{ns:.0} ns"),
    }
}
