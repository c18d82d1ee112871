//! The watchdog's report: which failure class of the troubleshooting guide fits, then the
//! evidence (vCPU registers and code, repeating exits, the last exits).

use std::fmt::Write as _;
use std::time::Duration;

use axvm::ExitDisposition;

use super::causes::{entry_cause, table_causes, zeros_cause};
use super::history::{ExitRecord, Repeat};
use super::snapshot::{Answer, VcpuSnapshot};

/// An exit repeating this often since the last progress is a loop, not chance.
const LOOP_REPEATS: u64 = 16;
/// RIP staying within this many bytes across the two samples: a tight loop.
const SPIN_RANGE: u64 = 64;

/// What the watcher gathered about one vCPU.
pub(crate) struct VcpuFindings {
    pub id: usize,
    pub first: Option<Answer>,
    pub second: Option<Answer>,
    /// Guest exits since the last progress.
    pub exits: u64,
}

impl VcpuFindings {
    /// The latest snapshot taken.
    fn snapshot(&self) -> Option<&VcpuSnapshot> {
        let latest = self.second.as_ref().or(self.first.as_ref());
        latest.and_then(|answer| answer.as_ref().ok())
    }

    /// Both samples of RIP (CS base included), when both were taken and the vCPU made no
    /// exit between them.
    fn quiet_rip_samples(&self) -> Option<(u64, u64)> {
        match (&self.first, &self.second) {
            (Some(Ok(a)), Some(Ok(b))) if a.exit_count == b.exit_count => {
                Some((a.linear_rip, b.linear_rip))
            }
            _ => None,
        }
    }
}

/// Everything the report is made from.
pub(crate) struct Findings {
    pub timeout: Duration,
    pub idle: Duration,
    pub since_start: Duration,
    pub entry: u64,
    /// The entry point's bytes are zeros now. That names a boot hang only while the guest
    /// has printed nothing: a kernel that printed has run, and may since have reused the
    /// memory of its entry (Linux's decompressor at 1 MiB is freed after boot).
    pub entry_zeros: bool,
    pub raw_load: Option<u64>,
    pub console_bytes: u64,
    pub vcpus: Vec<VcpuFindings>,
    pub recent: Vec<ExitRecord>,
    pub repeats: Vec<Repeat>,
}

impl Findings {
    /// The whole report, several lines, for stderr.
    pub(crate) fn report(&self, vm_name: &str) -> String {
        let mut out = format!(
            "watchdog: VM `{vm_name}` made no progress for {:.1} s (limit {:.1} s: no console output, no exit of a new kind or at a new place; {} console bytes in {:.1} s of run); stopped it.\n",
            self.idle.as_secs_f64(),
            self.timeout.as_secs_f64(),
            self.console_bytes,
            self.since_start.as_secs_f64(),
        );
        out.push_str("Cause:\n");
        for cause in self.causes() {
            let _ = writeln!(out, "  - {cause}");
        }
        out.push_str("vCPUs:\n");
        for vcpu in &self.vcpus {
            let answer = vcpu.second.as_ref().or(vcpu.first.as_ref());
            let exits = format!("{} exits since the last progress", vcpu.exits);
            write_vcpu(&mut out, vcpu.id, answer, &exits);
        }
        self.write_exits(&mut out);
        out
    }

    /// Every failure class that fits, the most fundamental first.
    pub(crate) fn causes(&self) -> Vec<String> {
        let mut causes = Vec::new();
        if self.entry_zeros && self.console_bytes == 0 {
            causes.push(entry_cause(self.entry, self.raw_load));
        }
        for vcpu in &self.vcpus {
            causes.extend(vcpu_cause(vcpu));
            causes.extend(
                vcpu.snapshot()
                    .map(|s| table_causes(vcpu.id, s))
                    .into_iter()
                    .flatten(),
            );
        }
        causes.extend(self.loop_causes());
        if !self.vcpus.is_empty()
            && self
                .vcpus
                .iter()
                .all(|v| v.snapshot().is_some_and(|s| s.waits_for_interrupt))
        {
            causes.push("every vCPU is halted waiting for an interrupt that does not come: a device I/O stall (no device raises it, or its routing is wrong)".into());
        }
        if causes.is_empty() {
            causes.push("no known cause fits; see the registers and exits below".into());
        }
        causes
    }

    /// Exits repeating since the last progress: an absent device polled, or a device that
    /// never gives the answer the guest waits for.
    fn loop_causes(&self) -> Vec<String> {
        let mut causes = Vec::new();
        for repeat in self.repeats.iter().filter(|r| r.count >= LOOP_REPEATS) {
            let Some(space) = repeat.key.space() else {
                continue;
            };
            let place = repeat.key.place.unwrap_or_default();
            let verb = if repeat.key.is_read() {
                "polls"
            } else {
                "writes"
            };
            let at = repeat
                .rip
                .map(|rip| format!(" at RIP {rip:#x}"))
                .unwrap_or_default();
            let evidence = format!("vCPU {}: {} times{at}", repeat.vcpu, repeat.count);
            causes.push(match repeat.disposition {
                ExitDisposition::Unclaimed => format!(
                    "guest {verb} {space} {place:#x}, where no device is ({evidence}): a device I/O stall; add the device or fix the address"
                ),
                _ => format!(
                    "guest {verb} {space} {place:#x} over and over ({evidence}): a vCPU exit loop; the device there never answers what the guest waits for"
                ),
            });
        }
        causes
    }

    fn write_exits(&self, out: &mut String) {
        if !self.repeats.is_empty() {
            out.push_str("Repeating exits since the last progress:\n");
            for r in self.repeats.iter().take(8) {
                let _ = writeln!(
                    out,
                    "  {:>10} x vCPU {} {} ({}){}",
                    r.count,
                    r.vcpu,
                    r.key,
                    disposition(r.disposition),
                    r.rip
                        .map(|rip| format!(" at RIP {rip:#x}"))
                        .unwrap_or_default()
                );
            }
        }
        if self.recent.is_empty() {
            out.push_str("Exits: none since the run started.\n");
            return;
        }
        let _ = writeln!(out, "Last {} exits, oldest first:", self.recent.len());
        // Identical neighbours (a loop) are shown once, with their count.
        let mut rest = self.recent.as_slice();
        while let Some(first) = rest.first() {
            let same = rest.iter().take_while(|e| same_exit(e, first)).count();
            let last = &rest[same - 1];
            let when = if same == 1 {
                format!("{:.6} s", first.at.as_secs_f64())
            } else {
                let (from, to) = (first.at.as_secs_f64(), last.at.as_secs_f64());
                format!("{same} x {from:.6}-{to:.6} s")
            };
            let _ = writeln!(out, "  {when}  {}", describe_exit(first));
            rest = &rest[same..];
        }
    }
}

/// What one vCPU's snapshots say: code that is zeros, a spin without exits, no answer.
fn vcpu_cause(vcpu: &VcpuFindings) -> Option<String> {
    let id = vcpu.id;
    if vcpu.first.is_none() && vcpu.second.is_none() {
        return Some(format!(
            "vCPU {id} did not answer within 1 s: it is stuck in the host, not in the guest"
        ));
    }
    let snapshot = vcpu.snapshot()?;
    if snapshot.zeros_at_rip {
        return Some(zeros_cause(id, snapshot.rip));
    }
    if snapshot.state != "running" {
        return None;
    }
    let (a, b) = vcpu.quiet_rip_samples()?;
    let interrupts = if snapshot.interrupts_on {
        "interrupts on"
    } else {
        "interrupts off"
    };
    Some(if a.abs_diff(b) <= SPIN_RANGE {
        let what = snapshot
            .instruction
            .as_deref()
            .map(|insn| format!(" ({insn})"))
            .unwrap_or_default();
        let tight = match a == b {
            true => String::new(),
            false => format!(" (samples {:#x} and {:#x})", a, b),
        };
        format!(
            "vCPU {id} spins at RIP {:#x}{what}{tight} without exits, {interrupts}: a loop in guest code waiting for something no exit can bring (memory another vCPU should write, or an interrupt), or the guest's deliberate end",
            snapshot.rip
        )
    } else {
        format!("vCPU {id} runs guest code without exits or output (at {a:#x}, then {b:#x}), {interrupts}: a long computation or a loop that never reaches a device")
    })
}

/// One vCPU's line (state, mode, registers, IDTR; `exits` says what its exits were) and its
/// code at RIP, for the watchdog's report and the report of a VM that stopped by itself.
pub(crate) fn write_vcpu(out: &mut String, id: usize, answer: Option<&Answer>, exits: &str) {
    match answer {
        None => {
            let _ = writeln!(out, "  vCPU {id}: did not answer within 1 s (unresponsive)");
        }
        Some(Err(err)) => {
            let _ = writeln!(out, "  vCPU {id}: registers unavailable: {err}");
        }
        Some(Ok(s)) => {
            let _ = writeln!(
                out,
                "  vCPU {id}: {}, {} mode, RIP {:#x} RSP {:#x} RFLAGS {:#x} CR0 {:#x} CR3 {:#x} EFER {:#x} IDTR {:#x}/{:#x}; {exits}",
                s.state, s.mode, s.rip, s.rsp, s.rflags, s.cr0, s.cr3, s.efer, s.idt_base, s.idt_limit
            );
            if let Some(code) = &s.code {
                let _ = writeln!(out, "    {code}");
            }
        }
    }
}

/// Same vCPU, kind, place, RIP, outcome and value read.
fn same_exit(a: &ExitRecord, b: &ExitRecord) -> bool {
    (a.vcpu, a.key, a.disposition, a.rip, a.read_value)
        == (b.vcpu, b.key, b.disposition, b.rip, b.read_value)
}

/// "vCPU 0 port 0x3e5 read (unclaimed) at RIP 0x8003 -> 0x0"
fn describe_exit(e: &ExitRecord) -> String {
    let rip = e
        .rip
        .map(|rip| format!(" at RIP {rip:#x}"))
        .unwrap_or_default();
    let value = e
        .read_value
        .map(|v| format!(" -> {v:#x}"))
        .unwrap_or_default();
    format!(
        "vCPU {} {} ({}){rip}{value}",
        e.vcpu,
        e.key,
        disposition(e.disposition)
    )
}

fn disposition(disposition: ExitDisposition) -> &'static str {
    match disposition {
        ExitDisposition::Handled => "handled",
        ExitDisposition::Unclaimed => "unclaimed",
        ExitDisposition::Returned => "returned",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn findings(entry_zeros: bool, console_bytes: u64) -> Findings {
        Findings {
            timeout: Duration::from_secs(1),
            idle: Duration::from_secs(1),
            since_start: Duration::from_secs(2),
            entry: 0x10_0200,
            entry_zeros,
            raw_load: None,
            console_bytes,
            vcpus: Vec::new(),
            recent: Vec::new(),
            repeats: Vec::new(),
        }
    }

    fn names_the_entry(findings: &Findings) -> bool {
        findings
            .causes()
            .iter()
            .any(|cause| cause.starts_with("entry point 0x100200 holds zeros"))
    }

    #[test]
    fn zeros_at_the_entry_of_a_silent_guest_are_a_boot_hang() {
        assert!(names_the_entry(&findings(true, 0)));
        assert!(!names_the_entry(&findings(false, 0)));
    }

    #[test]
    fn zeros_at_the_entry_of_a_guest_that_printed_are_not_blamed() {
        // A Linux kernel hung after printing its boot log: its entry at 1 MiB was freed.
        assert!(!names_the_entry(&findings(true, 40_000)));
    }
}
