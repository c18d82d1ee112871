//! The harness of axvm's integration tests that may not be able to run here: a test that
//! needs `/dev/kvm` (or a host tool) and finds it missing is reported as *ignored, with the
//! reason*, and counted in the summary line, instead of passing without having run.
//!
//! Rust's built-in test harness decides what is ignored when the test binary is built; a
//! machine without KVM is only known when the tests run (the same executables run on this
//! host and inside a nested VM). So these test binaries use [`libtest_mimic`], which has
//! the same command line and output as the built-in harness, and a test may skip itself at
//! run time:
//!
//! ```text
//! // In Cargo.toml: [[test]] name = "exits", harness = false
//! fn exit_status_is_the_outcome() {
//!     axvm_test_harness::require_kvm();
//!     // ... the test ...
//! }
//!
//! axvm_test_harness::main!(exit_status_is_the_outcome);
//! ```
//!
//! A test file with `harness = false` must list every test in [`main!`]: `#[test]` does
//! nothing there (a test in this crate fails when a file mixes the two).
//!
//! With `AXVM_REQUIRE_KVM=1` a missing `/dev/kvm` fails the test instead: CI must not pass
//! by skipping.

use std::fs::OpenOptions;
use std::panic::{catch_unwind, resume_unwind};

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// The environment variable that turns a missing `/dev/kvm` into a failure.
pub const REQUIRE_KVM: &str = "AXVM_REQUIRE_KVM";

/// Why a test skipped itself; carried by the unwinding that [`skip`] starts.
#[derive(Debug)]
pub struct Skipped(pub String);

/// Ends the calling test as ignored, with `reason` ("needs iasl: ...").
///
/// It unwinds without running the panic hook, so nothing is printed as a failure; the
/// harness of [`main!`] reports the test as ignored. Outside that harness (in a `#[test]`)
/// the test would fail, which is the honest outcome there.
pub fn skip(reason: impl Into<String>) -> ! {
    resume_unwind(Box::new(Skipped(reason.into())))
}

/// Returns when `/dev/kvm` can be opened for reading and writing. Otherwise skips the
/// calling test, or fails it when `AXVM_REQUIRE_KVM=1`.
pub fn require_kvm() {
    if let Err(err) = OpenOptions::new().read(true).write(true).open("/dev/kvm") {
        if std::env::var(REQUIRE_KVM).as_deref() == Ok("1") {
            panic!("{REQUIRE_KVM}=1 but /dev/kvm is not available: {err}");
        }
        skip(format!("needs /dev/kvm: {err}"));
    }
}

/// Runs the `tests` (name, function) as the command line asks, prints libtest's summary
/// with skipped tests counted as ignored, and exits with libtest's status.
pub fn run(tests: &[(&'static str, fn())]) -> ! {
    let args = Arguments::from_args();
    let trials = tests
        .iter()
        .map(|&(name, test)| Trial::ignorable_test(name, move || outcome(test)))
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

/// Runs `test`: completed, skipped (ignored with the reason), or failed (its panic goes on
/// to libtest-mimic, which reports it with the message).
fn outcome(test: fn()) -> Result<Completion, Failed> {
    match catch_unwind(test) {
        Ok(()) => Ok(Completion::Completed),
        Err(payload) => match payload.downcast::<Skipped>() {
            Ok(skipped) => Ok(Completion::ignored_with(skipped.0)),
            Err(payload) => resume_unwind(payload),
        },
    }
}

/// The `main` of a test binary with `harness = false`: runs the listed test functions.
#[macro_export]
macro_rules! main {
    ($($test:ident),* $(,)?) => {
        fn main() {
            $crate::run(&[$((stringify!($test), $test as fn())),*])
        }
    };
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every test file that lists its tests in `main!` is built with `harness = false`
    /// (else `main!` is never called) and has no `#[test]` (which would never run).
    #[test]
    fn harnessed_test_files_are_declared_and_use_no_test_attribute() {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut harnessed = 0;
        for krate in std::fs::read_dir(&crates).expect("crates/ lists") {
            let krate = krate.expect("a crates/ entry").path();
            let Ok(files) = std::fs::read_dir(krate.join("tests")) else {
                continue;
            };
            let manifest = std::fs::read_to_string(krate.join("Cargo.toml")).unwrap_or_default();
            for file in files {
                let path = file.expect("a tests/ entry").path();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if !text.contains("axvm_test_harness::main!") {
                    continue;
                }
                harnessed += 1;
                assert!(
                    !text.contains("#[test]"),
                    "{path:?} mixes #[test] with main!"
                );
                let stem = path
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default();
                let entry = format!("[[test]]\nname = \"{stem}\"\nharness = false\n");
                assert!(
                    manifest.contains(&entry),
                    "{:?} lacks `{entry}`",
                    krate.join("Cargo.toml")
                );
            }
        }
        assert!(harnessed > 0, "no test file under {crates:?} uses main!");
    }

    #[test]
    fn a_skipped_test_is_ignored_with_its_reason_and_a_panic_still_fails() {
        fn skips() {
            super::skip("needs a unicorn");
        }
        fn passes() {}
        fn fails() {
            panic!("expected failure");
        }
        match super::outcome(skips) {
            Ok(super::Completion::Ignored { reason }) => {
                assert_eq!(reason.as_deref(), Some("needs a unicorn"));
            }
            _ => panic!("a skip is not reported as ignored"),
        }
        assert!(matches!(
            super::outcome(passes),
            Ok(super::Completion::Completed)
        ));
        let failed = std::panic::catch_unwind(|| super::outcome(fails));
        assert!(failed.is_err(), "a panic must go on to the harness");
    }
}
