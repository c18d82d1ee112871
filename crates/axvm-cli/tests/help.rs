//! `axvm --help` and `axvm run --help`: they succeed and document the subcommands and the
//! exit status.

mod common;

use common::axvm;

#[test]
fn help_lists_run_and_check() {
    let output = axvm(&["--help"]);
    assert_eq!(output.code(), 0, "{output:#?}");
    assert!(output.stdout.contains("run"), "{}", output.stdout);
    assert!(output.stdout.contains("check"), "{}", output.stdout);
    assert!(output.stdout.contains("--verbose"), "{}", output.stdout);
}

#[test]
fn run_help_documents_the_exit_status_and_policy() {
    let output = axvm(&["run", "--help"]);
    assert_eq!(output.code(), 0, "{output:#?}");
    let text = &output.stdout;
    assert!(text.contains("exit status"), "{text}");
    assert!(text.contains("0xf4"), "{text}");
    assert!(text.contains("--unclaimed"), "{text}");
    assert!(text.contains("[CONFIG]"), "{text}");
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let output = axvm(&["frobnicate"]);
    assert_eq!(output.code(), 2, "{output:#?}");
    assert!(output.stderr.contains("frobnicate"), "{output:#?}");
}
