//! What the watchdog remembers of the exits: which (kind, place) keys it has seen (a new one
//! is progress), the last few exits, and how often each exit repeated since the last
//! progress (an exit loop shows up as one key with a huge count).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::Duration;

use axvm::{AxVCpuExitReason, ExitDisposition};

/// How many exits the report lists.
pub(crate) const RECENT: usize = 16;
/// How many distinct keys count as "seen"; past this, new keys still count as progress but
/// are not remembered, so a guest exploring many addresses is never stopped for it.
const MAX_SEEN: usize = 4096;
/// How many distinct repeating exits are counted between two progresses.
const MAX_REPEATS: usize = 256;

/// An exit's kind and place: what makes an exit "new".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ExitKey {
    /// `AxVCpuExitReason::kind`, e.g. "io-read".
    pub kind: &'static str,
    /// The port, MMIO address, MSR, faulting address or hypercall number, when it has one.
    pub place: Option<u64>,
}

impl ExitKey {
    pub(crate) fn of(exit: &AxVCpuExitReason) -> Self {
        use AxVCpuExitReason as E;
        let place = match *exit {
            E::IoRead { port, .. } | E::IoWrite { port, .. } => Some(u64::from(port)),
            E::MmioRead { addr, .. } | E::MmioWrite { addr, .. } => Some(addr.as_u64()),
            E::NestedPageFault { addr, .. } => Some(addr.as_u64()),
            E::SysRegRead { addr } | E::SysRegWrite { addr, .. } => Some(u64::from(addr)),
            E::Hypercall { nr, .. } => Some(nr),
            _ => None,
        };
        Self {
            kind: exit.kind(),
            place,
        }
    }

    /// "port", "MMIO" or "MSR" when the exit is a device access.
    pub(crate) fn space(&self) -> Option<&'static str> {
        match self.kind {
            "io-read" | "io-write" => Some("port"),
            "mmio-read" | "mmio-write" => Some("MMIO"),
            "sysreg-read" | "sysreg-write" => Some("MSR"),
            _ => None,
        }
    }

    /// Whether the exit is a read (the guest waits for a value).
    pub(crate) fn is_read(&self) -> bool {
        self.kind.ends_with("-read")
    }
}

impl fmt::Display for ExitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.space(), self.place) {
            (Some(space), Some(place)) => {
                let access = if self.is_read() { "read" } else { "write" };
                write!(f, "{space} {place:#x} {access}")
            }
            (None, Some(place)) => write!(f, "{} {place:#x}", self.kind),
            (_, None) => f.write_str(self.kind),
        }
    }
}

/// One exit as the report shows it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ExitRecord {
    pub vcpu: usize,
    pub key: ExitKey,
    pub disposition: ExitDisposition,
    /// RIP when the exit happened (after the instruction, as KVM reports it).
    pub rip: Option<u64>,
    pub read_value: Option<u64>,
    /// Since the run started.
    pub at: Duration,
}

/// Where an exit repeats: same vCPU, kind, place and RIP.
pub(crate) type RepeatKey = (usize, ExitKey, Option<u64>);

/// An exit that repeated, and how often, since the last progress.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Repeat {
    pub vcpu: usize,
    pub key: ExitKey,
    pub rip: Option<u64>,
    pub disposition: ExitDisposition,
    pub count: u64,
}

/// The watchdog's memory of exits.
#[derive(Default)]
pub(crate) struct History {
    seen: HashSet<ExitKey>,
    recent: VecDeque<ExitRecord>,
    repeats: HashMap<RepeatKey, (ExitDisposition, u64)>,
}

impl History {
    /// Remembers `record`; true when its key is new, i.e. the guest made progress.
    pub(crate) fn record(&mut self, record: ExitRecord) -> bool {
        let new = !self.seen.contains(&record.key);
        if new {
            if self.seen.len() < MAX_SEEN {
                self.seen.insert(record.key);
            }
            self.repeats.clear();
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(record);
        let key = (record.vcpu, record.key, record.rip);
        if let Some((_, count)) = self.repeats.get_mut(&key) {
            *count += 1;
        } else if self.repeats.len() < MAX_REPEATS {
            self.repeats.insert(key, (record.disposition, 1));
        }
        new
    }

    /// Forgets the repeats: after progress, what repeated before is no loop.
    pub(crate) fn progressed(&mut self) {
        self.repeats.clear();
    }

    /// The last exits, oldest first.
    pub(crate) fn recent(&self) -> Vec<ExitRecord> {
        self.recent.iter().copied().collect()
    }

    /// The exits that happened more than once since the last progress, most frequent first.
    pub(crate) fn repeats(&self) -> Vec<Repeat> {
        let mut repeats: Vec<Repeat> = self
            .repeats
            .iter()
            .filter(|(_, (_, count))| *count > 1)
            .map(|(&(vcpu, key, rip), &(disposition, count))| Repeat {
                vcpu,
                key,
                rip,
                disposition,
                count,
            })
            .collect();
        repeats.sort_by_key(|r| std::cmp::Reverse(r.count));
        repeats
    }
}
