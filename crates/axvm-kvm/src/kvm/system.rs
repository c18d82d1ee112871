//! Whether this Linux host can run VMs, and why not: the "environmental issues" of the
//! troubleshooting guide, answered by looking instead of by guessing.

use std::fmt;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::path::Path;

use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::{Cap, Kvm};

use super::cpuid::offers_gib_pages;
use crate::error::KvmError;

/// The KVM device.
pub const KVM_DEVICE: &str = "/dev/kvm";

/// KVM's stable API version; every kernel since 2.6.22 reports it.
const KVM_API_VERSION: i32 = 12;

/// A capability axvm asks KVM for, and what breaks without it.
pub(crate) struct Capability {
    pub(crate) cap: Cap,
    pub(crate) name: &'static str,
    pub(crate) required: bool,
    pub(crate) without_it: &'static str,
}

/// What axvm uses from KVM.
pub(crate) const CAPABILITIES: &[Capability] = &[
    Capability {
        cap: Cap::UserMemory,
        name: "KVM_CAP_USER_MEMORY",
        required: true,
        without_it: "guest RAM cannot be given to the VM",
    },
    Capability {
        cap: Cap::ImmediateExit,
        name: "KVM_CAP_IMMEDIATE_EXIT",
        required: true,
        without_it: "a shutdown could wait forever on a running vCPU",
    },
    Capability {
        cap: Cap::X86UserSpaceMsr,
        name: "KVM_CAP_X86_USER_SPACE_MSR",
        required: true,
        without_it: "emulated MSRs never reach axvm's devices",
    },
    Capability {
        cap: Cap::ExtCpuid,
        name: "KVM_CAP_EXT_CPUID",
        required: true,
        without_it: "vCPUs cannot be given CPUID (and their APIC ids)",
    },
    Capability {
        cap: Cap::Irqchip,
        name: "KVM_CAP_IRQCHIP",
        required: false,
        without_it: "no in-kernel local APIC: HLT exits to axvm and interrupts cannot be injected",
    },
    Capability {
        cap: Cap::ReadonlyMem,
        name: "KVM_CAP_READONLY_MEM",
        required: false,
        without_it: "read-only (ROM) memory regions are refused",
    },
];

/// One finding about the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostFinding {
    /// What was checked.
    pub subject: String,
    /// Whether it is fine. A finding that is not fine and not `fatal` is a warning.
    pub ok: bool,
    /// Whether VMs cannot run because of it.
    pub fatal: bool,
    /// What was found, and what to do about it.
    pub detail: String,
}

impl fmt::Display for HostFinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = match (self.ok, self.fatal) {
            (true, _) => "ok  ",
            (false, false) => "warn",
            (false, true) => "FAIL",
        };
        write!(f, "[{mark}] {}: {}", self.subject, self.detail)
    }
}

/// Everything `axvm check` reports about the host.
#[derive(Clone, Debug, Default)]
pub struct HostReport {
    /// The findings, in the order they were checked.
    pub findings: Vec<HostFinding>,
}

impl HostReport {
    /// Whether VMs can run here.
    pub fn can_run_vms(&self) -> bool {
        self.findings.iter().all(|finding| !finding.fatal)
    }

    fn push(&mut self, subject: &str, ok: bool, fatal: bool, detail: impl Into<String>) {
        self.findings.push(HostFinding {
            subject: subject.into(),
            ok,
            fatal,
            detail: detail.into(),
        });
    }
}

/// Examines the host: the KVM device, its API version, each capability axvm uses, and
/// software-nested KVM. It never fails: a host without KVM gets a report saying what to
/// do (what `axvm check` prints).
///
/// ```
/// let report = axvm_kvm::check_host();
/// for finding in &report.findings {
///     println!("{finding}"); // e.g. "[ok  ] /dev/kvm: present and accessible"
/// }
/// if !report.can_run_vms() {
///     eprintln!("this host cannot run VMs");
/// }
/// ```
pub fn check_host() -> HostReport {
    let mut report = HostReport::default();
    if !Path::new(KVM_DEVICE).exists() {
        report.push(KVM_DEVICE, false, true, "missing: load the KVM module (`modprobe kvm_intel` or `modprobe kvm_amd`) and enable virtualization (VT-x/AMD-V) in the firmware; in a cloud VM, enable nested virtualization");
        return report;
    }
    if let Err(err) = OpenOptions::new().read(true).write(true).open(KVM_DEVICE) {
        let detail = if err.kind() == ErrorKind::PermissionDenied {
            "not accessible: add your user to the `kvm` group (`sudo usermod -aG kvm $USER`, then log in again) or run as root".to_string()
        } else {
            format!("cannot be opened: {err}")
        };
        report.push(KVM_DEVICE, false, true, detail);
        return report;
    }
    report.push(KVM_DEVICE, true, false, "present and accessible");
    let kvm = match Kvm::new() {
        Ok(kvm) => kvm,
        Err(err) => {
            report.push("KVM", false, true, format!("cannot be opened: {err}"));
            return report;
        }
    };
    let version = kvm.get_api_version();
    report.push(
        "KVM API version",
        version == KVM_API_VERSION,
        version != KVM_API_VERSION,
        format!("{version} (axvm needs {KVM_API_VERSION})"),
    );
    for capability in CAPABILITIES {
        let present = kvm.check_extension(capability.cap);
        let detail = if present {
            "present".to_string()
        } else {
            format!("missing: {}", capability.without_it)
        };
        report.push(
            capability.name,
            present,
            !present && capability.required,
            detail,
        );
    }
    gib_pages_finding(&kvm, &mut report);
    if is_software_nested_kvm() {
        report.push("KVM implementation", false, false, "kvm_pvm (software nested KVM, no VT-x/AMD-V): guest user-mode code runs at native speed, but guest kernel-mode and real-mode code is emulated (about 1 µs per instruction), each exit costs several µs, and the emulator does not run SSE instructions at CPL0. Unmodified Linux kernels do not boot");
    }
    report
}

/// The subject of the 1 GiB pages finding.
const GIB_PAGES: &str = "1 GiB pages (pdpe1gb)";

/// Whether guests get 1 GiB pages here: a warning when they do not, since kernels that map
/// with them (ArceOS, NimbOS) then fault at boot.
fn gib_pages_finding(kvm: &Kvm, report: &mut HostReport) {
    let Ok(supported) = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES) else {
        return;
    };
    if offers_gib_pages(&supported) {
        report.push(
            GIB_PAGES,
            true,
            false,
            "offered to guests (CPUID 0x80000001 EDX bit 26)",
        );
    } else {
        report.push(GIB_PAGES, false, false, "missing: this KVM gives guests no 1 GiB pages (CPUID 0x80000001 EDX bit 26 clear), so kernels that map memory with them at boot, such as ArceOS and NimbOS, fault there (QEMU -accel kvm fails the same way on this host); run those on a host whose KVM offers them (kvm_intel or kvm_amd on a CPU with pdpe1gb)");
    }
}

/// Whether KVM here is kvm_pvm, which emulates guest kernel mode in software.
pub fn is_software_nested_kvm() -> bool {
    Path::new("/sys/module/kvm_pvm").exists()
}

/// Refuses to go on when the host lacks something VMs cannot run without, with the reason.
pub(crate) fn require_capabilities(kvm: &Kvm) -> Result<(), KvmError> {
    for capability in CAPABILITIES.iter().filter(|c| c.required) {
        if !kvm.check_extension(capability.cap) {
            return Err(KvmError::MissingCapability {
                capability: capability.name,
                without_it: capability.without_it,
            });
        }
    }
    Ok(())
}
