//! Finding overlapping address ranges in O(n log n), for validation.
//!
//! Validation used to compare every pair of ranges, which took seconds for 100 000 memory
//! regions and minutes for a million. The functions here give exactly the answers that
//! pairwise search gave (for each range, the *lowest-indexed* range overlapping it), so the
//! messages name the same pair as before, but each range is looked at O(log n) times:
//!
//! * the ranges that can be overlapped ("targets") sit in a segment tree ordered by start,
//!   each leaf holding its range's end, each inner node the largest end below it;
//! * the ranges that may overlap them ("sources") are taken in index order; each finds every
//!   target still in the tree that it overlaps (start before the source's end, found by
//!   binary search; end after the source's start, found by descending only into nodes whose
//!   largest end is big enough), records itself as that target's answer and removes the
//!   target, so no target is found twice.
//!
//! Because sources come in index order, the first source to find a target is the
//! lowest-indexed one overlapping it.
//!
//! A sorted sweep first sets aside the ranges that cannot overlap anything, so a valid
//! config (no overlaps) costs one sort; the tree holds only the rest.

use alloc::vec;
use alloc::vec::Vec;

/// The half-open range `[start, end)`, the end saturated at `u64::MAX` (a range that wraps
/// is refused on its own; saturating only makes the overlap answer more cautious).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span {
    start: u64,
    end: u64,
}

impl Span {
    /// `len` bytes at `base`.
    pub(super) fn new(base: u64, len: u64) -> Self {
        Self {
            start: base,
            end: base.saturating_add(len),
        }
    }
}

/// For each of `targets`, the lowest index of a range in `sources` that overlaps it.
pub(super) fn first_overlapping(sources: &[Span], targets: &[Span]) -> Vec<Option<usize>> {
    let overlapped = overlapped_targets(sources, targets);
    let subset: Vec<Span> = overlapped.iter().map(|&index| targets[index]).collect();
    let mut answers = vec![None; targets.len()];
    if subset.is_empty() {
        return answers;
    }
    for (position, answer) in find_first(sources, &subset, false).into_iter().enumerate() {
        answers[overlapped[position]] = answer;
    }
    answers
}

/// For each of `spans`, the lowest index *before its own* of a range that overlaps it.
pub(super) fn first_earlier_overlapping(spans: &[Span]) -> Vec<Option<usize>> {
    let involved = maybe_overlapping(spans);
    let subset: Vec<Span> = involved.iter().map(|&index| spans[index]).collect();
    let mut answers = vec![None; spans.len()];
    // `involved` is in index order, so "earlier" means the same within the subset.
    for (position, answer) in find_first(&subset, &subset, true).into_iter().enumerate() {
        answers[involved[position]] = answer.map(|earlier| involved[earlier]);
    }
    answers
}

/// The indices (ascending) of every span that may overlap another: a superset of those
/// that do, found in one sorted sweep, so that the exact search runs on few spans (none,
/// in a valid config) instead of all of them.
///
/// In start order, a span overlapping one that starts no later begins before the largest
/// end seen so far, and one overlapping a span that starts no earlier ends after the next
/// start.
fn maybe_overlapping(spans: &[Span]) -> Vec<usize> {
    let mut sorted: Vec<(Span, usize)> = spans.iter().copied().zip(0..).collect();
    sorted.sort_unstable_by_key(|(span, _)| span.start);
    let mut involved = Vec::new();
    let mut largest_end = 0;
    for (position, (span, index)) in sorted.iter().enumerate() {
        let next_start = sorted.get(position + 1).map(|(next, _)| next.start);
        if largest_end > span.start || next_start.is_some_and(|start| start < span.end) {
            involved.push(*index);
        }
        largest_end = largest_end.max(span.end);
    }
    involved.sort_unstable();
    involved
}

/// The indices (ascending) of the targets that some source overlaps: exact, by a binary
/// search in the sources sorted by start, with the largest end of each prefix.
fn overlapped_targets(sources: &[Span], targets: &[Span]) -> Vec<usize> {
    let mut sorted: Vec<Span> = sources.to_vec();
    sorted.sort_unstable_by_key(|span| span.start);
    let mut largest_end = 0;
    let prefix_end: Vec<u64> = sorted
        .iter()
        .map(|span| {
            largest_end = largest_end.max(span.end);
            largest_end
        })
        .collect();
    let overlapped = |target: &Span| {
        // Sources starting before the target ends; one of them must end after it starts.
        let count = sorted.partition_point(|source| source.start < target.end);
        count > 0 && prefix_end[count - 1] > target.start
    };
    (0..targets.len())
        .filter(|&index| overlapped(&targets[index]))
        .collect()
}

/// See the module documentation. With `same`, `sources` and `targets` are one list and a
/// target may only be found by sources before it: each source removes itself as a target
/// before it searches, and earlier targets were removed at their own turn.
fn find_first(sources: &[Span], targets: &[Span], same: bool) -> Vec<Option<usize>> {
    let mut answers = vec![None; targets.len()];
    let mut tree = TargetTree::new(targets);
    let mut found = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        if same {
            tree.remove(tree.position_of[index]);
        }
        tree.take_overlapping(*source, &mut found);
        for target in found.drain(..) {
            answers[target] = Some(index);
        }
    }
    answers
}

/// The targets not yet found, ordered by start, with the largest end of each subtree.
struct TargetTree {
    /// Target indices, sorted by start.
    order: Vec<usize>,
    /// The starts, in the same order (for the binary search).
    starts: Vec<u64>,
    /// Where each target index sits in `order`.
    position_of: Vec<usize>,
    /// Leaves from `leaves` on; node `n` has children `2n` and `2n + 1`. A removed target's
    /// leaf (and every padding leaf) holds 0, which no overlap test accepts: an overlapping
    /// target must end after a source's start, and starts are at least 0.
    max_end: Vec<u64>,
    leaves: usize,
}

impl TargetTree {
    fn new(targets: &[Span]) -> Self {
        let mut order: Vec<usize> = (0..targets.len()).collect();
        order.sort_by_key(|&index| targets[index].start);
        let starts = order.iter().map(|&index| targets[index].start).collect();
        let mut position_of = vec![0; targets.len()];
        for (position, &index) in order.iter().enumerate() {
            position_of[index] = position;
        }
        let leaves = targets.len().next_power_of_two();
        let mut max_end = vec![0; 2 * leaves];
        for (position, &index) in order.iter().enumerate() {
            max_end[leaves + position] = targets[index].end;
        }
        for node in (1..leaves).rev() {
            max_end[node] = max_end[2 * node].max(max_end[2 * node + 1]);
        }
        Self {
            order,
            starts,
            position_of,
            max_end,
            leaves,
        }
    }

    /// Takes out the target at `position`.
    fn remove(&mut self, position: usize) {
        let mut node = self.leaves + position;
        self.max_end[node] = 0;
        while node > 1 {
            node /= 2;
            self.max_end[node] = self.max_end[2 * node].max(self.max_end[2 * node + 1]);
        }
    }

    /// Takes out every target overlapping `source` and appends their indices to `found`.
    fn take_overlapping(&mut self, source: Span, found: &mut Vec<usize>) {
        // Targets starting before the source ends: a prefix of the order.
        let limit = self.starts.partition_point(|&start| start < source.end);
        let before = found.len();
        self.collect(1, 0, self.leaves, limit, source.start, found);
        for slot in &mut found[before..] {
            let position = *slot;
            self.remove(position);
            *slot = self.order[position];
        }
    }

    /// Appends the positions below `node` (covering `[low, high)`) that are before `limit`
    /// and end after `after`.
    fn collect(
        &self,
        node: usize,
        low: usize,
        high: usize,
        limit: usize,
        after: u64,
        found: &mut Vec<usize>,
    ) {
        if low >= limit || self.max_end[node] <= after {
            return;
        }
        if high - low == 1 {
            found.push(low);
            return;
        }
        let middle = (low + high) / 2;
        self.collect(2 * node, low, middle, limit, after, found);
        self.collect(2 * node + 1, middle, high, limit, after, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pairwise search validation used before: the reference answer.
    fn pairwise(sources: &[Span], targets: &[Span], same: bool) -> Vec<Option<usize>> {
        let overlaps = |a: &Span, b: &Span| a.start < b.end && b.start < a.end;
        targets
            .iter()
            .enumerate()
            .map(|(t, target)| {
                let candidates = if same { &sources[..t] } else { sources };
                candidates.iter().position(|s| overlaps(s, target))
            })
            .collect()
    }

    /// A small deterministic generator (xorshift), so the test needs no crate.
    fn spans(seed: &mut u64, count: usize, space: u64) -> Vec<Span> {
        let mut next = || {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *seed
        };
        (0..count)
            .map(|_| {
                let start = next() % space;
                // Some empty, some huge (saturating), most small.
                let len = match next() % 10 {
                    0 => 0,
                    1 => u64::MAX - start / 2,
                    _ => next() % (space / 4 + 1),
                };
                Span::new(start, len)
            })
            .collect()
    }

    #[test]
    fn answers_match_the_pairwise_search() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for round in 0..400 {
            let count = round % 37;
            let space = [16, 64, 1 << 20][round % 3];
            let a = spans(&mut seed, count, space);
            let b = spans(&mut seed, (round * 7) % 23, space);
            assert_eq!(
                first_earlier_overlapping(&a),
                pairwise(&a, &a, true),
                "{a:?}"
            );
            assert_eq!(
                first_overlapping(&a, &b),
                pairwise(&a, &b, false),
                "{a:?} {b:?}"
            );
        }
    }

    #[test]
    fn empty_lists_have_no_overlaps() {
        assert!(first_earlier_overlapping(&[]).is_empty());
        assert_eq!(first_overlapping(&[], &[Span::new(0, 1)]), [None]);
        assert!(first_overlapping(&[Span::new(0, 1)], &[]).is_empty());
    }
}
