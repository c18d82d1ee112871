//! `axvm run --stats`, `--trace-exits FILE`, and the summary of accesses no device claims,
//! with tiny inline guests: the report and the summary go to stderr, never to stdout, and
//! the trace file holds one JSON line per exit.

mod common;

use common::{axvm, raw_guest, require_kvm, Scratch};

/// Writes 0x41 to COM1's scratch register (port 0x3ff) five times, then exits 0:
/// `mov $5,%cx; mov $0x3ff,%dx; mov $0x41,%al; 1: out %al,(%dx); loop 1b; mov $0,%al;
/// out %al,$0xf4; jmp .`
const SCRATCH_WRITES: &[u8] = &[
    0xb9, 0x05, 0x00, 0xba, 0xff, 0x03, 0xb0, 0x41, 0xee, 0xe2, 0xfd, 0xb0, 0x00, 0xe6, 0xf4, 0xeb,
    0xfe,
];

/// Reads port 0x3e5, which no device claims, three times, then exits 0:
/// `mov $3,%cx; mov $0x3e5,%dx; 1: in (%dx),%al; loop 1b; mov $0,%al; out %al,$0xf4; jmp .`
const UNCLAIMED_READS: &[u8] = &[
    0xb9, 0x03, 0x00, 0xba, 0xe5, 0x03, 0xec, 0xe2, 0xfd, 0xb0, 0x00, 0xe6, 0xf4, 0xeb, 0xfe,
];

fn stats_report_goes_to_stderr() {
    require_kvm();
    let scratch = Scratch::new("stats");
    let config = raw_guest(&scratch, SCRATCH_WRITES);
    let output = axvm(&["run".as_ref(), config.as_os_str(), "--stats".as_ref()]);
    assert_eq!(output.code(), 0, "{output:#?}");
    assert_eq!(output.stdout, "", "{output:#?}");
    assert!(output.stderr.contains("exit statistics: "), "{output:#?}");
    let line = output
        .stderr
        .lines()
        .find(|line| line.contains("io-write") && line.contains("port 0x3ff"))
        .unwrap_or_else(|| panic!("no row for port 0x3ff: {output:#?}"));
    assert!(line.split_whitespace().any(|w| w == "5"), "{line}");
    assert!(!output.stderr.contains("unclaimed"), "{output:#?}");
}

fn trace_exits_writes_json_lines() {
    require_kvm();
    let scratch = Scratch::new("trace");
    let config = raw_guest(&scratch, SCRATCH_WRITES);
    let trace = scratch.path("exits.jsonl");
    let output = axvm(&[
        "run".as_ref(),
        config.as_os_str(),
        "--trace-exits".as_ref(),
        trace.as_os_str(),
    ]);
    assert_eq!(output.code(), 0, "{output:#?}");
    let text = std::fs::read_to_string(&trace).expect("the trace file");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(lines.len(), 6, "{text}");
    assert!(lines[..5]
        .iter()
        .all(|l| l["port"] == 0x3ff && l["kind"] == "io-write"));
    assert_eq!(lines[5]["port"], 0xf4, "{text}");
}

fn trace_exits_into_a_missing_directory_is_refused() {
    let scratch = Scratch::new("trace-refused");
    let config = raw_guest(&scratch, SCRATCH_WRITES);
    let trace = scratch.path("no/such/dir/exits.jsonl");
    let output = axvm(&[
        "run".as_ref(),
        config.as_os_str(),
        "--trace-exits".as_ref(),
        trace.as_os_str(),
    ]);
    assert_eq!(output.code(), 1, "{output:#?}");
    assert!(
        output.stderr.contains("cannot create the exit trace"),
        "{output:#?}"
    );
}

/// The summary line the UNCLAIMED_READS guest leaves.
const UNCLAIMED_SUMMARY: &str =
    "unclaimed: 3 x 1-byte read at port 0x3e5 (nearest device: serial (COM1) at port 0x3f8-0x3ff)";

fn unclaimed_accesses_are_summarised_with_verbose_but_are_no_warning() {
    require_kvm();
    let scratch = Scratch::new("unclaimed-summary");
    let config = raw_guest(&scratch, UNCLAIMED_READS);
    let quiet = axvm(&["run".as_ref(), config.as_os_str()]);
    assert_eq!(quiet.code(), 0, "{quiet:#?}");
    assert_eq!(quiet.stderr, "", "{quiet:#?}");
    let verbose = axvm(&["-v".as_ref(), "run".as_ref(), config.as_os_str()]);
    assert_eq!(verbose.code(), 0, "{verbose:#?}");
    let line = verbose
        .stderr
        .lines()
        .find(|line| line.contains(UNCLAIMED_SUMMARY))
        .unwrap_or_else(|| panic!("no summary with -v: {verbose:#?}"));
    assert!(line.starts_with("[INFO "), "{line}");
    assert!(!verbose.stderr.contains("exit statistics"), "{verbose:#?}");
}

fn unclaimed_accesses_are_part_of_the_stats_report() {
    require_kvm();
    let scratch = Scratch::new("unclaimed-stats");
    let config = raw_guest(&scratch, UNCLAIMED_READS);
    let output = axvm(&["run".as_ref(), config.as_os_str(), "--stats".as_ref()]);
    assert_eq!(output.code(), 0, "{output:#?}");
    let stats = output
        .stderr
        .find("exit statistics: ")
        .unwrap_or_else(|| panic!("no report: {output:#?}"));
    let summary = output
        .stderr
        .find(UNCLAIMED_SUMMARY)
        .unwrap_or_else(|| panic!("no summary with --stats: {output:#?}"));
    assert!(stats < summary, "{output:#?}");
    assert!(!output.stderr.contains("WARN"), "{output:#?}");
}

axvm_test_harness::main!(
    stats_report_goes_to_stderr,
    trace_exits_writes_json_lines,
    trace_exits_into_a_missing_directory_is_refused,
    unclaimed_accesses_are_summarised_with_verbose_but_are_no_warning,
    unclaimed_accesses_are_part_of_the_stats_report,
);
