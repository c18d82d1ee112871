//! Guest memory read while a vCPU writes it (issue 10, item 11): an aligned value is never
//! seen half written. A thread stands in for the vCPU, flipping a value between all zeros
//! and all ones; reads through `read_from_guest_of` and `GuestSlice` only ever see one of
//! the two. The loops are bounded by iteration counts, not time. A byte-by-byte copy fails
//! this at once; a word-wise volatile copy cannot.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use axvm::AxVM;
use common::configs::{config_with_regions, device_set, gpa, new_vm, ram};
use common::TestHal;

/// How many reads each check makes while the other thread writes.
const READS: usize = 200_000;

fn one_page_vm(hal: &TestHal) -> Arc<AxVM<TestHal>> {
    let regions = vec![ram(0, 0x1000)];
    new_vm(
        config_with_regions(1, regions),
        hal,
        device_set(Default::default(), vec![]),
    )
}

/// Runs `flip(true/false)` on another thread, alternately, until `read` has run
/// [`READS`] times, and returns every value `read` produced that is not `zero` or `ones`.
fn torn_values<T: PartialEq + Copy + Send + std::fmt::Debug>(
    flip: impl Fn(bool) + Send,
    read: impl Fn() -> T,
    zero: T,
    ones: T,
) -> Vec<T> {
    let done = &AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(move || {
            let mut state = false;
            // Bounded too, in case the reader dies: far more flips than reads are needed.
            for _ in 0..READS * 100 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                state = !state;
                flip(state);
            }
        });
        let mut torn = Vec::new();
        for _ in 0..READS {
            let value = read();
            if value != zero && value != ones && torn.len() < 10 {
                torn.push(value);
            }
        }
        done.store(true, Ordering::Relaxed);
        torn
    })
}

#[test]
fn an_aligned_u32_written_concurrently_is_never_torn() {
    let hal = TestHal::new();
    let vm = one_page_vm(&hal);
    let hva = vm.memory().regions()[0].hva.as_u64();
    // SAFETY: the region is one page of host memory the test host holds while `vm` lives;
    // 0x104 is 4-byte aligned.
    let cell = unsafe { AtomicU32::from_ptr((hva + 0x104) as *mut u32) };
    let flip = |on: bool| cell.store(if on { u32::MAX } else { 0 }, Ordering::Relaxed);

    let read_value = || vm.read_from_guest_of::<u32>(gpa(0x104)).unwrap();
    assert_eq!(torn_values(flip, read_value, 0, u32::MAX), []);

    // Through a slice, reading the value alone and as part of a longer, misaligned range.
    let slice = vm.translated_byte_buffer(gpa(0x101), 12).unwrap();
    let read_slice = || {
        let mut bytes = [0u8; 12];
        assert_eq!(slice.read(0, &mut bytes), 12);
        u32::from_le_bytes(bytes[3..7].try_into().unwrap())
    };
    assert_eq!(torn_values(flip, read_slice, 0, u32::MAX), []);
}

#[test]
fn aligned_u16_and_u64_written_concurrently_are_never_torn() {
    let hal = TestHal::new();
    let vm = one_page_vm(&hal);
    let hva = vm.memory().regions()[0].hva.as_u64();
    // SAFETY: as above; 0x202 is 2-byte aligned, 0x308 8-byte aligned.
    let half = unsafe { AtomicU16::from_ptr((hva + 0x202) as *mut u16) };
    let flip = |on: bool| half.store(if on { u16::MAX } else { 0 }, Ordering::Relaxed);
    let read = || vm.read_from_guest_of::<u16>(gpa(0x202)).unwrap();
    assert_eq!(torn_values(flip, read, 0, u16::MAX), []);

    if cfg!(target_pointer_width = "64") {
        let word = unsafe { AtomicU64::from_ptr((hva + 0x308) as *mut u64) };
        let flip = |on: bool| word.store(if on { u64::MAX } else { 0 }, Ordering::Relaxed);
        let read = || vm.read_from_guest_of::<u64>(gpa(0x308)).unwrap();
        assert_eq!(torn_values(flip, read, 0, u64::MAX), []);
    }
}

#[test]
fn a_u32_written_through_the_vmm_is_never_seen_torn_by_the_guest() {
    let hal = TestHal::new();
    let vm = one_page_vm(&hal);
    let hva = vm.memory().regions()[0].hva.as_u64();
    // SAFETY: as above; the "guest" thread only reads the aligned value.
    let cell = unsafe { AtomicU32::from_ptr((hva + 0x40c) as *mut u32) };
    // A GuestSlice stays on the thread that made it, so here the VMM side writes on this
    // thread and the guest side reads on the other.
    let slice = vm.translated_byte_buffer(gpa(0x400), 16).unwrap();
    let done = AtomicBool::new(false);
    let torn = std::thread::scope(|scope| {
        let guest = scope.spawn(|| {
            let mut torn = Vec::new();
            for _ in 0..READS * 100 {
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let value = cell.load(Ordering::Relaxed);
                if value != 0 && value != u32::MAX && torn.len() < 10 {
                    torn.push(value);
                }
            }
            torn
        });
        for round in 0..READS {
            let value: u32 = if round % 2 == 0 { u32::MAX } else { 0 };
            let mut bytes = [0u8; 16];
            bytes[12..].copy_from_slice(&value.to_le_bytes());
            assert_eq!(slice.write(0, &bytes), 16);
        }
        done.store(true, Ordering::Relaxed);
        guest.join().unwrap()
    });
    assert_eq!(torn, []);
}
