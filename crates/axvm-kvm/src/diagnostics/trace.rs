//! The exit trace (`axvm run --trace-exits FILE`).

use std::io::Write;
use std::sync::Mutex;

use axvm::ExitEvent;

use crate::kvm::KvmVCpu;

/// Writes exits as JSON lines (being written).
pub struct ExitTrace {
    _out: Mutex<Box<dyn Write + Send>>,
}

impl ExitTrace {
    pub(crate) fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            _out: Mutex::new(out),
        }
    }

    pub(crate) fn record(&self, _event: &ExitEvent, _vcpu: &mut KvmVCpu) {}
}
