//! Exit statistics (`axvm run --stats`): how many exits of each kind a VM made, where they
//! went (port, MMIO device range, MSR), and how long axvm took to handle them.
//!
//! Recording runs on every exit of every vCPU, so it must stay cheap and must not make the
//! vCPUs wait for each other: each vCPU counts into its own shard (an uncontended mutex,
//! taken only by that vCPU's thread and by a reader), and the shards are merged only when
//! a report is asked for. Addresses are kept exactly (MMIO accesses no device claims by
//! page) and grouped by device range at report time, when the device map is at hand.

mod report;
mod unclaimed;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use axvm::device::DeviceSpace;
use axvm::{AxVCpuExitReason, ExitDisposition, ExitEvent};

pub use unclaimed::unclaimed_summary;

/// How many distinct (kind, address) pairs one vCPU keeps; beyond that, exits are counted
/// per kind only, so that a guest scanning addresses cannot grow the VMM without bound.
const MAX_KEYS_PER_VCPU: usize = 4096;

/// The size of the groups unclaimed MMIO accesses are counted in.
const MMIO_PAGE: u64 = 0x1000;

/// Where an exit went, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExitTarget {
    /// Nothing addressed (halt, hypercall, ...), or more addresses than are kept.
    None,
    /// An I/O port.
    Port(u16),
    /// A guest-physical MMIO address (or nested page fault address) that a device claims.
    Mmio(u64),
    /// The page of MMIO accesses that no device claims.
    MmioPage(u64),
    /// An MSR.
    Msr(u32),
}

impl ExitTarget {
    /// The target of `event`: the exact address, except unclaimed MMIO, counted by page.
    fn of(event: &ExitEvent) -> Self {
        use AxVCpuExitReason as Exit;
        match event.exit {
            Exit::IoRead { port, .. } | Exit::IoWrite { port, .. } => Self::Port(port),
            Exit::MmioRead { addr, .. } | Exit::MmioWrite { addr, .. }
                if event.disposition == ExitDisposition::Unclaimed =>
            {
                Self::MmioPage(addr.as_u64() & !(MMIO_PAGE - 1))
            }
            Exit::MmioRead { addr, .. } | Exit::MmioWrite { addr, .. } => Self::Mmio(addr.as_u64()),
            Exit::SysRegRead { addr } | Exit::SysRegWrite { addr, .. } => Self::Msr(addr),
            _ => Self::None,
        }
    }

    /// The device space and address, for device lookups.
    pub fn address(self) -> Option<(DeviceSpace, u64)> {
        match self {
            Self::None => None,
            Self::Port(port) => Some((DeviceSpace::Port, u64::from(port))),
            Self::Mmio(addr) | Self::MmioPage(addr) => Some((DeviceSpace::Mmio, addr)),
            Self::Msr(msr) => Some((DeviceSpace::SysReg, u64::from(msr))),
        }
    }
}

/// Exits of one kind to one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitTally {
    /// [`AxVCpuExitReason::kind`].
    pub kind: &'static str,
    /// Where they went.
    pub target: ExitTarget,
    /// How many.
    pub count: u64,
    /// Nanoseconds axvm spent handling them, in total.
    pub handling_nanos: u64,
}

#[derive(Default)]
struct Shard {
    counts: HashMap<(&'static str, ExitTarget), (u64, u64)>,
    /// Host time of this vCPU's first exit, and of the end of its last one.
    first_nanos: Option<u64>,
    last_nanos: u64,
}

/// Exit counts of one VM, one shard per vCPU.
pub struct ExitStats {
    shards: Vec<Mutex<Shard>>,
}

impl ExitStats {
    /// Empty statistics for a VM of `vcpu_num` vCPUs.
    pub fn new(vcpu_num: usize) -> Self {
        Self {
            shards: (0..vcpu_num.max(1)).map(|_| Mutex::default()).collect(),
        }
    }

    /// Counts one exit (on the exiting vCPU's thread).
    /// Counts `event` (called from the VM's exit observer, on the exiting vCPU's thread).
    pub fn record(&self, event: &ExitEvent) {
        let shard = &self.shards[event.vcpu % self.shards.len()];
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let mut key = (event.exit.kind(), ExitTarget::of(event));
        if shard.counts.len() >= MAX_KEYS_PER_VCPU && !shard.counts.contains_key(&key) {
            key.1 = ExitTarget::None;
        }
        let tally = shard.counts.entry(key).or_default();
        tally.0 += 1;
        tally.1 += event.handling_nanos;
        shard.first_nanos.get_or_insert(event.time_nanos);
        shard.last_nanos = shard
            .last_nanos
            .max(event.time_nanos + event.handling_nanos);
    }

    /// Every (kind, target) counted so far, merged over the vCPUs, most frequent first.
    pub fn tallies(&self) -> Vec<ExitTally> {
        let mut merged: HashMap<(&'static str, ExitTarget), (u64, u64)> = HashMap::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            for (&key, &(count, nanos)) in &shard.counts {
                let tally = merged.entry(key).or_default();
                tally.0 += count;
                tally.1 += nanos;
            }
        }
        let mut tallies: Vec<ExitTally> = merged
            .into_iter()
            .map(|((kind, target), (count, handling_nanos))| ExitTally {
                kind,
                target,
                count,
                handling_nanos,
            })
            .collect();
        tallies.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then(a.kind.cmp(b.kind))
                .then(a.target.cmp(&b.target))
        });
        tallies
    }

    /// How many exits were counted.
    pub fn total_exits(&self) -> u64 {
        self.tallies().iter().map(|tally| tally.count).sum()
    }

    /// Nanoseconds from the first exit of any vCPU to the end of the last one handled.
    pub fn span_nanos(&self) -> u64 {
        let (mut first, mut last) = (u64::MAX, 0);
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(start) = shard.first_nanos {
                first = first.min(start);
                last = last.max(shard.last_nanos);
            }
        }
        last.saturating_sub(first)
    }
}
