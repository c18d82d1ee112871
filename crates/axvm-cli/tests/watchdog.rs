//! `axvm run --watchdog SECS`: a guest polling a port where no device is gets stopped soon
//! after the timeout, with exit status 1 and a report on stderr naming the port; a guest
//! that finishes in time is not affected.

mod common;

use std::time::{Duration, Instant};

use common::{axvm, raw_guest, require_kvm, Scratch};

/// `mov dx, 0x3e5; 1: in al, dx; jmp 1b`: polls a port no device claims, forever.
const PORT_POLL: &[u8] = &[0xba, 0xe5, 0x03, 0xec, 0xeb, 0xfd];
/// `mov al, 42; out 0xf4, al; jmp $`: exit status 42.
const EXIT_42: &[u8] = &[0xb0, 0x2a, 0xe6, 0xf4, 0xeb, 0xfe];

fn watchdog_stops_a_port_poll_and_names_the_port() {
    require_kvm();
    let scratch = Scratch::new("watchdog-poll");
    let config = raw_guest(&scratch, PORT_POLL);
    let start = Instant::now();
    let output = axvm(&[
        "run".as_ref(),
        "--watchdog".as_ref(),
        "1".as_ref(),
        config.as_os_str(),
    ]);
    let elapsed = start.elapsed();
    assert_eq!(output.code(), 1, "{output:#?}");
    assert!(
        elapsed < Duration::from_secs(8),
        "took {elapsed:?}: {output:#?}"
    );
    assert!(
        output
            .stderr
            .contains("guest polls port 0x3e5, where no device is"),
        "{}",
        output.stderr
    );
    assert!(
        output.stderr.contains("vCPU 0: running, real mode"),
        "{}",
        output.stderr
    );
    assert!(!output.stderr.contains("panicked"), "{}", output.stderr);
}

fn watchdog_leaves_a_finishing_guest_alone() {
    require_kvm();
    let scratch = Scratch::new("watchdog-exit");
    let config = raw_guest(&scratch, EXIT_42);
    let start = Instant::now();
    let output = axvm(&[
        "run".as_ref(),
        "--watchdog".as_ref(),
        "5".as_ref(),
        config.as_os_str(),
    ]);
    assert_eq!(output.code(), 42, "{output:#?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "a short run must not wait for the watchdog: {:?}",
        start.elapsed()
    );
    assert!(!output.stderr.contains("watchdog"), "{}", output.stderr);
}

fn watchdog_refuses_a_non_positive_timeout() {
    let output = axvm(&["run", "--watchdog", "0"]);
    assert_eq!(output.code(), 2, "{output:#?}");
    assert!(
        output.stderr.contains("positive number of seconds"),
        "{}",
        output.stderr
    );
}

axvm_test_harness::main!(
    watchdog_stops_a_port_poll_and_names_the_port,
    watchdog_leaves_a_finishing_guest_alone,
    watchdog_refuses_a_non_positive_timeout,
);
