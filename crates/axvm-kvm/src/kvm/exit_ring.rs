//! The last exits of one vCPU, always recorded: a VM that halts for good or triple-faults
//! is reported with the exits that led there, whether or not a diagnostic was asked for.
//!
//! The ring lives in the [`KvmVCpu`](super::KvmVCpu) and only its own thread writes it, so
//! recording is a few stores into a fixed array: no lock, no allocation, no system call.
//! The RIP of each exit comes from the registers KVM copies into the `kvm_run` page on every
//! exit (`KVM_CAP_SYNC_REGS`), not from a `KVM_GET_REGS` per exit.

use axvm::AxVCpuExitReason;

/// How many exits each vCPU remembers.
pub const RECENT_EXITS: usize = 16;

/// One exit as the vCPU made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecentExit {
    /// Which exit of this vCPU it was, from 1 (string I/O counts one per element).
    pub number: u64,
    /// What KVM reported, in axvm's terms.
    pub exit: AxVCpuExitReason,
    /// RIP when KVM exited (for port and MMIO writes usually past the instruction); `None`
    /// where KVM cannot copy registers out on exit.
    pub rip: Option<u64>,
    /// For a read the VMM answered: the value the guest got.
    pub read_value: Option<u64>,
}

/// The last [`RECENT_EXITS`] exits of one vCPU.
#[derive(Debug, Default)]
pub(crate) struct ExitRing {
    slots: [Option<RecentExit>; RECENT_EXITS],
    /// Exits recorded so far; the next goes to slot `count % RECENT_EXITS`.
    count: u64,
}

impl ExitRing {
    /// Remembers `exit`, dropping the oldest one when the ring is full.
    pub(crate) fn record(&mut self, exit: AxVCpuExitReason, rip: Option<u64>) {
        let slot = (self.count % RECENT_EXITS as u64) as usize;
        self.count += 1;
        self.slots[slot] = Some(RecentExit {
            number: self.count,
            exit,
            rip,
            read_value: None,
        });
    }

    /// Notes the value the guest got for the last exit (a read).
    pub(crate) fn answer_last(&mut self, value: u64) {
        let Some(last) = self.count.checked_sub(1) else {
            return;
        };
        if let Some(exit) = &mut self.slots[(last % RECENT_EXITS as u64) as usize] {
            exit.read_value = Some(value);
        }
    }

    /// The exit recorded last.
    pub(crate) fn last(&self) -> Option<&RecentExit> {
        let last = self.count.checked_sub(1)?;
        self.slots[(last % RECENT_EXITS as u64) as usize].as_ref()
    }

    /// How many exits the vCPU made.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The remembered exits, oldest first.
    pub(crate) fn recent(&self) -> Vec<RecentExit> {
        let mut exits: Vec<RecentExit> = self.slots.iter().flatten().copied().collect();
        exits.sort_by_key(|exit| exit.number);
        exits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_exits_oldest_first_with_their_read_values() {
        let mut ring = ExitRing::default();
        assert!(ring.recent().is_empty());
        for port in 0..20u16 {
            ring.record(
                AxVCpuExitReason::IoRead {
                    port,
                    width: axvm::AccessWidth::Byte,
                },
                Some(0x8000 + u64::from(port)),
            );
        }
        ring.answer_last(0x42);
        let recent = ring.recent();
        assert_eq!(ring.count(), 20);
        assert_eq!(recent.len(), RECENT_EXITS);
        assert_eq!(recent[0].number, 5);
        assert_eq!(recent[RECENT_EXITS - 1].number, 20);
        assert_eq!(recent[RECENT_EXITS - 1].rip, Some(0x8013));
        assert_eq!(recent[RECENT_EXITS - 1].read_value, Some(0x42));
        assert_eq!(recent[RECENT_EXITS - 2].read_value, None);
        assert_eq!(ring.last(), recent.last());
    }
}
