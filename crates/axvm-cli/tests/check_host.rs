//! `axvm check` on hosts that cannot run VMs: where `/dev/kvm` is missing (a private mount
//! namespace with an empty tmpfs over /dev) and where the user may not open it (an
//! unprivileged user, via `setpriv`), it says so, gives the fix, and exits 1. And what it
//! says of 1 GiB pages, which kvm_pvm (and any KVM on a CPU without them) lacks.

mod common;

use std::process::Command;

use common::{require_kvm, skip};

/// Skips the test unless this process may make mount namespaces (`unshare --mount` needs
/// root or a user namespace).
fn require_unshare_mounts() {
    match Command::new("unshare").args(["--mount", "true"]).output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => skip(format!(
            "needs `unshare --mount`, which fails here: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )),
        Err(err) => skip(format!("needs `unshare`: {err}")),
    }
}

fn check_without_dev_kvm_says_so_with_the_fix_and_exits_1() {
    require_unshare_mounts();
    let axvm = env!("CARGO_BIN_EXE_axvm");
    let output = Command::new("unshare")
        .args([
            "--mount",
            "sh",
            "-c",
            "mount -t tmpfs none /dev && exec \"$0\" check",
        ])
        .arg(axvm)
        .env_remove("RUST_LOG")
        .output()
        .expect("cannot run unshare");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let line = stdout
        .lines()
        .find(|line| line.contains("/dev/kvm"))
        .unwrap_or_else(|| panic!("/dev/kvm is not mentioned:\n{stdout}"));
    assert!(line.starts_with("  [FAIL] /dev/kvm: missing"), "{line}");
    assert!(line.contains("modprobe kvm_intel"), "the fix: {line}");
    assert!(line.contains("no VM can run"), "the consequence: {line}");
    assert!(stdout.contains("Problems found"), "{stdout}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn check_as_a_user_without_access_to_dev_kvm_says_so_with_the_fix_and_exits_1() {
    // Without /dev/kvm, `check` says it is missing, not that it is refused.
    require_kvm();
    let axvm = env!("CARGO_BIN_EXE_axvm");
    // As `nobody`, with no supplementary groups: /dev/kvm (root-only or group kvm) refuses.
    let output = match Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(axvm)
        .arg("check")
        .env_remove("RUST_LOG")
        .output()
    {
        Ok(output) => output,
        Err(err) => skip(format!("needs `setpriv`: {err}")),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !stdout.starts_with("Host:") {
        // Not root, or the binary is not reachable by `nobody` in this checkout.
        skip(format!(
            "needs `setpriv` to run axvm as nobody, which failed: {}",
            stderr.trim()
        ));
    }
    let line = stdout
        .lines()
        .find(|line| line.contains("/dev/kvm"))
        .unwrap_or_else(|| panic!("/dev/kvm is not mentioned:\n{stdout}"));
    if line.contains("[ok  ]") {
        skip("needs a /dev/kvm that not every user may open");
    }
    assert!(
        line.starts_with("  [FAIL] /dev/kvm: not accessible"),
        "{line}"
    );
    assert!(line.contains("usermod -aG kvm"), "the fix: {line}");
    assert_eq!(
        output.status.code(),
        Some(1),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Whether KVM here can offer guests 1 GiB pages: not kvm_pvm, and a CPU that has them.
fn host_can_offer_gib_pages() -> bool {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_has_them = cpuinfo
        .lines()
        .filter(|line| line.starts_with("flags"))
        .any(|line| line.split_whitespace().any(|flag| flag == "pdpe1gb"));
    cpu_has_them && !std::path::Path::new("/sys/module/kvm_pvm").exists()
}

fn check_warns_when_guests_get_no_1_gib_pages() {
    require_kvm();
    let output = Command::new(env!("CARGO_BIN_EXE_axvm"))
        .arg("check")
        .env_remove("RUST_LOG")
        .output()
        .expect("cannot run axvm");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|line| line.contains("1 GiB pages (pdpe1gb)"))
        .unwrap_or_else(|| panic!("1 GiB pages are not mentioned:\n{stdout}"));
    if host_can_offer_gib_pages() {
        assert!(line.starts_with("  [ok  ] 1 GiB pages"), "{line}");
        return;
    }
    // A warning, not a failure: VMs that do not use them run.
    assert!(
        line.starts_with("  [warn] 1 GiB pages (pdpe1gb): missing"),
        "{line}"
    );
    for want in ["ArceOS", "NimbOS", "QEMU -accel kvm", "kvm_amd"] {
        assert!(line.contains(want), "{want:?} is not in {line:?}");
    }
    assert!(!stdout.contains("[FAIL] 1 GiB"), "{stdout}");
}

axvm_test_harness::main!(
    check_warns_when_guests_get_no_1_gib_pages,
    check_without_dev_kvm_says_so_with_the_fix_and_exits_1,
    check_as_a_user_without_access_to_dev_kvm_says_so_with_the_fix_and_exits_1,
);
