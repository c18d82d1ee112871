//! KVM failures come back typed: the failed operation with its errno, reachable through
//! `AxVMError::host_cause` when the core reports them, so a caller can match on the errno
//! instead of parsing the message (which stays what it was).

mod common;

use axvm::{AxVMError, AxVMHal};
use axvm_kvm::{KvmError, KvmHal, KvmVm};
use common::guests::EXIT_42;
use common::{parse_config, raw_config_text, require_kvm};

fn creating_a_vcpu_twice_is_eexist_from_kvm_create_vcpu() {
    require_kvm();
    let hal = KvmHal::new(0).expect("a KVM VM");
    let _first = hal.create_vcpu(0, None).expect("vCPU 0");
    let err = hal
        .create_vcpu(0, None)
        .err()
        .expect("a second vCPU 0 is refused");
    assert!(
        matches!(
            err,
            KvmError::Ioctl {
                operation: "KVM_CREATE_VCPU",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.errno(), Some(libc::EEXIST), "{err}");
    assert!(err.to_string().starts_with("KVM_CREATE_VCPU: "), "{err}");
}

fn memory_the_host_cannot_map_reaches_the_caller_as_mmap_enomem() {
    require_kvm();
    // A second region of 256 GiB (which one KVM slot holds, ending below the 40 address bits
    // even a nested host has) in a process allowed 64 GiB of address space: mmap fails. (A region larger than a slot is refused before any mmap;
    // filling the address space with slots instead would make KVM allocate gigabytes of
    // per-slot metadata.)
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid rlimit structures for this process; only the soft limit is lowered.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_AS, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max.min(64 << 30);
        assert_eq!(libc::setrlimit(libc::RLIMIT_AS, &limit), 0);
    }
    let text = raw_config_text(0x10_0000, 0x8000, 0x8000).replace(
        "memory_regions = [[0x0, 0x100000, 0x7, 0]]",
        "memory_regions = [[0x0, 0x100000, 0x7, 0], [0x4000000000, 0x4000000000, 0x7, 0]]",
    );
    let config = parse_config(&text);
    let err = match KvmVm::create(config, &common::kernel(EXIT_42), Default::default()) {
        Ok(_) => panic!("the VM was created"),
        Err(axvm_kvm::Error::Vm(err)) => err,
        Err(other) => panic!("not a core error: {other}"),
    };
    assert!(
        matches!(
            err,
            AxVMError::Host {
                operation: "allocate guest memory",
                ..
            }
        ),
        "{err:?}"
    );
    let cause = err
        .host_cause()
        .and_then(|cause| cause.downcast_ref::<KvmError>())
        .unwrap_or_else(|| panic!("no KVM error behind: {err}"));
    assert!(
        matches!(
            cause,
            KvmError::Mmap {
                size: 0x40_0000_0000,
                ..
            }
        ),
        "{cause:?}"
    );
    assert_eq!(cause.errno(), Some(libc::ENOMEM), "{cause}");
    // The message still says it all by itself.
    assert!(err.to_string().contains(&cause.to_string()), "{err}");
}

axvm_test_harness::main!(
    creating_a_vcpu_twice_is_eexist_from_kvm_create_vcpu,
    memory_the_host_cannot_map_reaches_the_caller_as_mmap_enomem,
);
