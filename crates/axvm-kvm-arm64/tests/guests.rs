//! The arm64 host running real guests on arm64 KVM: the freestanding guests of
//! `guests-arm64` (PSCI CPU_ON, MMIO widths and sign extension through the core's scratch
//! device, the device tree at x0, the virtual timer through the vGIC, the exit device) and
//! hand-assembled raw images (the raw start at `kernel_load_addr`, PSCI SYSTEM_OFF and
//! SYSTEM_RESET, the unclaimed-access policy, a stop from another thread).
//!
//! They run where there is an arm64 `/dev/kvm`: `scripts/kvm-arm64.sh suite` runs them in
//! its L1 machine. Elsewhere this file is empty.

#[cfg(target_arch = "aarch64")]
mod arm64 {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use axvm::config::toml::AxVMCrateConfig;
    use axvm::device::UnclaimedAccessPolicy;
    use axvm::AxVMConfig;
    use axvm_kvm_arm64::{Arm64Vm, Arm64VmOptions, BootImages, ImageFormat, VmOutcome};
    use axvm_test_harness::require_kvm;

    /// A console the test reads back.
    #[derive(Clone, Default)]
    struct Console(Arc<Mutex<Vec<u8>>>);

    impl Write for Console {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Console {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    fn options(console: &Console, unclaimed: UnclaimedAccessPolicy) -> Arm64VmOptions {
        Arm64VmOptions {
            console: Box::new(console.clone()),
            console_input: None,
            unclaimed,
            observer: None,
            sandbox: false,
        }
    }

    fn config(text: &str) -> AxVMConfig {
        AxVMCrateConfig::from_toml(text)
            .expect("the guest's config parses")
            .into_vm_config()
            .expect("the guest's config is valid")
    }

    /// Runs `image` under `config_text`; the outcome and the console.
    fn run(config_text: &str, image: &[u8]) -> (VmOutcome, String) {
        require_kvm();
        let console = Console::default();
        let images = BootImages {
            kernel: image.to_vec(),
            ..Default::default()
        };
        let vm = Arm64Vm::create(
            config(config_text),
            &images,
            options(&console, UnclaimedAccessPolicy::Ignore),
        )
        .expect("the VM is created");
        let outcome = vm.run().expect("the VM runs");
        (outcome, console.text())
    }

    pub fn demo_checks_psci_mmio_and_the_device_tree() {
        let (outcome, text) = run(axvm_guests::ARM_DEMO_CONFIG, axvm_guests::ARM_DEMO);
        for line in [
            "axvm arm64 demo guest: hello from vCPU 0 (BSP)",
            "axvm arm64 demo guest: hello from vCPU 1 (AP)",
            "axvm arm64 demo guest: device tree OK",
            "axvm arm64 demo guest: MMIO OK",
            "axvm arm64 demo guest: MMIO signed loads ",
            "axvm arm64 demo guest: all checks passed",
        ] {
            assert!(text.contains(line), "no `{line}` in:\n{text}");
        }
        assert_eq!(outcome, VmOutcome::Exited(0), "console:\n{text}");
    }

    pub fn timer_interrupts_arrive_through_the_vgic() {
        let (outcome, text) = run(axvm_guests::ARM_TIMER_CONFIG, axvm_guests::ARM_TIMER);
        assert!(text.contains("10 ticks"), "console:\n{text}");
        assert_eq!(outcome, VmOutcome::Exited(0), "console:\n{text}");
    }

    pub fn the_exit_device_gives_the_guest_status() {
        let (outcome, text) = run(axvm_guests::ARM_EXIT_CONFIG, axvm_guests::ARM_EXIT);
        assert_eq!(
            outcome,
            VmOutcome::Exited(axvm_guests::ARM_EXIT_STATUS),
            "console:\n{text}"
        );
    }

    /// A raw image's config: 16 MiB of RAM at 0x4000_0000, the image at 0x4008_0000.
    fn raw_config() -> AxVMConfig {
        AxVMConfig::builder("raw")
            .ram(0x4000_0000, 16 << 20)
            .kernel_at(0x4008_0000)
            .build()
            .expect("a valid raw config")
    }

    fn raw_image(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|word| word.to_le_bytes()).collect()
    }

    /// `movz x1, #0x910, lsl #16; mov w0, #42; str w0, [x1]; b .`: status 42 through the
    /// exit device at 0x0910_0000.
    const EXIT_42: [u32; 4] = [0xd2a1_2201, 0x5280_0540, 0xb900_0020, 0x1400_0000];
    /// `mov w0, #FN; movk w0, #0x8400, lsl #16; hvc #0; b .` for PSCI SYSTEM_OFF (8).
    const SYSTEM_OFF: [u32; 4] = [0x5280_0100, 0x72b0_8000, 0xd400_0002, 0x1400_0000];
    /// The same for PSCI SYSTEM_RESET (9).
    const SYSTEM_RESET: [u32; 4] = [0x5280_0120, 0x72b0_8000, 0xd400_0002, 0x1400_0000];

    fn run_raw(words: &[u32], unclaimed: UnclaimedAccessPolicy) -> Result<VmOutcome, String> {
        require_kvm();
        let console = Console::default();
        let images = BootImages {
            kernel: raw_image(words),
            ..Default::default()
        };
        let vm = Arm64Vm::create(raw_config(), &images, options(&console, unclaimed))
            .map_err(|err| err.to_string())?;
        assert_eq!(vm.layout().format, ImageFormat::Raw);
        assert_eq!(vm.layout().entry, 0x4008_0000);
        vm.run().map_err(|err| err.to_string())
    }

    pub fn a_raw_image_starts_at_kernel_load_addr() {
        let outcome = run_raw(&EXIT_42, UnclaimedAccessPolicy::Ignore);
        assert_eq!(outcome, Ok(VmOutcome::Exited(42)));
    }

    pub fn psci_system_off_ends_with_status_0() {
        let outcome = run_raw(&SYSTEM_OFF, UnclaimedAccessPolicy::Ignore);
        assert_eq!(outcome, Ok(VmOutcome::Exited(0)));
    }

    pub fn psci_system_reset_is_reported_as_a_reset() {
        let outcome = run_raw(&SYSTEM_RESET, UnclaimedAccessPolicy::Ignore);
        assert_eq!(outcome, Ok(VmOutcome::GuestReset { vcpu: 0 }));
    }

    pub fn an_unclaimed_access_under_the_error_policy_names_the_address() {
        // movz x1, #0x0a20, lsl #16 (0x0a20_0000: no device); ldr w0, [x1]; b .
        let words = [0xd2a1_4401, 0xb940_0020, 0x1400_0000];
        let err = run_raw(&words, UnclaimedAccessPolicy::Error).expect_err("refused");
        assert!(err.contains("0xa200000"), "{err}");
    }

    /// `movz x1, #0x900, lsl #16; ldrsb x0, [x1, #0xffc]` (the PL011's PrimeCell id byte
    /// 0xb1), then `Y` on the UART when bit 63 is set (sign-extended), else `N`, and PSCI
    /// SYSTEM_OFF.
    const SIGN_PROBE: [u32; 10] = [
        0xd2a1_2001,
        0x39bf_f020,
        0x5280_09c2,
        0xb6f8_0040,
        0x5280_0b22,
        0xb900_0022,
        0x5280_0100,
        0x72b0_8000,
        0xd400_0002,
        0x1400_0000,
    ];

    /// Whether a signed MMIO load comes back sign-extended is the host hypervisor's answer
    /// (it completes the load from the data abort's syndrome): axvm must give the answer
    /// QEMU `-accel kvm` gives on the same host. (In the QEMU 7.2 harness both say `N`; on
    /// hardware both say `Y`.)
    pub fn signed_mmio_loads_match_qemu_on_this_host() {
        require_kvm();
        let Some(qemu) = qemu_kvm_answer() else {
            if std::env::var("AXVM_REQUIRE_KVM").as_deref() == Ok("1") {
                panic!(
                    "AXVM_REQUIRE_KVM=1 but qemu-system-aarch64 -accel kvm could not run the probe"
                );
            }
            axvm_test_harness::skip("needs qemu-system-aarch64 for the reference");
        };
        let console = Console::default();
        let images = BootImages {
            kernel: raw_image(&SIGN_PROBE),
            ..Default::default()
        };
        let vm = Arm64Vm::create(
            raw_config(),
            &images,
            options(&console, UnclaimedAccessPolicy::Ignore),
        )
        .expect("created");
        assert_eq!(vm.run().expect("runs"), VmOutcome::Exited(0));
        assert_eq!(console.text(), qemu, "axvm against QEMU -accel kvm");
    }

    /// What the probe prints under QEMU `-M virt -accel kvm`, or `None` without QEMU.
    fn qemu_kvm_answer() -> Option<String> {
        let dir = std::env::temp_dir().join(format!("axvm-sign-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let image = dir.join("probe.bin");
        std::fs::write(&image, raw_image(&SIGN_PROBE)).ok()?;
        let output = std::process::Command::new("qemu-system-aarch64")
            .args([
                "-M",
                "virt,gic-version=3",
                "-accel",
                "kvm",
                "-cpu",
                "host",
                "-m",
                "64M",
            ])
            .args(["-nographic", "-nic", "none", "-no-reboot", "-kernel"])
            .arg(&image)
            .output()
            .ok()?;
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        (output.status.success() && (text == "Y" || text == "N")).then_some(text)
    }

    pub fn a_stop_handle_ends_a_spinning_guest() {
        require_kvm();
        let images = BootImages {
            kernel: raw_image(&[0x1400_0000]), // b .
            ..Default::default()
        };
        let console = Console::default();
        let vm = Arm64Vm::create(
            raw_config(),
            &images,
            options(&console, UnclaimedAccessPolicy::Ignore),
        )
        .expect("created");
        let stop = vm.stop_handle();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            stop.stop();
        });
        assert_eq!(vm.run().expect("runs"), VmOutcome::Stopped);
        stopper.join().expect("the stopper ends");
    }
}

#[cfg(target_arch = "aarch64")]
use arm64::*;

#[cfg(target_arch = "aarch64")]
axvm_test_harness::main!(
    demo_checks_psci_mmio_and_the_device_tree,
    timer_interrupts_arrive_through_the_vgic,
    the_exit_device_gives_the_guest_status,
    a_raw_image_starts_at_kernel_load_addr,
    psci_system_off_ends_with_status_0,
    psci_system_reset_is_reported_as_a_reset,
    an_unclaimed_access_under_the_error_policy_names_the_address,
    a_stop_handle_ends_a_spinning_guest,
    signed_mmio_loads_match_qemu_on_this_host,
);

/// The arm64 host's tests run on aarch64 only (scripts/kvm-arm64.sh).
#[cfg(not(target_arch = "aarch64"))]
fn main() {}
