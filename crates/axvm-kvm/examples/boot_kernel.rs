//! Boots a kernel and waits for it to end: `cargo run -p axvm-kvm --example boot_kernel
//! [RAW_REAL_MODE_IMAGE]`. Without an argument it boots the embedded real-mode test guest,
//! which prints a line on the serial console (this program's stdout) and exits with 0.

use axvm::AxVMConfig;
use axvm_kvm::{BootImages, KvmVm, VmOptions, VmOutcome};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let kernel = match std::env::args_os().nth(1) {
        Some(path) => std::fs::read(path)?,
        None => axvm_guests::REALMODE.to_vec(),
    };
    // 1 MiB of RAM at 0; the raw image is loaded at 0x8000 and vCPU 0 starts there.
    let config = AxVMConfig::builder("hello")
        .ram(0, 1 << 20)
        .kernel_at(0x8000)
        .build()?;
    let images = BootImages {
        kernel,
        ..Default::default()
    };
    let vm = KvmVm::create(config, &images, VmOptions::default())?;
    let outcome = vm.run()?;
    println!("the VM ended: {outcome:?}");
    match outcome {
        VmOutcome::Exited(0) => Ok(()),
        other => Err(format!("the guest did not exit with 0: {other:?}").into()),
    }
}
