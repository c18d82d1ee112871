//! The `--stats` report: a plain-text table for a human at the end of a run.
//!
//! Device names come from the VM's device map at report time rather than being stored with
//! each count, so recording an exit never has to look a range up twice.

use std::collections::HashMap;
use std::fmt::Write;

use axvm::device::AxVmDevices;

use super::{ExitStats, ExitTarget};

/// At most this many rows in the "by address" table; the rest are summed in one line.
const MAX_ADDRESS_ROWS: usize = 20;

impl ExitStats {
    /// The report `axvm run --stats` prints: exits per kind, then per port / MMIO device
    /// range (or page, for addresses no device claims) / MSR, each with its count and the
    /// total and mean time axvm spent handling them, and the exit rate over the time from
    /// the first exit to the last.
    pub fn report(&self, devices: &AxVmDevices) -> String {
        let tallies = self.tallies();
        let total: u64 = tallies.iter().map(|t| t.count).sum();
        let handling: u64 = tallies.iter().map(|t| t.handling_nanos).sum();
        let span = self.span_nanos();
        let mut out = String::new();
        let rate = if span > 0 && total > 1 {
            format!("{:.0} exits/s", total as f64 * 1e9 / span as f64)
        } else {
            "rate n/a".into()
        };
        let _ = writeln!(
            out,
            "exit statistics: {total} exits in {} ({rate}); axvm handled them in {} total",
            fmt_ns(span as f64),
            fmt_ns(handling as f64)
        );

        let mut by_kind: HashMap<&str, (u64, u64)> = HashMap::new();
        for tally in &tallies {
            add(
                by_kind.entry(tally.kind).or_default(),
                tally.count,
                tally.handling_nanos,
            );
        }
        let _ = writeln!(
            out,
            "  {:<56} {:>9} {:>10} {:>10}",
            "by kind", "exits", "total", "mean"
        );
        for (kind, tally) in sorted(by_kind) {
            line(&mut out, kind, tally);
        }

        let mut by_place: HashMap<String, (u64, u64)> = HashMap::new();
        for tally in tallies.iter().filter(|t| t.target != ExitTarget::None) {
            let label = format!("{:<12} {}", tally.kind, place(devices, tally.target));
            add(
                by_place.entry(label).or_default(),
                tally.count,
                tally.handling_nanos,
            );
        }
        if !by_place.is_empty() {
            let _ = writeln!(out, "  by address");
        }
        let rows = sorted(by_place);
        for (label, tally) in rows.iter().take(MAX_ADDRESS_ROWS) {
            line(&mut out, label, *tally);
        }
        if rows.len() > MAX_ADDRESS_ROWS {
            let mut rest = (0, 0);
            for (_, tally) in &rows[MAX_ADDRESS_ROWS..] {
                add(&mut rest, tally.0, tally.1);
            }
            let label = format!("({} more addresses)", rows.len() - MAX_ADDRESS_ROWS);
            line(&mut out, &label, rest);
        }
        out
    }
}

/// "port 0x3ff: serial (COM1)", "MMIO 0xfeb00000-0xfeb00fff: scratch", "MSR 0x10: no device".
fn place(devices: &AxVmDevices, target: ExitTarget) -> String {
    let Some((space, addr)) = target.address() else {
        return String::new();
    };
    let claimed = devices
        .ranges()
        .find(|(range, _)| range.contains(space, addr));
    let name = claimed.map_or("no device", |(_, device)| device.name());
    match (target, claimed) {
        (ExitTarget::Mmio(_), Some((range, _))) => {
            format!("MMIO {:#x}-{:#x}: {name}", range.base, range.end() - 1)
        }
        (ExitTarget::MmioPage(page), _) => format!("MMIO page {page:#x}: no device"),
        _ => format!("{space} {addr:#x}: {name}"),
    }
}

fn add(tally: &mut (u64, u64), count: u64, nanos: u64) {
    tally.0 += count;
    tally.1 += nanos;
}

/// Rows most frequent first (ties by label, so the report is stable).
fn sorted<K: Ord>(rows: HashMap<K, (u64, u64)>) -> Vec<(K, (u64, u64))> {
    let mut rows: Vec<_> = rows.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
    rows
}

fn line(out: &mut String, label: &str, (count, nanos): (u64, u64)) {
    let mean = nanos as f64 / count.max(1) as f64;
    let _ = writeln!(
        out,
        "  {label:<56} {count:>9} {:>10} {:>10}",
        fmt_ns(nanos as f64),
        fmt_ns(mean)
    );
}

/// `ns` in ns, µs, ms or s.
pub(crate) fn fmt_ns(ns: f64) -> String {
    match ns {
        x if x >= 1e9 => format!("{:.2} s", ns / 1e9),
        x if x >= 1e6 => format!("{:.2} ms", ns / 1e6),
        x if x >= 1e3 => format!("{:.2} µs", ns / 1e3),
        _ => format!("{ns:.0} ns"),
    }
}
