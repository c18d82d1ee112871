//! The debug log of accesses no device claims: one line per run of adjacent addresses,
//! e.g. `vCPU 0: 1024 x 1-byte write at MMIO 0xa0000-0xa03ff, where no device is; ...`,
//! instead of a line per address (a 1 KiB copy into a hole once gave 1,022 lines).
//!
//! Each vCPU has at most one *open* run: the run its last new unclaimed access started.
//! Accesses that continue it (same kind, at or next to its addresses, going up or down)
//! only count; the first one that does not, or the VM's stop, ends it and logs it, with the
//! instruction of its first access and the nearest device. Accesses inside runs logged
//! already stay silent (the stop summary counts them), so the lines are bounded by the
//! runs the device manager keeps, and the state by one run per vCPU.
//!
//! All of this happens only while debug logging is on: finding the instruction (reading
//! guest memory, disassembling) costs far more than the exit itself.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::device::{AccessKind, AxVmDevices, UnclaimedRun};

/// The run a vCPU's accesses are in the middle of.
struct OpenRun {
    kind: AccessKind,
    first: u64,
    last: u64,
    count: u64,
    /// Where the guest was at the first access ("RIP 0x800c (real mode): rep stosb").
    first_instruction: Option<String>,
}

impl OpenRun {
    /// Whether an access of `kind` at `addr` continues the run: it covers or touches the
    /// run's addresses, from above or below.
    fn continued_by(&self, kind: AccessKind, addr: u64) -> bool {
        kind == self.kind
            && addr <= self.last.saturating_add(1)
            && kind.last_of(addr).saturating_add(1) >= self.first
    }

    fn add(&mut self, addr: u64) {
        self.first = self.first.min(addr);
        self.last = self.last.max(self.kind.last_of(addr));
        self.count = self.count.saturating_add(1);
    }

    /// Logs the run (at debug level) as vCPU `vcpu`'s.
    fn log(&self, vcpu: usize, devices: &AxVmDevices) {
        let run = UnclaimedRun::new(self.kind, self.first, self.last, self.count);
        let at = match (&self.first_instruction, self.count) {
            (None, _) => String::new(),
            (Some(text), 1) => format!("; guest at {text}"),
            (Some(text), _) => format!("; the first from the guest at {text}"),
        };
        let nearest = devices
            .nearest_device(run.space, run.first)
            .map(|(range, device)| {
                format!(
                    "; nearest device: `{}` at {} {:#x}..{:#x}",
                    device.name(),
                    range.space,
                    range.base,
                    range.end()
                )
            })
            .unwrap_or_default();
        log::debug!(
            "vCPU {vcpu}: {run}, where no device is; reads as zero, writes are dropped{at}{nearest}"
        );
    }
}

/// The open run of each vCPU, by vCPU id.
pub(super) struct UnclaimedLog {
    open: Vec<spin::Mutex<Option<OpenRun>>>,
}

impl UnclaimedLog {
    /// No open runs, for `vcpus` vCPUs.
    pub fn new(vcpus: usize) -> Self {
        Self {
            open: (0..vcpus).map(|_| spin::Mutex::new(None)).collect(),
        }
    }

    /// Takes vCPU `vcpu`'s access of `kind` at `addr` (which started a new run in the
    /// device manager when `new_run`), logging the vCPU's open run if this access ends it.
    /// `first_instruction` is asked only for an access that opens a run.
    pub fn note(
        &self,
        devices: &AxVmDevices,
        vcpu: usize,
        (kind, addr): (AccessKind, u64),
        new_run: bool,
        first_instruction: impl FnOnce() -> Option<String>,
    ) {
        let Some(slot) = self.open.get(vcpu) else {
            return;
        };
        let mut open = slot.lock();
        if let Some(run) = open.as_mut().filter(|run| run.continued_by(kind, addr)) {
            run.add(addr);
            return;
        }
        let ended = match new_run {
            true => open.replace(OpenRun {
                kind,
                first: addr,
                last: kind.last_of(addr),
                count: 1,
                first_instruction: first_instruction(),
            }),
            false => open.take(),
        };
        drop(open);
        if let Some(ended) = ended {
            ended.log(vcpu, devices);
        }
    }

    /// Logs and forgets every open run: the VM stopped, so they have ended.
    pub fn flush(&self, devices: &AxVmDevices) {
        for (vcpu, slot) in self.open.iter().enumerate() {
            let ended = slot.lock().take();
            if let Some(ended) = ended {
                ended.log(vcpu, devices);
            }
        }
    }
}
