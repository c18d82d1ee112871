//! SVM on every CPU: enabled at bring-up with `axvm_svm::cpu::enable_svm` (EFER.SVME and a
//! host save area page of the CPU's own), and one line per CPU saying what it offers. The
//! detection and the checks are the backend's; this file gives it the page and remembers
//! whether every CPU could.

use core::sync::atomic::{AtomicBool, Ordering};

use axvm_svm::cpu::{enable_svm, SvmFeatures};

use crate::hv_println;
use crate::mm::frames;

/// Whether SVM could be enabled on every CPU that came up so far.
static EVERY_CPU_USABLE: AtomicBool = AtomicBool::new(true);

/// Enables SVM on this CPU (`cpu`, for the message) and prints what it offers; on failure
/// prints why, and [`usable`] turns false.
pub fn enable(cpu: usize) {
    let Some(host_save_area) = frames::alloc(1) else {
        hv_println!("cpu {cpu}: SVM not enabled: no frame left for its host save area");
        EVERY_CPU_USABLE.store(false, Ordering::Release);
        return;
    };
    // SAFETY: bring-up runs at CPL 0, and the page is this CPU's for as long as it runs.
    match unsafe { enable_svm(host_save_area) } {
        Ok(features) => report(cpu, &features),
        Err(why) => {
            frames::free(host_save_area, 1);
            hv_println!("cpu {cpu}: SVM not enabled: {why}");
            EVERY_CPU_USABLE.store(false, Ordering::Release);
        }
    }
}

/// Whether guests can run: SVM is enabled on every CPU.
pub fn usable() -> bool {
    EVERY_CPU_USABLE.load(Ordering::Acquire)
}

fn report(cpu: usize, features: &SvmFeatures) {
    let yes_no = |flag: bool| if flag { "yes" } else { "no" };
    hv_println!(
        "cpu {cpu}: SVM enabled ({} ASIDs), NPT {}, NRIPS {}, decode assists {}",
        features.asids,
        yes_no(features.nested_paging),
        yes_no(features.nrip_save),
        yes_no(features.decode_assists),
    );
}
