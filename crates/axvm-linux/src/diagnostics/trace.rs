//! The exit trace (`axvm run --trace-exits FILE`): every exit as one JSON line, for tools
//! (`jq`, a script) rather than for reading.
//!
//! One line per exit, fields always present (null when they do not apply):
//!
//! ```json
//! {"t_ns":5310,"vcpu":0,"kind":"io-write","rip":"0x8008","port":1023,"addr":null,"width":1,"data":"0x0","disposition":"handled","handling_ns":1710}
//! ```
//!
//! - `t_ns`: nanoseconds since the first traced exit (host monotonic clock), when the loop
//!   got the exit; `handling_ns`: how long axvm took to handle it.
//! - `vcpu`, `kind` ([`axvm::AxVCpuExitReason::kind`]), `rip`: the guest's RIP as KVM
//!   reports it at the exit (null when the registers cannot be read). For port and MMIO exits
//!   hardware KVM (kvm_intel, kvm_amd) reports the accessing instruction itself, which it
//!   completes on the next entry; kvm_pvm reports the instruction after it.
//! - `port`: the I/O port, as a number; `addr`: the MMIO or nested-page-fault guest-physical
//!   address, or the MSR index, as a hex string.
//! - `width`: bytes (8 for MSRs); `data`: the value written, or the value the guest read.
//! - `disposition`: `handled`, `unclaimed` (no device: the unclaimed-access policy applied)
//!   or `returned` (given to the caller of `run_vcpu`: halt, shutdown, ...).
//!
//! Lines are formatted by hand: every field is a number, null, or a fixed ASCII string.

use std::io::{BufWriter, Write};
use std::sync::{Mutex, PoisonError};

use axvm::{AxArchVCpu, AxVCpuExitReason, ExitDisposition, ExitEvent};

struct Out {
    writer: BufWriter<Box<dyn Write + Send>>,
    /// Host time of the first traced exit: `t_ns` counts from it.
    start: Option<u64>,
    /// Set after the first write error: logged once, then tracing stops.
    failed: bool,
}

/// Writes exits as JSON lines, buffered; flushed by [`flush`](Self::flush) and on drop.
pub struct ExitTrace {
    out: Mutex<Out>,
}

impl ExitTrace {
    /// A trace written to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Mutex::new(Out {
                writer: BufWriter::with_capacity(64 * 1024, out),
                start: None,
                failed: false,
            }),
        }
    }

    /// Writes `event` (on the exiting vCPU's thread; reads its RIP).
    pub fn record<V: AxArchVCpu>(&self, event: &ExitEvent, vcpu: &mut V) {
        // Read the registers before taking the lock: the other vCPUs need not wait for it.
        let rip = vcpu.instruction_pointer().map(|ip| ip.rip);
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        if out.failed {
            return;
        }
        let start = *out.start.get_or_insert(event.time_nanos);
        let line = format_line(event, rip, event.time_nanos.saturating_sub(start));
        if let Err(err) = out.writer.write_all(line.as_bytes()) {
            out.failed = true;
            log::warn!("exit trace: cannot write ({err}); no more exits are traced");
        }
    }

    /// Writes out what is buffered: call it when the VM has stopped.
    pub fn flush(&self) -> std::io::Result<()> {
        let mut out = self.out.lock().unwrap_or_else(PoisonError::into_inner);
        out.writer.flush()
    }
}

impl Drop for ExitTrace {
    fn drop(&mut self) {
        if let Err(err) = self.flush() {
            log::warn!("exit trace: cannot write the last exits: {err}");
        }
    }
}

/// One JSON line (with its newline) for `event`.
fn format_line(event: &ExitEvent, rip: Option<u64>, t_ns: u64) -> String {
    use AxVCpuExitReason as Exit;
    let (port, addr, width, written) = match event.exit {
        Exit::IoRead { port, width } => (Some(port), None, Some(width.size()), None),
        Exit::IoWrite { port, width, data } => (Some(port), None, Some(width.size()), Some(data)),
        Exit::MmioRead { addr, width } => (None, Some(addr.as_u64()), Some(width.size()), None),
        Exit::MmioWrite { addr, width, data } => {
            (None, Some(addr.as_u64()), Some(width.size()), Some(data))
        }
        Exit::SysRegRead { addr } => (None, Some(u64::from(addr)), Some(8), None),
        Exit::SysRegWrite { addr, value } => (None, Some(u64::from(addr)), Some(8), Some(value)),
        Exit::NestedPageFault { addr, .. } => (None, Some(addr.as_u64()), None, None),
        _ => (None, None, None, None),
    };
    let data = written.or(event.read_value);
    format!(
        "{{\"t_ns\":{t_ns},\"vcpu\":{},\"kind\":\"{}\",\"rip\":{},\"port\":{},\"addr\":{},\"width\":{},\"data\":{},\"disposition\":\"{}\",\"handling_ns\":{}}}\n",
        event.vcpu,
        event.exit.kind(),
        hex(rip),
        port.map_or("null".into(), |p| p.to_string()),
        hex(addr),
        width.map_or("null".into(), |w| w.to_string()),
        hex(data),
        match event.disposition {
            ExitDisposition::Handled => "handled",
            ExitDisposition::Unclaimed => "unclaimed",
            ExitDisposition::Returned => "returned",
        },
        event.handling_nanos,
    )
}

/// `"0x…"`, or `null`.
fn hex(value: Option<u64>) -> String {
    value.map_or("null".into(), |v| format!("\"{v:#x}\""))
}
