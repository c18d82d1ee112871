//! The BIOS Data Area and the EBDA a VM starts with, as SeaBIOS leaves them on QEMU's PC
//! with axvm's devices: a real-mode image reads its base memory size there, the fields are
//! in guest memory before the first instruction, the tick count follows the host's clock,
//! and an image loaded over the BDA keeps its own bytes. (The boot-protocol guests print
//! the same fields under axvm and QEMU: `pc_guests.rs`, `scripts/qemu-compat.sh`.)

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::VmOutcome;
use common::{
    create, le_field, options, parse_config, raw_config, raw_config_text, read_guest, require_kvm,
    run_bounded, Console,
};

/// Real-mode code: DS = 0, then the BDA's base memory size (0x413) goes to the exit port,
/// whose low byte is the exit status (639 KiB → 0x7f).
/// ```text
///     xor %ax, %ax
///     mov %ax, %ds
///     mov 0x413, %ax
///     out %al, $0xf4
///     jmp .
/// ```
const EXIT_WITH_BASE_MEMORY: &[u8] = &[
    0x31, 0xc0, 0x8e, 0xd8, 0xa1, 0x13, 0x04, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// Seconds since the Unix epoch now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// The BIOS tick count (1193182/65536 Hz from midnight) at `unix` seconds.
fn ticks_at(unix: u64) -> u64 {
    unix % 86_400 * 1_193_182 / 65_536
}

fn a_real_mode_image_finds_the_bda_seabios_leaves() {
    require_kvm();
    let console = Console::default();
    let before = unix_now();
    let vm = create(
        raw_config(),
        EXIT_WITH_BASE_MEMORY,
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    let after = unix_now();
    let bda = read_guest(vm.vm(), 0x400, 0x100);
    let field = |at: usize, len: usize| le_field(&bda, at, len);
    assert_eq!(field(0x00, 8), 0x3f8, "COM1 only");
    assert_eq!(field(0x08, 6), 0, "no LPT ports");
    assert_eq!(field(0x0e, 2), 0x9fc0, "EBDA segment");
    assert_eq!(
        field(0x10, 2),
        0x0206,
        "equipment: FPU, mouse, one COM port"
    );
    assert_eq!(field(0x13, 2), 639, "base memory KiB");
    assert_eq!(
        [field(0x1a, 2), field(0x1c, 2)],
        [0x1e, 0x1e],
        "keyboard head, tail"
    );
    assert_eq!(
        [field(0x80, 2), field(0x82, 2)],
        [0x1e, 0x3e],
        "keyboard buffer"
    );
    assert_eq!(field(0x7c, 4), 10, "COM1 timeout");
    assert_eq!(bda[0x96], 0x10, "101-key keyboard");
    let ticks = field(0x6c, 4);
    assert!(
        (ticks_at(before)..=ticks_at(after)).contains(&ticks) || ticks_at(after) < ticks_at(before),
        "ticks {ticks} not between {} and {}",
        ticks_at(before),
        ticks_at(after)
    );
    let ebda = read_guest(vm.vm(), 0x9_fc00, 0x400);
    assert_eq!(ebda[0], 1, "the EBDA's size in KiB");
    assert!(ebda[1..].iter().all(|&b| b == 0));

    let outcome = run_bounded(vm, &console);
    assert!(
        matches!(outcome, Ok(VmOutcome::Exited(0x7f))),
        "{outcome:?}: the guest read no 639 KiB; console {:?}",
        console.text()
    );
}

fn an_image_loaded_over_the_bda_keeps_its_bytes() {
    require_kvm();
    // A raw image at 0 running to 0x600, entered at 0x500 (after the BDA).
    let mut image = vec![0xa5; 0x500];
    image.extend_from_slice(EXIT_WITH_BASE_MEMORY);
    image.resize(0x600, 0);
    let config = parse_config(&raw_config_text(0x10_0000, 0, 0x500));
    let console = Console::default();
    let vm = create(
        config,
        &image,
        options(&console, UnclaimedAccessPolicy::Ignore),
    );
    assert_eq!(read_guest(vm.vm(), 0x400, 0x100), image[0x400..0x500]);
    assert_eq!(
        read_guest(vm.vm(), 0x9_fc00, 1),
        [0],
        "no EBDA without a BDA"
    );
    let outcome = run_bounded(vm, &console);
    assert!(
        matches!(outcome, Ok(VmOutcome::Exited(0xa5))),
        "{outcome:?}: the guest read its own byte at 0x413"
    );
}

axvm_test_harness::main!(
    a_real_mode_image_finds_the_bda_seabios_leaves,
    an_image_loaded_over_the_bda_keeps_its_bytes,
);
