//! `axvm check` on a host where `/dev/kvm` is missing: run in a private mount namespace with
//! an empty tmpfs over /dev, it says the device is missing, gives the fix, and exits 1.

mod common;

use std::process::Command;

/// Whether this process may make mount namespaces (`unshare --mount` needs root or a user
/// namespace); prints why not and returns false to skip.
fn can_unshare_mounts() -> bool {
    match Command::new("unshare").args(["--mount", "true"]).output() {
        Ok(output) if output.status.success() => true,
        Ok(output) => {
            eprintln!(
                "skipping: `unshare --mount` fails here: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
            false
        }
        Err(err) => {
            eprintln!("skipping: cannot run `unshare`: {err}");
            false
        }
    }
}

#[test]
fn check_without_dev_kvm_says_so_with_the_fix_and_exits_1() {
    if !can_unshare_mounts() {
        return;
    }
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
