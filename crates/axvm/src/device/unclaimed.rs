//! Accesses that no device claims, counted in runs of adjacent addresses.
//!
//! One `rep stosb` of 1 KiB into memory that is neither RAM nor a device makes 1,024 exits
//! to 1,024 addresses; counted per address they used to fill the summary (and, earlier, the
//! log) with a line each. A run is what the guest did there: accesses of one kind (space,
//! width, direction) to a stretch of adjacent addresses, with how many there were. A polled
//! port is a run of one address; a copy, ascending or descending, is one run over its range.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::fmt;

use super::DeviceSpace;
use crate::AccessWidth;

/// How many runs are kept per VM: a guest scanning the address space must not grow the
/// VMM's memory without bound. Accesses beyond them are only counted.
const MAX_RUNS: usize = 1024;

/// What an access is, apart from its address: accesses of one kind to adjacent addresses
/// form a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AccessKind {
    /// Which space.
    pub space: DeviceSpace,
    /// The access width.
    pub width: AccessWidth,
    /// Writes (or reads).
    pub write: bool,
}

impl AccessKind {
    /// How many addresses one access covers: its width in bytes for ports and memory; one
    /// for a system register, whose "addresses" are register numbers.
    pub fn span(self) -> u64 {
        match self.space {
            DeviceSpace::SysReg => 1,
            DeviceSpace::Port | DeviceSpace::Mmio => self.width.size() as u64,
        }
    }

    /// The last address an access at `addr` covers.
    pub fn last_of(self, addr: u64) -> u64 {
        addr.saturating_add(self.span() - 1)
    }
}

/// Accesses of one kind, no device claiming them, to the adjacent addresses
/// `first..=last`: e.g. `1024 x 1-byte write at MMIO 0xa0000-0xa03ff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnclaimedRun {
    /// Which space.
    pub space: DeviceSpace,
    /// The first port, address or MSR.
    pub first: u64,
    /// The last port, address or MSR an access covered (for a 4-byte access at 0x10 alone,
    /// 0x13).
    pub last: u64,
    /// The access width.
    pub width: AccessWidth,
    /// Writes (or reads).
    pub write: bool,
    /// How many accesses.
    pub count: u64,
}

impl UnclaimedRun {
    pub(crate) fn new(kind: AccessKind, first: u64, last: u64, count: u64) -> Self {
        Self {
            space: kind.space,
            first,
            last,
            width: kind.width,
            write: kind.write,
            count,
        }
    }

    /// Whether every access went to the same address (a polled register).
    pub fn is_one_address(&self) -> bool {
        let kind = AccessKind {
            space: self.space,
            width: self.width,
            write: self.write,
        };
        self.last <= kind.last_of(self.first)
    }
}

/// "1024 x 1-byte write at MMIO 0xa0000-0xa03ff", or "3 x 1-byte read at port 0x3e5" for
/// one address.
impl fmt::Display for UnclaimedRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = if self.write { "write" } else { "read" };
        write!(
            f,
            "{} x {} {direction} at {} {:#x}",
            self.count, self.width, self.space, self.first
        )?;
        if !self.is_one_address() {
            write!(f, "-{:#x}", self.last)?;
        }
        Ok(())
    }
}

/// The runs seen so far: (kind, first address) → (last address, count). Runs of one kind
/// never overlap or touch: an access that reaches one extends it, and a run that grows
/// into the next swallows it.
#[derive(Default)]
pub(crate) struct UnclaimedRuns {
    runs: BTreeMap<(AccessKind, u64), (u64, u64)>,
    /// Accesses that would have started a run beyond [`MAX_RUNS`].
    overflow: u64,
}

impl UnclaimedRuns {
    /// Counts an access of `kind` at `addr`; `true` when it starts a new run.
    pub fn record(&mut self, kind: AccessKind, addr: u64) -> bool {
        let last = kind.last_of(addr);
        // A run starting at or below `addr` that it lies in or right after.
        let below = self
            .runs
            .range_mut((kind, 0)..=(kind, addr))
            .next_back()
            .filter(|(_, (run_last, _))| addr <= run_last.saturating_add(1));
        if let Some((&(_, first), (run_last, count))) = below {
            *run_last = (*run_last).max(last);
            *count = count.saturating_add(1);
            self.merge_following(kind, first);
            return false;
        }
        // A run starting inside the access or right after it (a copy going down).
        let above = self
            .runs
            .range((kind, addr)..=(kind, last.saturating_add(1)))
            .next()
            .map(|(&key, &value)| (key, value));
        if let Some((key, (run_last, count))) = above {
            self.runs.remove(&key);
            self.runs
                .insert((kind, addr), (run_last.max(last), count.saturating_add(1)));
            self.merge_following(kind, addr);
            return false;
        }
        if self.runs.len() < MAX_RUNS {
            self.runs.insert((kind, addr), (last, 1));
            true
        } else {
            self.overflow = self.overflow.saturating_add(1);
            false
        }
    }

    /// Joins the runs after the one at `first` that it now reaches.
    fn merge_following(&mut self, kind: AccessKind, first: u64) {
        loop {
            let Some(&(last, _)) = self.runs.get(&(kind, first)) else {
                return;
            };
            let Some(next) = first.checked_add(1) else {
                return;
            };
            let reached = self
                .runs
                .range((kind, next)..=(kind, last.saturating_add(1)))
                .next()
                .map(|(&key, &value)| (key, value));
            let Some((key, (next_last, next_count))) = reached else {
                return;
            };
            self.runs.remove(&key);
            if let Some((run_last, count)) = self.runs.get_mut(&(kind, first)) {
                *run_last = (*run_last).max(next_last);
                *count = count.saturating_add(next_count);
            }
        }
    }

    /// Every run, most accesses first (then by address), and how many accesses went
    /// beyond the runs kept.
    pub fn runs(&self) -> (Vec<UnclaimedRun>, u64) {
        let mut runs: Vec<UnclaimedRun> = self
            .runs
            .iter()
            .map(|(&(kind, first), &(last, count))| UnclaimedRun::new(kind, first, last, count))
            .collect();
        runs.sort_by(|a, b| b.count.cmp(&a.count).then(a.first.cmp(&b.first)));
        (runs, self.overflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const MMIO_BYTE_WRITE: AccessKind = AccessKind {
        space: DeviceSpace::Mmio,
        width: AccessWidth::Byte,
        write: true,
    };

    fn lines(runs: &UnclaimedRuns) -> Vec<alloc::string::String> {
        runs.runs().0.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_copy_up_or_down_is_one_run() {
        let mut up = UnclaimedRuns::default();
        assert!(up.record(MMIO_BYTE_WRITE, 0xa0000));
        for addr in 0xa0001..0xa0400 {
            assert!(!up.record(MMIO_BYTE_WRITE, addr));
        }
        assert_eq!(lines(&up), ["1024 x 1-byte write at MMIO 0xa0000-0xa03ff"]);
        let mut down = UnclaimedRuns::default();
        for addr in (0xa0000..0xa0400).rev() {
            down.record(MMIO_BYTE_WRITE, addr);
        }
        assert_eq!(lines(&down), lines(&up));
    }

    #[test]
    fn dword_accesses_are_adjacent_four_bytes_apart() {
        let kind = AccessKind {
            width: AccessWidth::Dword,
            ..MMIO_BYTE_WRITE
        };
        let mut runs = UnclaimedRuns::default();
        for addr in (0x1000..0x1100).step_by(4) {
            runs.record(kind, addr);
        }
        runs.record(kind, 0x1108);
        assert_eq!(
            lines(&runs),
            [
                "64 x 4-byte write at MMIO 0x1000-0x10ff",
                "1 x 4-byte write at MMIO 0x1108"
            ]
        );
    }

    #[test]
    fn runs_apart_or_of_another_kind_stay_apart_and_a_gap_filled_joins_them() {
        let read = AccessKind {
            write: false,
            ..MMIO_BYTE_WRITE
        };
        let mut runs = UnclaimedRuns::default();
        runs.record(MMIO_BYTE_WRITE, 0x10);
        runs.record(MMIO_BYTE_WRITE, 0x12);
        runs.record(read, 0x11);
        assert_eq!(runs.runs().0.len(), 3);
        runs.record(MMIO_BYTE_WRITE, 0x11);
        assert_eq!(
            lines(&runs),
            [
                "3 x 1-byte write at MMIO 0x10-0x12",
                "1 x 1-byte read at MMIO 0x11"
            ]
        );
    }

    #[test]
    fn a_polled_address_is_one_run_with_its_count() {
        let poll = AccessKind {
            space: DeviceSpace::Port,
            width: AccessWidth::Byte,
            write: false,
        };
        let mut runs = UnclaimedRuns::default();
        for _ in 0..5000 {
            runs.record(poll, 0x3e5);
        }
        assert_eq!(lines(&runs), ["5000 x 1-byte read at port 0x3e5"]);
    }

    #[test]
    fn msrs_are_adjacent_one_number_apart() {
        let msr = AccessKind {
            space: DeviceSpace::SysReg,
            width: AccessWidth::Qword,
            write: false,
        };
        let mut runs = UnclaimedRuns::default();
        runs.record(msr, 0xc001_0000);
        runs.record(msr, 0xc001_0001);
        assert_eq!(
            lines(&runs),
            ["2 x 8-byte read at MSR 0xc0010000-0xc0010001"]
        );
    }

    #[test]
    fn the_top_of_the_address_space_neither_overflows_nor_wraps() {
        let kind = AccessKind {
            width: AccessWidth::Qword,
            ..MMIO_BYTE_WRITE
        };
        let mut runs = UnclaimedRuns::default();
        runs.record(kind, u64::MAX - 3);
        runs.record(kind, u64::MAX);
        runs.record(kind, 0);
        let (found, _) = runs.runs();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found.iter().any(|run| run.first == 0));
        assert!(found
            .iter()
            .any(|run| run.last == u64::MAX && run.count == 2));
    }

    #[test]
    fn runs_beyond_the_limit_are_only_counted() {
        let mut runs = UnclaimedRuns::default();
        for index in 0..(MAX_RUNS as u64 + 10) {
            runs.record(MMIO_BYTE_WRITE, index * 0x10);
        }
        let (kept, overflow) = runs.runs();
        assert_eq!((kept.len(), overflow), (MAX_RUNS, 10));
        // An access extending a kept run is still counted in it.
        runs.record(MMIO_BYTE_WRITE, 1);
        assert_eq!(runs.runs().1, 10);
    }
}
