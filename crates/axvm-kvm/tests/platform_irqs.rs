//! Interrupts of the PC platform through KVM's in-kernel irqchip: COM1 raises IRQ 4 through
//! its irqfd, and KVM's PIT ticks on IRQ 0. Each guest programs the PIC to vectors 8-15,
//! points the vector's real-mode IVT entry at a handler that exits with a known status,
//! unmasks its one IRQ, and halts with interrupts on; a missing interrupt leaves it halted
//! until the test's deadline. Skipped (with a note) on hosts without an in-kernel irqchip.
//!
//! Both run under the `Error` policy: the PIC (0x20/0x21), PIT (0x40-0x43) and speaker
//! (0x61) ports must be served by KVM, not fall through to axvm unclaimed.

mod common;

use axvm::device::UnclaimedAccessPolicy;
use axvm_kvm::VmOutcome;
use common::{create, options, raw_config, require_kvm, run_bounded, skip, Console};

/// Enables COM1's THR-empty interrupt and waits for IRQ 4; the handler exits with 0x34:
/// ```text
///     cli
///     mov word [0x30], 0x8000 + handler   ; IVT[0x0c]: IRQ 4 at vector base 8
///     mov word [0x32], 0
///     mov al, 0x11          ; PIC ICW1: ICW4 follows
///     out 0x20, al
///     mov al, 0x08          ; ICW2: vectors 8-15
///     out 0x21, al
///     mov al, 0x04          ; ICW3: slave on IRQ 2
///     out 0x21, al
///     mov al, 0x01          ; ICW4: 8086 mode
///     out 0x21, al
///     mov al, 0xef          ; OCW1: only IRQ 4 unmasked
///     out 0x21, al
///     mov al, 0x08          ; MCR: OUT2, the PC's UART interrupt gate
///     mov dx, 0x3fc
///     out dx, al
///     mov al, 0x02          ; IER: THR empty, which is raised at once
///     mov dx, 0x3f9
///     out dx, al
///     sti
/// 1:  hlt
///     jmp 1b
/// handler:
///     mov al, 0x34
///     out 0xf4, al
///     jmp $
/// ```
const UART_IRQ_GUEST: &[u8] = &[
    0xfa, 0xc7, 0x06, 0x30, 0x00, 0x31, 0x80, 0xc7, 0x06, 0x32, 0x00, 0x00, 0x00, 0xb0, 0x11, 0xe6,
    0x20, 0xb0, 0x08, 0xe6, 0x21, 0xb0, 0x04, 0xe6, 0x21, 0xb0, 0x01, 0xe6, 0x21, 0xb0, 0xef, 0xe6,
    0x21, 0xb0, 0x08, 0xba, 0xfc, 0x03, 0xee, 0xb0, 0x02, 0xba, 0xf9, 0x03, 0xee, 0xfb, 0xf4, 0xeb,
    0xfd, 0xb0, 0x34, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// Reads the speaker port, starts PIT channel 0 and waits for IRQ 0; the handler exits
/// with 0x30:
/// ```text
///     cli
///     mov word [0x20], 0x8000 + handler   ; IVT[8]: IRQ 0 at vector base 8
///     mov word [0x22], 0
///     (PIC ICW1-ICW4 as in UART_IRQ_GUEST)
///     mov al, 0xfe          ; OCW1: only IRQ 0 unmasked
///     out 0x21, al
///     in al, 0x61           ; speaker port: KVM's dummy speaker answers
///     mov al, 0x34          ; PIT: channel 0, low then high byte, mode 2
///     out 0x43, al
///     mov al, 0x00          ; count 0x1000, about 3.4 ms
///     out 0x40, al
///     mov al, 0x10
///     out 0x40, al
///     sti
/// 1:  hlt
///     jmp 1b
/// handler:
///     mov al, 0x30
///     out 0xf4, al
///     jmp $
/// ```
const PIT_GUEST: &[u8] = &[
    0xfa, 0xc7, 0x06, 0x20, 0x00, 0x33, 0x80, 0xc7, 0x06, 0x22, 0x00, 0x00, 0x00, 0xb0, 0x11, 0xe6,
    0x20, 0xb0, 0x08, 0xe6, 0x21, 0xb0, 0x04, 0xe6, 0x21, 0xb0, 0x01, 0xe6, 0x21, 0xb0, 0xfe, 0xe6,
    0x21, 0xe4, 0x61, 0xb0, 0x34, 0xe6, 0x43, 0xb0, 0x00, 0xe6, 0x40, 0xb0, 0x10, 0xe6, 0x40, 0xfb,
    0xf4, 0xeb, 0xfd, 0xb0, 0x30, 0xe6, 0xf4, 0xeb, 0xfe,
];

/// Runs `guest` and returns its outcome; skips the test without an in-kernel irqchip.
fn run_with_irqchip(guest: &[u8]) -> VmOutcome {
    let console = Console::default();
    let vm = create(
        raw_config(),
        guest,
        options(&console, UnclaimedAccessPolicy::Error),
    );
    if !vm.vm().hal().has_irqchip() {
        skip("needs KVM's in-kernel irqchip, which this KVM lacks");
    }
    let result = run_bounded(vm, &console);
    result.unwrap_or_else(|err| panic!("the VM failed: {err}; console {:?}", console.text()))
}

fn com1_raises_irq_4_through_the_irqchip() {
    require_kvm();
    assert_eq!(run_with_irqchip(UART_IRQ_GUEST), VmOutcome::Exited(0x34));
}

fn kvm_pit_ticks_on_irq_0() {
    require_kvm();
    assert_eq!(run_with_irqchip(PIT_GUEST), VmOutcome::Exited(0x30));
}

axvm_test_harness::main!(
    com1_raises_irq_4_through_the_irqchip,
    kvm_pit_ticks_on_irq_0,
);
