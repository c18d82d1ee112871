//! Exit statistics (`axvm run --stats`).

use axvm::ExitEvent;

/// Counts of exits (being written).
pub struct ExitStats {
    _vcpu_num: usize,
}

impl ExitStats {
    pub(crate) fn new(vcpu_num: usize) -> Self {
        Self {
            _vcpu_num: vcpu_num,
        }
    }

    pub(crate) fn record(&self, _event: &ExitEvent) {}
}
