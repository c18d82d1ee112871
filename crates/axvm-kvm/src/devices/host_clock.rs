//! The host's wall clock, which the platform's CMOS RTC (`axvm_pc::Cmos`) and BIOS Data
//! Area show the guest: the KVM host reads the system time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch on the host's clock (0 if it reads before 1970).
pub(crate) fn host_unix_time() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
