//! The guest-memory accessors (`read_from_guest_of`, `write_to_guest_of`,
//! `translated_byte_buffer`, `GuestSlice`): they work at the first and last byte of each
//! region, refuse ranges that run past a region (even into an adjacent one) or lie outside
//! RAM, and never copy past the caller's buffer or the slice.

mod common;

use axvm::{AxVM, AxVMError, GuestMemoryError};
use common::configs::{config_with_regions, device_set, gpa, new_vm, ram};
use common::TestHal;

fn host_bytes(hva: u64, len: usize) -> Vec<u8> {
    // SAFETY: the caller passes memory the test host allocated and still holds.
    unsafe { std::slice::from_raw_parts(hva as *const u8, len) }.to_vec()
}

/// Two adjacent regions: [0, 0x1000) and [0x1000, 0x3000).
fn two_region_vm(hal: &TestHal) -> std::sync::Arc<AxVM<TestHal>> {
    let regions = vec![ram(0, 0x1000), ram(0x1000, 0x2000)];
    new_vm(
        config_with_regions(1, regions),
        hal,
        device_set(Default::default(), vec![]),
    )
}

#[test]
fn accessors_work_at_the_first_and_last_byte_of_each_region() {
    let hal = TestHal::new();
    let vm = two_region_vm(&hal);
    let hva = |i: usize| vm.memory().regions()[i].hva.as_u64();

    vm.write_to_guest_of(gpa(0), &0xaau8).unwrap();
    vm.write_to_guest_of(gpa(0xffc), &0x1122_3344u32).unwrap();
    vm.write_to_guest_of(gpa(0x1000), &0xbbu8).unwrap();
    vm.write_to_guest_of(gpa(0x2ff8), &0x0102_0304_0506_0708u64)
        .unwrap();

    assert_eq!(vm.read_from_guest_of::<u8>(gpa(0)).unwrap(), 0xaa);
    assert_eq!(vm.read_from_guest_of::<u8>(gpa(0xfff)).unwrap(), 0x11);
    assert_eq!(
        vm.read_from_guest_of::<u32>(gpa(0xffc)).unwrap(),
        0x1122_3344
    );
    assert_eq!(vm.read_from_guest_of::<u8>(gpa(0x1000)).unwrap(), 0xbb);
    assert_eq!(vm.read_from_guest_of::<u8>(gpa(0x2fff)).unwrap(), 0x01);
    assert_eq!(
        host_bytes(hva(0) + 0xffc, 4),
        [0x44, 0x33, 0x22, 0x11],
        "little-endian, in place"
    );
    assert_eq!(
        host_bytes(hva(1), 1),
        [0xbb],
        "region 1 starts at its own host memory"
    );
    assert_eq!(host_bytes(hva(1) + 0x1ff8, 8), [8, 7, 6, 5, 4, 3, 2, 1]);

    let last = vm.translated_byte_buffer(gpa(0x2fff), 1).unwrap();
    assert_eq!((last.gpa(), last.len()), (gpa(0x2fff), 1));
    assert_eq!(last.as_ptr() as u64, hva(1) + 0x1fff);
    let first = vm.translated_byte_buffer(gpa(0x1000), 0x2000).unwrap();
    assert_eq!(first.as_ptr() as u64, hva(1));
}

#[test]
fn a_range_that_runs_past_its_region_is_refused_even_with_a_neighbour() {
    let hal = TestHal::new();
    let vm = two_region_vm(&hal);
    let crosses = GuestMemoryError::CrossesRegionEnd {
        gpa: gpa(0xfff),
        len: 2,
        region_end: gpa(0x1000),
    };

    assert_eq!(
        vm.translated_byte_buffer(gpa(0xfff), 2).err(),
        Some(crosses.clone())
    );
    let err = vm.read_from_guest_of::<u16>(gpa(0xfff)).unwrap_err();
    assert!(
        matches!(err, AxVMError::GuestMemory(ref e) if *e == crosses),
        "{err:?}"
    );
    let err = vm.write_to_guest_of(gpa(0xffd), &u32::MAX).unwrap_err();
    assert!(matches!(
        err,
        AxVMError::GuestMemory(GuestMemoryError::CrossesRegionEnd { .. })
    ));
    assert_eq!(
        vm.read_from_guest_of::<u32>(gpa(0xffc)).unwrap(),
        0,
        "nothing was written"
    );
    assert_eq!(vm.read_from_guest_of::<u8>(gpa(0x1000)).unwrap(), 0);
    assert!(vm.translated_byte_buffer(gpa(0x2001), 0x1000).is_err());
    assert!(vm.translated_byte_buffer(gpa(0), usize::MAX).is_err());
}

#[test]
fn a_range_outside_ram_is_refused() {
    let hal = TestHal::new();
    let vm = two_region_vm(&hal);
    let not_mapped = GuestMemoryError::NotMapped {
        gpa: gpa(0x3000),
        len: 4,
    };

    assert_eq!(
        vm.translated_byte_buffer(gpa(0x3000), 4).err(),
        Some(not_mapped)
    );
    assert!(vm
        .read_from_guest_of::<u8>(gpa(0xffff_ffff_ffff_ffff))
        .is_err());
    assert!(vm.write_to_guest_of(gpa(0x10_0000), &1u8).is_err());
    let message = vm
        .read_from_guest_of::<u32>(gpa(0x3000))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("0x3000") && message.contains("not in guest RAM"),
        "{message}"
    );
}

#[test]
fn guest_slices_copy_only_inside_the_slice_and_the_buffer() {
    let hal = TestHal::new();
    let vm = two_region_vm(&hal);
    vm.memory()
        .write(gpa(0x100), &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        .unwrap();
    let slice = vm.translated_byte_buffer(gpa(0x100), 8).unwrap();

    let mut big = [0xeeu8; 16];
    assert_eq!(slice.read(0, &mut big), 8);
    assert_eq!(
        big,
        [1, 2, 3, 4, 5, 6, 7, 8, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee]
    );
    let mut small = [0u8; 3];
    assert_eq!(slice.read(2, &mut small), 3, "limited by the buffer");
    assert_eq!(small, [3, 4, 5]);
    let mut tail = [0u8; 4];
    assert_eq!(slice.read(6, &mut tail), 2, "limited by the slice");
    assert_eq!(tail, [7, 8, 0, 0]);
    for offset in [8, 9, usize::MAX] {
        assert_eq!(slice.read(offset, &mut tail), 0, "offset {offset}");
        assert_eq!(slice.write(offset, &[0xff; 4]), 0, "offset {offset}");
    }

    assert_eq!(slice.write(6, &[0xa0, 0xa1, 0xa2, 0xa3]), 2);
    assert_eq!(slice.write(0, &[0xb0]), 1);
    let mut after = [0u8; 10];
    vm.memory().read(gpa(0x100), &mut after).unwrap();
    assert_eq!(
        after,
        [0xb0, 2, 3, 4, 5, 6, 0xa0, 0xa1, 9, 10],
        "bytes 8 and 9 untouched"
    );
    assert!(!slice.is_empty() && vm.translated_byte_buffer(gpa(0), 0).unwrap().is_empty());
}
