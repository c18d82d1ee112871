//! axvm's own output (the `check` report on stdout; reasons, status lines and reports on
//! stderr), written so that a failed write ends axvm the way Unix tools end, never with a
//! panic as `println!` gives.
//!
//! - **A closed pipe** (`axvm check | head -1`: EPIPE) ends axvm quietly, killed by SIGPIPE
//!   as `cat` or `yes` would be (Rust ignores SIGPIPE, so axvm raises it itself once it
//!   sees the error): no message, and a shell reports status 141 (128 + 13).
//! - **Any other write error** (`axvm check > /dev/full`) gives one line on stderr,
//!   `axvm: cannot write to stdout: No space left on device`, and exit status 1.
//!
//! The guest's console is not written here: its thread in the host crate reports its own
//! errors, and the guest goes on without it.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;

/// Which of axvm's streams a write failed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        })
    }
}

/// A failed write to axvm's own output.
#[derive(Debug)]
pub struct OutputError {
    stream: Stream,
    error: io::Error,
}

impl OutputError {
    /// Ends axvm as the module doc says: SIGPIPE for a closed pipe, else one line and
    /// status 1 (the line cannot be written when stderr itself failed; the status stays).
    pub fn exit(self) -> ExitCode {
        if self.error.kind() == io::ErrorKind::BrokenPipe {
            // Returns only if SIGPIPE somehow did not end the process.
            let _ = signal_hook::low_level::emulate_default_handler(libc::SIGPIPE);
            return ExitCode::from(128 + libc::SIGPIPE as u8);
        }
        if self.stream == Stream::Stdout {
            let _ = writeln!(io::stderr(), "axvm: {self}");
        }
        ExitCode::FAILURE
    }
}

impl fmt::Display for OutputError {
    /// "cannot write to stdout: No space left on device", without Rust's "(os error 28)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.error.to_string();
        let reason = match text.find(" (os error ") {
            Some(at) if text.ends_with(')') => &text[..at],
            _ => &text,
        };
        write!(f, "cannot write to {}: {reason}", self.stream)
    }
}

/// How a command fails: a reason for stderr (status 1), or axvm's own output failing.
#[derive(Debug)]
pub enum CommandError {
    /// A one-line reason, printed as `axvm: REASON`.
    Message(String),
    /// A write to stdout or stderr failed.
    Output(OutputError),
}

impl From<String> for CommandError {
    fn from(message: String) -> Self {
        Self::Message(message)
    }
}

impl From<OutputError> for CommandError {
    fn from(error: OutputError) -> Self {
        Self::Output(error)
    }
}

/// What an output function returns.
pub type Result<T = ()> = std::result::Result<T, OutputError>;

/// Writes `args` to `stream` (flushed, so a failure shows now and not at exit).
pub fn write(stream: Stream, args: fmt::Arguments<'_>) -> Result {
    let written = match stream {
        Stream::Stdout => {
            let mut out = io::stdout().lock();
            out.write_fmt(args).and_then(|()| out.flush())
        }
        Stream::Stderr => io::stderr().lock().write_fmt(args),
    };
    written.map_err(|error| OutputError { stream, error })
}

/// Ends a command: gives `result`'s exit status, or prints its reason (status 1), or ends
/// as [`OutputError::exit`] says. Stdout needs no flush here: [`write`] flushes each
/// write, and under `axvm run` stdout is the guest's console, whose errors its own thread
/// reports (the guest's exit status still counts when its console's reader went away).
pub fn finish(result: std::result::Result<ExitCode, CommandError>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(CommandError::Output(error)) => error.exit(),
        Err(CommandError::Message(message)) => {
            match write(Stream::Stderr, format_args!("axvm: {message}\n")) {
                Ok(()) => ExitCode::FAILURE,
                Err(error) => error.exit(),
            }
        }
    }
}

/// `println!` whose failure is returned ([`Result`]) instead of a panic.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write(
            $crate::output::Stream::Stdout,
            format_args!("{}\n", format_args!($($arg)*)),
        )
    };
}

/// `eprintln!` whose failure is returned ([`Result`]) instead of a panic.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write(
            $crate::output::Stream::Stderr,
            format_args!("{}\n", format_args!($($arg)*)),
        )
    };
}

/// `eprint!` whose failure is returned ([`Result`]) instead of a panic.
macro_rules! err_text {
    ($($arg:tt)*) => {
        $crate::output::write($crate::output::Stream::Stderr, format_args!($($arg)*))
    };
}

pub(crate) use {errln, outln};

/// What a VM left to say once it stopped, on stderr, whatever its host: the end of the
/// `--trace-exits` file (flushed first, so that a failing stderr cannot cost it its end), the
/// `--stats` report, and the accesses no device claimed (`unclaimed`: part of the `--stats`
/// report, otherwise an info message, since a stock kernel probes absent devices on every
/// boot; left out when the run `failed`, whose one-line reason already names the access
/// that stopped it under `--unclaimed error`).
pub fn report_after_run(
    trace: Option<&axvm_linux::diagnostics::trace::ExitTrace>,
    stats: Option<&axvm_linux::diagnostics::stats::ExitStats>,
    devices: &axvm::device::AxVmDevices,
    failed: bool,
) -> Result {
    if let Some(trace) = trace {
        if let Err(err) = trace.flush() {
            errln!("axvm: cannot write the exit trace: {err}")?;
        }
    }
    let unclaimed = axvm_linux::diagnostics::stats::unclaimed_summary(devices).filter(|_| !failed);
    if let Some(stats) = stats {
        err_text!("{}", stats.report(devices))?;
        err_text!("{}", unclaimed.unwrap_or_default())?;
    } else if let Some(summary) = unclaimed {
        for line in summary.lines() {
            log::info!("{line}");
        }
    }
    Ok(())
}

/// `bytes` in the largest unit that divides it exactly, else in bytes.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes % unit == 0 {
            return format!("{} {name}", bytes / unit);
        }
    }
    if bytes < 1 << 10 {
        format!("{bytes} B")
    } else {
        format!("{bytes:#x} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_leaves_out_the_os_error_number() {
        let error = OutputError {
            stream: Stream::Stdout,
            error: io::Error::from_raw_os_error(libc::ENOSPC),
        };
        assert_eq!(
            error.to_string(),
            "cannot write to stdout: No space left on device"
        );
    }
}
