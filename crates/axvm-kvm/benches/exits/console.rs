//! The console measure: a guest printing to COM1, through `KvmVm::run`, with the console a
//! pipe (and a model of a slow one), against the same loop on COM1's scratch register.

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axvm_kvm::{BootImages, DiagnosticsOptions, ExitTarget, KvmVm, VmOptions, VmOutcome};

use crate::{guest, quiet};

/// The console measure: per byte, in nanoseconds, one value per run of each.
pub struct ConsoleFigures {
    /// `KvmVm::run` of the printing guest.
    pub printing: Vec<f64>,
    /// `KvmVm::run` of the same loop on the scratch port.
    pub scratch: Vec<f64>,
    /// printing - scratch, run by run: what printing a byte costs in all.
    pub cost: Vec<f64>,
    /// axvm's handling time of a COM1 transmit exit (`--stats`' mean), on the vCPU thread.
    pub printing_handling: Vec<f64>,
    /// The same for a scratch-register exit.
    pub scratch_handling: Vec<f64>,
}

/// Runs the console guest printing `bytes` bytes to COM1 and the same loop writing COM1's
/// scratch register instead (the same exits, no console output), alternating run by run
/// after one warm-up each, `runs` times each; the console is a pipe for both, and exit
/// statistics are on (both sides pay them) to get axvm's handling time per exit.
pub fn throughput(bytes: u16, runs: usize) -> ConsoleFigures {
    let image = |kernel| BootImages {
        kernel,
        ..Default::default()
    };
    let sides = [
        (
            image(guest::console_guest(bytes)),
            guest::COM1_DATA_PORT,
            usize::from(bytes),
        ),
        (image(guest::loop_guest(bytes)), guest::SCRATCH_PORT, 0),
    ];
    let per_byte = |side: usize| {
        let (images, port, expected) = &sides[side];
        let (elapsed, handling) = console_run(images, *port, *expected);
        (elapsed.as_secs_f64() * 1e9 / f64::from(bytes), handling)
    };
    per_byte(0);
    per_byte(1);
    let mut figures = ConsoleFigures {
        printing: Vec::new(),
        scratch: Vec::new(),
        cost: Vec::new(),
        printing_handling: Vec::new(),
        scratch_handling: Vec::new(),
    };
    for round in 0..runs {
        let mut times = [(0.0, 0.0); 2];
        for turn in 0..2 {
            let side = (round + turn) % 2;
            times[side] = per_byte(side);
        }
        figures.printing.push(times[0].0);
        figures.scratch.push(times[1].0);
        figures.cost.push(times[0].0 - times[1].0);
        figures.printing_handling.push(times[0].1);
        figures.scratch_handling.push(times[1].1);
    }
    figures
}

/// [`timed_run`] with the console a pipe that a reader thread empties; checks the reader got
/// `expected` bytes.
fn console_run(images: &BootImages, port: u16, expected: usize) -> (Duration, f64) {
    let (mut reader, writer) = pipe();
    let counter = std::thread::spawn(move || {
        let (mut got, mut buf) = (0, [0u8; 4096]);
        loop {
            match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) | Err(_) => break got,
                Ok(n) => got += n,
            }
        }
    });
    // The VM, dropped inside, closes the pipe's write end: the reader sees the end.
    let figures = timed_run(images, port, Box::new(writer));
    let got = counter.join().expect("the pipe reader");
    assert_eq!(got, expected, "the console lost or invented bytes");
    figures
}

/// Times `KvmVm::run` of a raw guest with exit statistics on, printing to `console`.
/// Returns the run's time and axvm's mean handling time of the guest's writes to `port`, in
/// nanoseconds.
fn timed_run(images: &BootImages, port: u16, console: Box<dyn Write + Send>) -> (Duration, f64) {
    let options = VmOptions {
        console,
        diagnostics: DiagnosticsOptions {
            stats: true,
            ..Default::default()
        },
        ..quiet()
    };
    let vm = KvmVm::create(guest::raw_config(), images, options).expect("KvmVm::create");
    let start = Instant::now();
    let outcome = vm.run().expect("KvmVm::run");
    let elapsed = start.elapsed();
    assert_eq!(outcome, VmOutcome::Exited(0));
    let writes = vm
        .diagnostics()
        .and_then(|d| d.stats())
        .expect("stats are on")
        .tallies()
        .into_iter()
        .find(|t| t.kind == "io-write" && t.target == ExitTarget::Port(port))
        .expect("the guest's writes were counted");
    (elapsed, writes.handling_nanos as f64 / writes.count as f64)
}

/// A console whose every write call takes [`SLOW_WRITE`], and which counts the bytes.
struct SlowConsole(Arc<AtomicUsize>);

/// What one write to the slow console takes: the harness's figure per console byte.
const SLOW_WRITE: Duration = Duration::from_micros(200);

impl Write for SlowConsole {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        std::thread::sleep(SLOW_WRITE);
        self.0.fetch_add(buf.len(), Ordering::Relaxed);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `runs` runs (after one warm-up) of the console guest printing `bytes` bytes to a
/// [`SlowConsole`]: per byte, the run's time and axvm's handling time (in `printing` and
/// `printing_handling`; the other figures stay empty).
pub fn slow_console(bytes: u16, runs: usize) -> ConsoleFigures {
    let images = BootImages {
        kernel: guest::console_guest(bytes),
        ..Default::default()
    };
    let run = || {
        let written = Arc::new(AtomicUsize::new(0));
        let console = Box::new(SlowConsole(written.clone()));
        let (elapsed, handling) = timed_run(&images, guest::COM1_DATA_PORT, console);
        assert_eq!(
            written.load(Ordering::Relaxed),
            usize::from(bytes),
            "bytes lost"
        );
        (elapsed.as_secs_f64() * 1e9 / f64::from(bytes), handling)
    };
    run();
    let (printing, printing_handling) = (0..runs).map(|_| run()).unzip();
    ConsoleFigures {
        printing,
        printing_handling,
        scratch: Vec::new(),
        cost: Vec::new(),
        scratch_handling: Vec::new(),
    }
}

/// A pipe: its read end and its write end.
fn pipe() -> (std::fs::File, std::fs::File) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    let ret = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(ret, 0, "pipe2: {}", std::io::Error::last_os_error());
    // SAFETY: pipe2 just opened both descriptors, and nothing else owns them.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}
