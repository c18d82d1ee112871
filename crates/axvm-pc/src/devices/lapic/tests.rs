use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::*;

/// A host that records what the APICs asked of it.
#[derive(Default)]
struct Recorder {
    current: AtomicUsize,
    now: AtomicU64,
    pending: Mutex<Vec<usize>>,
    started: Mutex<Vec<(usize, u8)>>,
}

impl ApicHost for &'static Recorder {
    fn current_vcpu(&self) -> Option<usize> {
        Some(self.current.load(Ordering::Relaxed))
    }
    fn now_nanos(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
    fn interrupt_pending(&self, vcpu: usize) {
        self.pending.lock().push(vcpu);
    }
    fn start_up(&self, vcpu: usize, vector: u8) {
        self.started.lock().push((vcpu, vector));
    }
}

fn apics(vcpus: usize) -> (LocalApics<&'static Recorder>, &'static Recorder) {
    let host: &'static Recorder = alloc::boxed::Box::leak(alloc::boxed::Box::default());
    (LocalApics::new(vcpus, host), host)
}

fn write(apics: &LocalApics<&'static Recorder>, vcpu: usize, offset: u64, value: u32) {
    apics.host().current.store(vcpu, Ordering::Relaxed);
    apics
        .handle_write(
            DeviceOffset::first(offset),
            AccessWidth::Dword,
            u64::from(value),
        )
        .unwrap();
}

fn read(apics: &LocalApics<&'static Recorder>, vcpu: usize, offset: u64) -> u32 {
    apics.host().current.store(vcpu, Ordering::Relaxed);
    apics
        .handle_read(DeviceOffset::first(offset), AccessWidth::Dword)
        .unwrap() as u32
}

fn enable(apics: &LocalApics<&'static Recorder>, vcpu: usize) {
    write(apics, vcpu, reg::SVR, SVR_ENABLE | 0xff);
}

#[test]
fn each_vcpu_sees_its_own_apic_id() {
    let (apics, _) = apics(3);
    assert_eq!(read(&apics, 0, reg::ID), 0);
    assert_eq!(read(&apics, 2, reg::ID), 2 << 24);
    assert_eq!(read(&apics, 1, reg::VERSION), VERSION);
}

#[test]
fn a_fixed_ipi_reaches_its_physical_destination_and_wakes_it() {
    let (apics, host) = apics(2);
    enable(&apics, 1);
    write(&apics, 0, reg::ICR_HIGH, 1 << 24);
    write(&apics, 0, reg::ICR_LOW, (1 << 14) | 0x41);
    assert_eq!(
        read(&apics, 0, reg::ICR_LOW) & (1 << 12),
        0,
        "delivered at once"
    );
    assert_eq!(*host.pending.lock(), [1]);
    assert!(apics.has_interrupt(1));
    assert_eq!(apics.take_interrupt(1), Some(0x41));
    assert_eq!(apics.take_interrupt(0), None);
}

#[test]
fn shorthands_self_and_all_excluding_self() {
    let (apics, _) = apics(3);
    for vcpu in 0..3 {
        enable(&apics, vcpu);
    }
    write(&apics, 1, reg::ICR_LOW, (1 << 18) | 0x50);
    assert_eq!(apics.take_interrupt(1), Some(0x50));
    write(&apics, 1, reg::ICR_LOW, (3 << 18) | 0x51);
    assert_eq!(apics.take_interrupt(0), Some(0x51));
    assert_eq!(apics.take_interrupt(2), Some(0x51));
    assert_eq!(apics.take_interrupt(1), None);
}

#[test]
fn init_then_startup_starts_the_target_at_the_vector() {
    let (apics, host) = apics(2);
    write(&apics, 0, reg::ICR_HIGH, 1 << 24);
    write(&apics, 0, reg::ICR_LOW, (5 << 8) | (1 << 14));
    write(&apics, 0, reg::ICR_LOW, (6 << 8) | (1 << 14) | 0x08);
    assert_eq!(*host.started.lock(), [(1, 0x08)]);
}

#[test]
fn a_disabled_apic_drops_fixed_interrupts() {
    let (apics, host) = apics(1);
    assert!(!apics.deliver_to_vcpu(0, 0x40));
    assert!(host.pending.lock().is_empty());
    enable(&apics, 0);
    assert!(apics.deliver_to_vcpu(0, 0x40));
    assert!(!apics.deliver_to_vcpu(5, 0x40), "no vCPU 5");
}

#[test]
fn logical_flat_destinations_match_the_ldr() {
    let (apics, _) = apics(2);
    for vcpu in 0..2 {
        enable(&apics, vcpu);
        write(&apics, vcpu, reg::LDR, 1 << (24 + vcpu));
    }
    assert_eq!(apics.deliver(Destination::Logical(0b10), 0x60), 1);
    assert_eq!(apics.take_interrupt(1), Some(0x60));
    assert_eq!(apics.deliver(Destination::Physical(0xff), 0x61), 2);
}

#[test]
fn eoi_through_the_page_ends_the_interrupt_in_service() {
    let (apics, _) = apics(1);
    enable(&apics, 0);
    apics.deliver_to_vcpu(0, 0x40);
    apics.deliver_to_vcpu(0, 0x30);
    assert_eq!(apics.take_interrupt(0), Some(0x40));
    assert_eq!(read(&apics, 0, reg::ISR + 0x20), 1);
    write(&apics, 0, reg::EOI, 0);
    assert_eq!(read(&apics, 0, reg::ISR + 0x20), 0);
    assert_eq!(apics.take_interrupt(0), Some(0x30));
}

#[test]
fn the_timer_fires_through_poll_at_its_deadline() {
    let (apics, host) = apics(1);
    enable(&apics, 0);
    write(&apics, 0, reg::TIMER_DIVIDE, 0b1011);
    write(&apics, 0, reg::LVT_TIMER, 0x32);
    host.now.store(1000, Ordering::Relaxed);
    write(&apics, 0, reg::TIMER_INITIAL, 500);
    assert_eq!(apics.next_deadline(0), Some(1500));
    assert_eq!(read(&apics, 0, reg::TIMER_CURRENT), 500);
    assert!(!apics.poll_timer(0));
    host.now.store(1500, Ordering::Relaxed);
    assert!(apics.poll_timer(0));
    assert_eq!(apics.take_interrupt(0), Some(0x32));
}

#[test]
fn narrow_reads_get_the_register_bytes() {
    let (apics, _) = apics(2);
    apics.host().current.store(1, Ordering::Relaxed);
    let byte = apics
        .handle_read(DeviceOffset::first(reg::ID + 3), AccessWidth::Byte)
        .unwrap();
    assert_eq!(byte, 1);
}
