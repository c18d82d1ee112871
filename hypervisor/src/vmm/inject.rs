//! A host-injected interrupt on a console line: the hypervisor's version of what the KVM
//! host's wake-up test does from outside the VM (wait for the guest to print a line, let it
//! reach `hlt`, call `AxVM::inject_interrupt_to_vcpu`).
//!
//! Asked for on the kernel command line (QEMU's `-append`):
//!
//! ```text
//! inject=<vector>@<vcpu> after=<text>
//! ```
//!
//! e.g. `inject=0x40@0 after=wakeup: waiting for an interrupt`. `after=` comes last and its
//! text runs to the end of the command line (spaces included). When a line the guest writes
//! to COM1 equals the text, the hypervisor injects the vector into that vCPU's local APIC
//! [`INJECT_DELAY_NANOS`] later (the KVM test's 100 ms, so that the interrupt wakes a halted
//! vCPU rather than finding it running), once. Through `AxVM::inject_interrupt_to_vcpu`'s
//! path: `SvmHal::inject_irq_to_vcpu` delivers to the same APIC.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use spin::Mutex;

use super::irq::VmInterrupts;

/// How long after the line the interrupt comes.
pub const INJECT_DELAY_NANOS: u64 = 100_000_000;
/// The longest line kept while looking for the text.
const MAX_LINE: usize = 256;

/// What `inject=`/`after=` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectRequest {
    /// The vector.
    pub vector: u8,
    /// The vCPU.
    pub vcpu: usize,
    /// The console line that triggers it.
    pub after: String,
}

impl InjectRequest {
    /// The request in `cmdline`, if there is one; an error names what is wrong with it.
    pub fn from_cmdline(cmdline: &str) -> Result<Option<Self>, String> {
        let Some(start) = find_option(cmdline, "inject=") else {
            return Ok(None);
        };
        let spec = cmdline[start..].split(' ').next().unwrap_or("");
        let usage = "expected inject=<vector>@<vcpu> after=<console line>, e.g. inject=0x40@0 after=wakeup: waiting for an interrupt";
        let (vector, vcpu) = spec
            .split_once('@')
            .ok_or_else(|| format!("kernel command line `inject={spec}`: {usage}"))?;
        let vector = parse_number(vector)
            .and_then(|v| u8::try_from(v).ok())
            .filter(|&v| v >= 32)
            .ok_or_else(|| {
                format!("kernel command line `inject={spec}`: the vector must be 0x20-0xff")
            })?;
        let vcpu = parse_number(vcpu).ok_or_else(|| {
            format!("kernel command line `inject={spec}`: the vCPU must be a number")
        })? as usize;
        let after = find_option(cmdline, "after=")
            .map(|at| cmdline[at..].trim_end().to_string())
            .filter(|text| !text.is_empty())
            .ok_or_else(|| {
                format!("kernel command line `inject={spec}` without after=: {usage}")
            })?;
        Ok(Some(Self {
            vector,
            vcpu,
            after,
        }))
    }
}

/// Where the value of `name` (e.g. "inject=") starts, when it is a word of `cmdline`.
fn find_option(cmdline: &str, name: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = cmdline[from..].find(name) {
        let at = from + found;
        if at == 0 || cmdline.as_bytes().get(at - 1) == Some(&b' ') {
            return Some(at + name.len());
        }
        from = at + name.len();
    }
    None
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Watches the guest's console output for the request's line.
pub struct LineTrigger {
    request: InjectRequest,
    irq: Arc<VmInterrupts>,
    line: Mutex<Vec<u8>>,
    fired: AtomicBool,
}

impl LineTrigger {
    /// A trigger for `request` into `irq`.
    pub fn new(request: InjectRequest, irq: Arc<VmInterrupts>) -> Self {
        Self {
            request,
            irq,
            line: Mutex::new(Vec::new()),
            fired: AtomicBool::new(false),
        }
    }

    /// One byte the guest wrote to its console.
    pub fn feed(&self, byte: u8) {
        if self.fired.load(Ordering::Relaxed) {
            return;
        }
        let mut line = self.line.lock();
        match byte {
            b'\n' => {
                let text = core::str::from_utf8(&line)
                    .unwrap_or("")
                    .trim_end_matches('\r');
                if text == self.request.after && !self.fired.swap(true, Ordering::AcqRel) {
                    self.irq.schedule_injection(
                        self.request.vcpu,
                        self.request.vector,
                        INJECT_DELAY_NANOS,
                    );
                }
                line.clear();
            }
            _ if line.len() < MAX_LINE => line.push(byte),
            _ => {}
        }
    }
}
