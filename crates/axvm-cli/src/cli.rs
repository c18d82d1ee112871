//! The command line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

/// Run and check virtual machines described by ArceOS hypervisor config files (TOML).
///
/// With no command, axvm boots its embedded demo guest (`axvm run` without a config).
/// With no CONFIG, `check` examines only this host.
#[derive(Debug, Parser)]
#[command(name = "axvm", version, propagate_version = true)]
pub struct Cli {
    /// More messages from axvm on stderr: -v info, -vv debug, -vvv every vCPU exit.
    /// RUST_LOG (e.g. RUST_LOG=axvm=debug) takes precedence.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Boot a VM (or several at once); the guest's serial console goes to stdout.
    ///
    /// The exit status is the byte the guest writes to the exit port (0xf4), 0 after a
    /// keyboard-controller reset, or 1 with a one-line reason on stderr when the VM cannot be
    /// created or fails.
    ///
    /// With several configs, every VM is created first (a bad config stops axvm before any
    /// guest runs), then all run at once in this process, where `switch:NAME` networks of
    /// the same name connect them. Each console line on stdout is prefixed with `[NAME] `
    /// (the VM's base.name); console input is not read; stderr ends with one line per VM,
    /// `axvm: [NAME] status N: how it ended`; the exit status is that of the first VM to
    /// fail (end with a status other than 0), else 0.
    Run {
        /// The VM config file(s). Image paths in each are relative to it. Omit them to boot
        /// the embedded demo guest.
        #[arg(value_name = "CONFIG")]
        configs: Vec<PathBuf>,

        /// What a guest access to a port, MMIO address or MSR without a device does.
        #[arg(long, value_enum, default_value_t = Unclaimed::Ignore)]
        unclaimed: Unclaimed,

        /// At the end of the run, print exit statistics on stderr: exits per kind and per
        /// port / MMIO device range / MSR, with the time axvm took to handle them.
        #[arg(long)]
        stats: bool,

        /// Write every vCPU exit to FILE as one JSON line (kind, vCPU, RIP, port or address,
        /// width, data, time); see the README for the fields. One config only.
        #[arg(long, value_name = "FILE")]
        trace_exits: Option<PathBuf>,

        /// Stop the VM when the guest makes no progress (no console output, no exit of a new
        /// kind or at a new place) for SECS seconds, and explain why on stderr; exit status 1.
        #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
        watchdog: Option<Duration>,

        /// Run without the seccomp sandbox. By default every axvm thread of a running VM is
        /// confined to the system calls it needs (a vCPU thread to a few KVM ioctls), and a
        /// call outside them ends axvm with "axvm: blocked system call ..."; this flag is for
        /// debugging such an end (please report it), not for normal use.
        #[arg(long)]
        no_seccomp: bool,

        /// Serve the GDB remote protocol on HOST:PORT (`target remote HOST:PORT` in GDB):
        /// every vCPU is a thread; breakpoints, steps, registers, memory; `detach` lets the
        /// VM run on. Port 0 picks a free port; axvm prints the address on stderr. One
        /// config only. Not with --watchdog, which would take the time GDB holds the vCPUs
        /// for a hang.
        #[arg(long, value_name = "HOST:PORT", value_parser = parse_host_port, conflicts_with = "watchdog")]
        gdb: Option<String>,

        /// With --gdb: no vCPU runs until GDB connects and continues.
        #[arg(long, requires = "gdb")]
        gdb_wait: bool,
    },
    /// Say whether this host can run VMs (and why not), and validate configs, printing
    /// their memory maps. Exits 0 when all is well.
    Check {
        /// The VM config file(s) to validate.
        #[arg(value_name = "CONFIG")]
        configs: Vec<PathBuf>,
    },
}

impl Command {
    /// `axvm` alone: `axvm run` of the embedded demo, every flag at its default.
    pub fn demo() -> Self {
        Self::Run {
            configs: Vec::new(),
            unclaimed: Unclaimed::Ignore,
            stats: false,
            trace_exits: None,
            watchdog: None,
            no_seccomp: false,
            gdb: None,
            gdb_wait: false,
        }
    }
}

/// The unclaimed-access policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Unclaimed {
    /// Reads return 0, writes are dropped; counted, and summarised at the stop in runs of
    /// adjacent addresses (-v, --stats).
    Ignore,
    /// The access stops the VM with an error naming the vCPU and the address.
    Error,
}

/// A positive number of seconds (fractions allowed), for `--watchdog`.
fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(format!("`{text}`: give a positive number of seconds"))
    }
}

/// `HOST:PORT` (`127.0.0.1:1234`, `localhost:0`, `[::1]:1234`), for `--gdb`; whether the
/// host can be listened on is found when binding.
fn parse_host_port(text: &str) -> Result<String, String> {
    let shape = "expected HOST:PORT, e.g. 127.0.0.1:1234";
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("`{text}` has no port: {shape}"))?;
    if host.is_empty() {
        return Err(format!("`{text}` has no host: {shape}"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("`{port}` is not a port number (0-65535): {shape}"))?;
    Ok(text.to_string())
}

impl Unclaimed {
    /// The device manager's policy for `--unclaimed`.
    pub fn policy(self) -> axvm::device::UnclaimedAccessPolicy {
        match self {
            Self::Ignore => axvm::device::UnclaimedAccessPolicy::Ignore,
            Self::Error => axvm::device::UnclaimedAccessPolicy::Error,
        }
    }
}

/// The `axvm run` flags every VM of a run shares.
#[derive(Clone, Copy)]
pub struct RunFlags<'a> {
    /// `--unclaimed`.
    pub unclaimed: Unclaimed,
    /// `--stats`.
    pub stats: bool,
    /// `--trace-exits FILE` (one VM only).
    pub trace_exits: Option<&'a Path>,
    /// `--watchdog SECS`.
    pub watchdog: Option<Duration>,
    /// Seccomp on: not `--no-seccomp`.
    pub sandbox: bool,
}
