//! `--watchdog SECS` on arm64: a thread that stops the VM when its exits show no progress
//! for SECS seconds, and the report of where each vCPU was.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axvm::{AxArchVCpu, AxVM, VMStatus};
use axvm_kvm_arm64::Arm64Hal;
use axvm_linux::sandbox::{spawn_confined, ThreadRole};

use super::observer::RunObserver;

/// The watchdog thread of one run.
pub struct Watchdog {
    thread: JoinHandle<()>,
    done: Arc<AtomicBool>,
    report: Arc<Mutex<Option<String>>>,
}

impl Watchdog {
    /// Watches `vm`'s progress (as `observer` counts it) with patience `limit`; the thread
    /// is confined by seccomp (`ThreadRole::Watcher`) when `sandboxed`.
    pub fn start(
        vm: Arc<AxVM<Arm64Hal>>,
        observer: Arc<RunObserver>,
        limit: Duration,
        sandboxed: bool,
    ) -> Result<Self, String> {
        let done = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(None));
        let (thread_done, thread_report) = (Arc::clone(&done), Arc::clone(&report));
        let builder = std::thread::Builder::new().name("watchdog".into());
        let role = sandboxed.then_some(ThreadRole::Watcher);
        let thread = spawn_confined(builder, role, move || {
            let mut last = (observer.progress.load(Ordering::Relaxed), Instant::now());
            while !thread_done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
                let now = observer.progress.load(Ordering::Relaxed);
                if now != last.0 {
                    last = (now, Instant::now());
                } else if last.1.elapsed() >= limit && vm.status() == VMStatus::Running {
                    let text = stuck_report(&vm, limit);
                    *thread_report.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
                    vm.shutdown();
                    return;
                }
            }
        })
        .map_err(|err| format!("cannot start the watchdog thread: {err}"))?;
        Ok(Self {
            thread,
            done,
            report,
        })
    }

    /// Ends the thread; the report, if the watchdog stopped the VM.
    pub fn finish(self) -> Option<String> {
        self.done.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.report.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// "no progress for N s", then where each vCPU is (its PC and the instructions there when
/// the MMU is off) once it has left the guest.
fn stuck_report(vm: &Arc<AxVM<Arm64Hal>>, limit: Duration) -> String {
    let mut text = format!(
        "VM `{}`: the watchdog stopped it: no progress (console output, or an exit of a new kind or place) for {} s",
        vm.config().name,
        limit.as_secs_f64()
    );
    vm.shutdown();
    // The vCPU threads let go of their vCPUs once kicked out of the guest.
    std::thread::sleep(Duration::from_millis(100));
    for id in 0..vm.vcpu_num() {
        let line = vm
            .try_inspect_vcpu(id, |vcpu| {
                let place = match vcpu.instruction_pointer() {
                    Some(ip) => match vm.disassemble_at_rip(vcpu, 3) {
                        Some(code) => format!("PC {:#x}: {code}", ip.rip),
                        None => format!("PC {:#x} (MMU on: the code there is not read)", ip.rip),
                    },
                    None => "its PC cannot be read".to_string(),
                };
                let registers = vcpu
                    .registers()
                    .map(|all| {
                        all.iter()
                            .take(6)
                            .map(|(name, value)| format!("{name}={value:#x}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default();
                format!("{place}\n    {registers}")
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| "still running (did not leave the guest)".to_string());
        text.push_str(&format!("\n  vCPU {id}: {line}"));
    }
    text
}
