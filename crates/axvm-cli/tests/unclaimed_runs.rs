//! Accesses no device claims are logged and summarised per run of adjacent addresses
//! (issue 11, item 9): a 1 KiB copy into memory that is neither RAM nor a device once gave
//! a line per byte; now it gives one line with its range and count, both in the debug log
//! (`-vv`) and in the summary at stop (`-v`, `--stats`). Separate runs stay separate lines,
//! and a polled port is one line with its count. Nothing of it is a warning.

mod common;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use common::{axvm, raw_guest, replace, require_kvm, Output, Scratch};

/// Real mode: DS = 0, ES = 0xa000, then `rep movsb` of 1 KiB from 0x8000 (the guest's own
/// code) to 0xa0000 (no RAM, no device), then exit 0. Ends at 0x8014.
const COPY_1K: &[u8] = &[
    0x31, 0xc0, // xor ax, ax
    0x8e, 0xd8, // mov ds, ax
    0xb8, 0x00, 0xa0, // mov ax, 0xa000
    0x8e, 0xc0, // mov es, ax
    0xbe, 0x00, 0x80, // mov si, 0x8000
    0x31, 0xff, // xor di, di
    0xb9, 0x00, 0x04, // mov cx, 0x400
    0xfc, // cld
    0xf3, 0xa4, // rep movsb
];

/// After [`COPY_1K`]: `rep stosb` of 256 bytes going down from 0xa80ff (a second run, far
/// from the first).
const FILL_256_DOWN: &[u8] = &[
    0xbf, 0xff, 0x80, // mov di, 0x80ff
    0xb9, 0x00, 0x01, // mov cx, 0x100
    0xb0, 0x55, // mov al, 0x55
    0xfd, // std
    0xf3, 0xaa, // rep stosb
    0xfc, // cld
];

/// `in al, 0x99` (no device there) 500 times.
const POLL_PORT_500: &[u8] = &[
    0xb9, 0xf4, 0x01, // mov cx, 500
    0xe4, 0x99, // in al, 0x99
    0xe2, 0xfc, // loop (back to the in)
];

/// Exit status 0.
const EXIT_0: &[u8] = &[
    0x31, 0xc0, // xor ax, ax
    0xe6, 0xf4, // out 0xf4, al
];

/// A raw real-mode guest of `parts` with RAM below 512 KiB (so that 0xa0000 is a hole) and
/// a scratch device at 0xb0000, the nearest device to the hole.
fn guest(scratch: &Scratch, parts: &[&[u8]]) -> PathBuf {
    let config = raw_guest(scratch, &parts.concat());
    let text = std::fs::read_to_string(&config).expect("config");
    let text = replace(
        &text,
        "[0x0, 0x10_0000, 0x7, 0],",
        "[0x0, 0x8_0000, 0x7, 0],",
    );
    let text = replace(
        &text,
        "emu_devices = []",
        "emu_devices = [[\"scratch\", 0xb_0000, 0x1000, 0, 0x0, []]]",
    );
    scratch.write("vm.toml", text)
}

fn run_with(flags: &[&str], config: &Path) -> Output {
    let mut args: Vec<&OsStr> = flags.iter().map(OsStr::new).collect();
    args.push(config.as_os_str());
    let output = axvm(&args);
    assert_eq!(output.code(), 0, "{output:#?}");
    assert!(!output.stderr.contains("WARN"), "{output:#?}");
    output
}

/// The debug log's unclaimed-access lines (`-vv`), from "vCPU" on.
fn live_lines(config: &Path) -> Vec<String> {
    let output = run_with(&["-vv", "run"], config);
    output
        .stderr
        .lines()
        .filter(|line| line.starts_with("[DEBUG ") && line.contains("where no device is"))
        .map(|line| {
            let at = line
                .find("vCPU")
                .unwrap_or_else(|| panic!("no vCPU: {line}"));
            line[at..].to_string()
        })
        .collect()
}

/// The summary's lines (`-v`), from "unclaimed:" on.
fn summary_lines(config: &Path) -> Vec<String> {
    let output = run_with(&["-v", "run"], config);
    output
        .stderr
        .lines()
        .filter_map(|line| line.find("unclaimed: ").map(|at| line[at..].to_string()))
        .collect()
}

fn a_copy_into_a_hole_is_one_line_with_its_range_and_count() {
    require_kvm();
    let scratch = Scratch::new("unclaimed-copy");
    let config = guest(&scratch, &[COPY_1K, EXIT_0]);
    let nearest = "(nearest device: scratch at MMIO 0xb0000-0xb0fff)";
    assert_eq!(
        summary_lines(&config),
        [format!(
            "unclaimed: 1024 x 1-byte write at MMIO 0xa0000-0xa03ff {nearest}"
        )]
    );
    let live = live_lines(&config);
    assert_eq!(live.len(), 1, "{live:#?}");
    for want in [
        "vCPU 0: 1024 x 1-byte write at MMIO 0xa0000-0xa03ff, where no device is; reads as zero, writes are dropped",
        "the first from the guest at RIP 0x8012 (real mode): rep movsb",
        "nearest device: `scratch` at MMIO 0xb0000..0xb1000",
    ] {
        assert!(live[0].contains(want), "{want:?} is not in {}", live[0]);
    }
    // RIP stays at a repeating `rep movsb`: it is the access's own instruction.
    assert!(
        !live[0].contains("the instruction after the access"),
        "{}",
        live[0]
    );
    // --stats has the same line.
    let stats = run_with(&["run", "--stats"], &config);
    assert!(
        stats
            .stderr
            .contains("unclaimed: 1024 x 1-byte write at MMIO 0xa0000-0xa03ff"),
        "{stats:#?}"
    );
    // Under --unclaimed error the first byte stops the VM, named.
    let error = axvm(&[
        OsStr::new("run"),
        OsStr::new("--unclaimed"),
        OsStr::new("error"),
        config.as_os_str(),
    ]);
    let line = common::assert_refused(&error, "write at MMIO 0xa0000 (1-byte)");
    assert!(line.contains("vCPU 0"), "{line}");
}

fn two_runs_apart_are_two_lines() {
    require_kvm();
    let scratch = Scratch::new("unclaimed-two-runs");
    let config = guest(&scratch, &[COPY_1K, FILL_256_DOWN, EXIT_0]);
    let summary = summary_lines(&config);
    assert_eq!(summary.len(), 2, "{summary:#?}");
    assert!(
        summary[0].starts_with("unclaimed: 1024 x 1-byte write at MMIO 0xa0000-0xa03ff ("),
        "{summary:#?}"
    );
    assert!(
        summary[1].starts_with("unclaimed: 256 x 1-byte write at MMIO 0xa8000-0xa80ff ("),
        "{summary:#?}"
    );
    let live = live_lines(&config);
    assert_eq!(live.len(), 2, "{live:#?}");
    assert!(
        live[0].starts_with("vCPU 0: 1024 x 1-byte write at MMIO 0xa0000-0xa03ff,"),
        "{live:#?}"
    );
    assert!(
        live[1].starts_with("vCPU 0: 256 x 1-byte write at MMIO 0xa8000-0xa80ff,"),
        "{live:#?}"
    );
    assert!(live[1].contains("rep stosb"), "{live:#?}");
}

fn a_polled_port_is_one_line_with_its_count() {
    require_kvm();
    let scratch = Scratch::new("unclaimed-poll");
    let config = guest(&scratch, &[POLL_PORT_500, EXIT_0]);
    let summary = summary_lines(&config);
    assert_eq!(summary.len(), 1, "{summary:#?}");
    assert!(
        summary[0]
            .starts_with("unclaimed: 500 x 1-byte read at port 0x99 (nearest device: CMOS RTC"),
        "{summary:#?}"
    );
    let live = live_lines(&config);
    assert_eq!(live.len(), 1, "{live:#?}");
    for want in [
        "vCPU 0: 500 x 1-byte read at port 0x99, where no device is",
        "in al,99h",
        "nearest device: `CMOS RTC`",
    ] {
        assert!(live[0].contains(want), "{want:?} is not in {}", live[0]);
    }
}

axvm_test_harness::main!(
    a_copy_into_a_hole_is_one_line_with_its_range_and_count,
    two_runs_apart_are_two_lines,
    a_polled_port_is_one_line_with_its_count,
);
