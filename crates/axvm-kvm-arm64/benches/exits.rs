//! The MMIO exit round trip on arm64 KVM: the same guest loop (20 000 stores to a device
//! page, then the exit device) under a bare `KVM_RUN` loop and under axvm (the core's exit
//! loop, the device manager, a thread per vCPU). `cargo bench -p axvm-kvm-arm64 --bench
//! exits` on an arm64 host; `scripts/kvm-arm64.sh bench` runs it in the harness's L1 and
//! docs/PERFORMANCE.md keeps the figures.

#[cfg(target_arch = "aarch64")]
mod arm64 {
    use std::time::Instant;

    use axvm::config::toml::AxVMCrateConfig;
    use axvm_kvm_arm64::{Arm64Vm, Arm64VmOptions, BootImages, VmOutcome};
    use kvm_bindings::{
        kvm_userspace_memory_region, kvm_vcpu_init, KVM_REG_ARM64, KVM_REG_ARM_CORE,
        KVM_REG_SIZE_U64,
    };
    use kvm_ioctls::{Kvm, VcpuExit};

    /// Stores the loop makes before its exit.
    pub const STORES: u64 = 20_000;
    const RAM: u64 = 0x4000_0000;
    const ENTRY: u64 = 0x4008_0000;
    /// `movz x1, #0x0a10, lsl #16; movz x2, #20000; 1: str w2, [x1]; subs x2, x2, #1;
    /// b.ne 1b; movz x3, #0x0910, lsl #16; str wzr, [x3]; b .`
    const LOOP: [u32; 8] = [
        0xd2a1_4201,
        0xd289_c402,
        0xb900_0022,
        0xf100_0442,
        0x54ff_ffc1,
        0xd2a1_2203,
        0xb900_007f,
        0x1400_0000,
    ];

    fn code() -> Vec<u8> {
        LOOP.iter().flat_map(|word| word.to_le_bytes()).collect()
    }

    /// Nanoseconds per exit of the loop under a bare KVM_RUN loop that answers nothing.
    pub fn bare() -> f64 {
        let kvm = Kvm::new().expect("/dev/kvm");
        let vm = kvm.create_vm().expect("KVM_CREATE_VM");
        let size = 16usize << 20;
        let ram = axvm_linux::map_guest_ram(size as u64)
            .expect("guest RAM")
            .as_u64() as *mut u8;
        let code = code();
        // SAFETY: the code fits in the fresh mapping at offset ENTRY - RAM; the mapping is
        // never unmapped while the VM lives (the process ends first).
        unsafe {
            std::ptr::copy_nonoverlapping(
                code.as_ptr(),
                ram.add((ENTRY - RAM) as usize),
                code.len(),
            )
        };
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: RAM,
            memory_size: size as u64,
            userspace_addr: ram as u64,
        };
        // SAFETY: the mapping above outlives the VM.
        unsafe { vm.set_user_memory_region(region) }.expect("memory slot");
        let mut vcpu = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
        let mut init = kvm_vcpu_init::default();
        vm.get_preferred_target(&mut init)
            .expect("preferred target");
        vcpu.vcpu_init(&init).expect("KVM_ARM_VCPU_INIT");
        // PC: word 64 of struct kvm_regs.
        let pc = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | u64::from(KVM_REG_ARM_CORE) | 64;
        vcpu.set_one_reg(pc, &ENTRY.to_le_bytes()).expect("PC");
        let mut exits = 0u64;
        let start = Instant::now();
        loop {
            match vcpu.run().expect("KVM_RUN") {
                VcpuExit::MmioWrite(0x0910_0000, _) => break,
                VcpuExit::MmioWrite(..) => exits += 1,
                other => panic!("unexpected exit {other:?}"),
            }
        }
        let elapsed = start.elapsed();
        assert_eq!(exits, STORES);
        elapsed.as_nanos() as f64 / (STORES + 1) as f64
    }

    /// Nanoseconds per exit of the same loop under axvm, the stores going to the core's
    /// scratch device.
    pub fn axvm() -> f64 {
        let config = AxVMCrateConfig::from_toml(
            r#"
[base]
id = 1
name = "exitloop"
vm_type = 1
cpu_num = 1
[kernel]
entry_point = 0x4008_0000
kernel_path = "loop.bin"
kernel_load_addr = 0x4008_0000
memory_regions = [[0x4000_0000, 0x100_0000, 0x7, 0]]
[devices]
passthrough_devices = []
emu_devices = [["scratch", 0x0a10_0000, 0x1000, 0, 0x0, []]]
"#,
        )
        .and_then(|file| file.into_vm_config())
        .expect("config");
        let images = BootImages {
            kernel: code(),
            ..Default::default()
        };
        let vm = Arm64Vm::create(config, &images, Arm64VmOptions::default()).expect("VM");
        let start = Instant::now();
        assert_eq!(vm.run().expect("run"), VmOutcome::Exited(0));
        start.elapsed().as_nanos() as f64 / (STORES + 1) as f64
    }
}

#[cfg(target_arch = "aarch64")]
fn main() {
    const ROUNDS: usize = 7;
    // Interleaved, so that a slow stretch of the machine (an emulated one drifts) weighs on
    // both sides alike.
    let (mut bare, mut axvm) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        bare.push(arm64::bare());
        axvm.push(arm64::axvm());
    }
    bare.sort_by(f64::total_cmp);
    axvm.sort_by(f64::total_cmp);
    let (bare, axvm) = (bare[ROUNDS / 2], axvm[ROUNDS / 2]);
    println!(
        "exit round trip ({} MMIO stores, median of {ROUNDS}): bare KVM_RUN loop {:.1} us, axvm {:.1} us ({:+.1} us)",
        arm64::STORES,
        bare / 1000.0,
        axvm / 1000.0,
        (axvm - bare) / 1000.0
    );
}

/// The benchmark runs on aarch64 only.
#[cfg(not(target_arch = "aarch64"))]
fn main() {}
