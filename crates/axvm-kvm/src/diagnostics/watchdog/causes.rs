//! Causes that one vCPU's snapshot shows whatever stopped the VM (the watchdog, every vCPU
//! halted, a triple fault): its code is mapped with a page size the host does not offer, its
//! interrupt table cannot deliver an exception, or it called a BIOS service that is not
//! there.

use super::guest_tables::{bios_service, IdtState};
use super::snapshot::VcpuSnapshot;

/// The entry point `entry` holds zeros and the guest printed nothing: it never ran its code.
pub(crate) fn entry_cause(entry: u64, raw_load: Option<u64>) -> String {
    let loaded = raw_load
        .map(|load| format!(" (the kernel image was loaded at {load:#x})"))
        .unwrap_or_default();
    format!(
        "entry point {entry:#x} holds zeros: no image was loaded there{loaded}; a VM boot hang: check kernel.entry_point and kernel_load_addr"
    )
}

/// vCPU `id` stands at zeros.
pub(crate) fn zeros_cause(id: usize, rip: u64) -> String {
    format!(
        "vCPU {id} executes zeros at RIP {rip:#x}: no code was loaded there (a wrong entry point, or a jump into memory the image does not cover); a VM boot hang"
    )
}

/// The causes in vCPU `id`'s interrupt table and stack, the most fundamental first.
pub(crate) fn table_causes(id: usize, snapshot: &VcpuSnapshot) -> Vec<String> {
    let mut causes = Vec::new();
    if let Some(page) = snapshot.gib_page {
        causes.push(format!(
            "vCPU {id}'s page tables map RIP {:#x} with a 1 GiB page (guest-physical {page:#x}), but this host's KVM offers no 1 GiB pages (CPUID pdpe1gb clear, as `axvm check` warns): every access through that page faults on its reserved PS bit, so the code there cannot even be fetched; run the guest where KVM offers 1 GiB pages (kvm_intel or kvm_amd on a CPU with pdpe1gb), or map with 2 MiB pages",
            snapshot.linear_rip
        ));
    }
    match snapshot.idt {
        IdtState::Empty { base, limit } => causes.push(format!(
            "vCPU {id}'s IDT is empty (IDTR base {base:#x}, limit {limit:#x}): no exception or interrupt can be delivered, so the first one triple-faults; load an IDT (lidt) before anything can fault"
        )),
        IdtState::ZeroGates { base, limit } => causes.push(format!(
            "vCPU {id}'s IDT at {base:#x} (limit {limit:#x}) holds only zeros in its exception gates: no exception can be delivered, so the first one triple-faults; fill the IDT before loading it, or check the address given to lidt"
        )),
        IdtState::Unremarkable => {}
    }
    if let Some(call) = snapshot.bios_call {
        causes.push(format!(
            "vCPU {id} called int {:#x} ({}) at {:#x}, but IVT vector {:#x} is 0000:0000: the guest expects BIOS services axvm does not provide (no BIOS runs unless the config loads one at kernel.bios_load_addr); print through COM1 (port 0x3f8) instead",
            call.vector,
            bios_service(call.vector, call.ah),
            call.at,
            call.vector
        ));
    }
    causes
}
