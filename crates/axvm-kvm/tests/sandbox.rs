//! `VmOptions::sandbox` in the library: a sandboxed run works and leaves the thread that ran
//! it confined, and that thread then gets an error, not a killed process, when it tries to
//! create or run another VM. (The `axvm` command's tests check every thread's filter and
//! the message of a blocked call.)

use axvm::AxVMConfig;
use axvm_kvm::sandbox::current_thread_is_confined;
use axvm_kvm::{BootImages, Error, KvmVm, VmOptions, VmOutcome};
use axvm_test_harness::require_kvm;

/// `mov al, 7; out 0xf4, al`: exits with status 7.
const EXIT_7: &[u8] = &[0xb0, 0x07, 0xe6, 0xf4];

fn exit_7(sandbox: bool) -> Result<KvmVm, Error> {
    let config = AxVMConfig::builder("sandboxed")
        .ram(0, 1 << 20)
        .kernel_at(0x8000)
        .build()
        .expect("a valid config");
    let images = BootImages {
        kernel: EXIT_7.to_vec(),
        ..Default::default()
    };
    let options = VmOptions {
        console: Box::new(std::io::sink()),
        sandbox,
        ..Default::default()
    };
    KvmVm::create(config, &images, options)
}

fn a_sandboxed_run_confines_its_thread_and_refuses_another_vm() {
    require_kvm();
    let outcome = std::thread::spawn(|| {
        let vm = exit_7(true).expect("cannot create the VM");
        assert!(!current_thread_is_confined(), "confined before the run");
        let outcome = vm.run().expect("the sandboxed run failed");
        assert!(current_thread_is_confined(), "not confined after the run");
        // Creating another VM here would open /dev/kvm, which the filter forbids.
        let again = exit_7(false);
        assert!(
            matches!(again, Err(Error::AlreadyConfined)),
            "a second VM on a confined thread: {:?}",
            again.err()
        );
        // Running this one again would start threads under this thread's filter.
        assert!(matches!(vm.run(), Err(Error::AlreadyConfined)));
        drop(vm);
        outcome
    })
    .join()
    .expect("the VM's thread panicked");
    assert_eq!(outcome, VmOutcome::Exited(7));
    assert!(!current_thread_is_confined());
}

fn the_library_runs_unsandboxed_by_default() {
    require_kvm();
    assert!(!VmOptions::default().sandbox);
    let vm = exit_7(false).expect("cannot create the VM");
    assert_eq!(vm.run().expect("the run failed"), VmOutcome::Exited(7));
    assert!(!current_thread_is_confined());
}

axvm_test_harness::main!(
    a_sandboxed_run_confines_its_thread_and_refuses_another_vm,
    the_library_runs_unsandboxed_by_default,
);
