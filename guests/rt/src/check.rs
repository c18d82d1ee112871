//! The one assertion the guests use, with the output format the integration
//! tests look for.

use core::fmt::LowerHex;

use crate::{exit, println};

/// Fails the guest unless `got == expected`: prints
/// `FAIL: <what> expected <x> got <y>` (hex) and exits with `status`.
///
/// Each check passes its own non-zero `status`, so a test's failure message
/// (the exit status alone) already says which check failed.
pub fn check_eq<T: PartialEq + LowerHex>(what: &str, expected: T, got: T, status: u8) {
    if got != expected {
        println!("FAIL: {what} expected {expected:#x} got {got:#x}");
        exit(status);
    }
}
