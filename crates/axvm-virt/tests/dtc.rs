//! The generated device trees read by the device-tree compiler, as a kernel's tools would:
//! `dtc` must decompile each without a warning (it checks node names against `reg`,
//! interrupt providers, phandles, clocks). Needs `dtc` (`apt-get install
//! device-tree-compiler`); skipped, saying so, without it unless `AXVM_REQUIRE_KVM=1` or
//! `CI=true` (then its absence fails the test, as for the other tools CI installs).

use std::io::Write;
use std::process::{Command, Stdio};

use axvm_virt::fdt::{generate_fdt, FdtSpec};
use axvm_virt::GicVersion;

fn tools_required() -> bool {
    std::env::var("AXVM_REQUIRE_KVM").as_deref() == Ok("1")
        || std::env::var("CI").as_deref() == Ok("true")
}

/// `dtc -I dtb -O dts` of `blob`: the source text and what dtc printed on stderr, or
/// `None` when dtc is missing and not required.
fn decompile(blob: &[u8]) -> Option<(String, String)> {
    let child = Command::new("dtc")
        .args(["-I", "dtb", "-O", "dts", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) if tools_required() => {
            panic!("cannot run dtc ({err}): apt-get install device-tree-compiler")
        }
        Err(err) => {
            eprintln!("skipped: needs dtc (apt-get install device-tree-compiler): {err}");
            return None;
        }
    };
    child
        .stdin
        .take()
        .expect("dtc's stdin is piped")
        .write_all(blob)
        .expect("dtc reads the blob");
    let output = child.wait_with_output().expect("dtc runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "dtc failed:\n{stderr}");
    Some((String::from_utf8_lossy(&output.stdout).into_owned(), stderr))
}

fn spec(vcpus: usize, gic: GicVersion) -> FdtSpec {
    FdtSpec {
        vcpus,
        ram: vec![(0x4000_0000, 0x2000_0000), (0x1_0000_0000, 0x1000_0000)],
        gic,
        bootargs: Some("console=ttyAMA0 earlycon".into()),
        initrd: Some((0x4800_0000, 0x4810_0000)),
        psci_1_0: true,
    }
}

#[test]
fn dtc_reads_the_trees_without_a_warning() {
    for spec in [
        spec(1, GicVersion::V3),
        spec(20, GicVersion::V3),
        spec(8, GicVersion::V2),
    ] {
        let blob = generate_fdt(&spec).expect("the spec is valid");
        let Some((source, warnings)) = decompile(&blob) else {
            return;
        };
        assert_eq!(
            warnings, "",
            "dtc warned about the tree for {spec:?}:\n{source}"
        );
        for node in [
            "cpus {",
            "intc@8000000 {",
            "pl011@9000000 {",
            "chosen {",
            "psci {",
        ] {
            assert!(source.contains(node), "no {node} in:\n{source}");
        }
        let cpus = source.matches("device_type = \"cpu\"").count();
        assert_eq!(cpus, spec.vcpus, "{source}");
    }
}
