//! The VM side of the hypervisor: one VM from the Multiboot modules (its config in the ArceOS
//! hypervisor's TOML format, and its image), run on the core `axvm` through the SVM backend,
//! vCPU *i* on physical CPU *i*.
//!
//! The steps are the KVM host's, on bare metal: the core parses and validates the config;
//! [`SvmHal`] gives the VM its RAM (frames, mapped by nested page tables) and its vCPUs;
//! `axvm_pc::direct` checks and loads the image with the code the KVM host uses; the
//! platform devices are `axvm_pc`'s plus the guest's COM1 ([`console_uart`]); [`runner`]
//! runs the vCPUs until the guest stops the VM, and its exit status becomes QEMU's.

mod console_uart;
mod exit_timing;
mod hal;
mod image;
mod inject;
mod irq;
mod modules;
mod runner;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;

use axvm::config::toml::AxVMCrateConfig;
use axvm::device::{AxVmDevices, BaseDeviceOps, UnclaimedAccessPolicy};
use axvm::{AxVM, AxVMConfig};

use crate::{boot, hv_println, qemu, wall_clock};

use exit_timing::ExitTiming;
pub use hal::SvmHal;
use irq::VmInterrupts;

/// The status QEMU reports (through `isa-debug-exit`) when the VM could not start or
/// failed: 1, as `axvm run` exits with when a VM fails.
pub const VM_FAILED: u8 = 1;

/// Creates the VM the modules describe, runs it, and ends QEMU with its status.
pub fn main() -> ! {
    let status = match start() {
        Ok(started) => runner::run(started.vm, &started.timing, started.irq),
        Err(message) => {
            hv_println!("{message}");
            VM_FAILED
        }
    };
    qemu::exit(status)
}

/// A VM ready to run.
struct StartedVm {
    vm: Arc<AxVM<SvmHal>>,
    timing: Arc<ExitTiming>,
    irq: Arc<VmInterrupts>,
}

/// The VM, created, loaded and booted, with its exit timing and interrupts installed.
fn start() -> Result<StartedVm, String> {
    let inject = inject::InjectRequest::from_cmdline(boot::cmdline())?;
    let files = modules::VmFiles::find(boot::modules())?;
    let source = files.config_name;
    let file =
        AxVMCrateConfig::from_toml(files.config_text).map_err(|err| format!("{source}: {err}"))?;
    let images = files.images(&file)?;
    let config = file
        .into_vm_config()
        .map_err(|err| format!("{source}: {err}"))?;
    let plan =
        image::ImagePlan::for_config(&config, &images).map_err(|err| format!("{source}: {err}"))?;
    let name = config.name.clone();
    if let Some(request) = inject.as_ref().filter(|r| r.vcpu >= config.cpu_num) {
        return Err(format!(
            "kernel command line inject={:#x}@{}: VM `{name}` has {} vCPU(s) (0-{})",
            request.vector,
            request.vcpu,
            config.cpu_num,
            config.cpu_num.saturating_sub(1)
        ));
    }
    let irq = Arc::new(VmInterrupts::new(config.cpu_num));
    let trigger = inject.map(|request| {
        hv_println!(
            "will inject vector {:#x} into vCPU {} after the console line `{}`",
            request.vector,
            request.vcpu,
            request.after
        );
        Arc::new(inject::LineTrigger::new(request, irq.clone()))
    });
    let hal =
        SvmHal::new(config.cpu_num, irq.clone()).map_err(|err| format!("VM `{name}`: {err}"))?;
    let devices = platform_devices(&config, &irq, trigger)?;
    let vm = AxVM::new(config, hal, devices)
        .map_err(|err| format!("VM `{name}` cannot be created: {err}"))?;
    plan.load(&vm, &images)
        .map_err(|err| format!("{source}: {err}"))?;
    let timing = Arc::new(ExitTiming::new(vm.vcpu_num()));
    let hook = irq::EntryHook {
        timing: timing.clone(),
        irq: irq.clone(),
    };
    vm.set_exit_observer(Arc::new(hook))
        .map_err(|err| format!("VM `{name}`: {err}"))?;
    vm.boot().map_err(|err| format!("VM `{name}`: {err}"))?;
    hv_println!(
        "VM `{name}` from {source}: {} vCPU(s), {} image",
        vm.vcpu_num(),
        plan.format()
    );
    Ok(StartedVm { vm, timing, irq })
}

/// The devices every VM gets here: `axvm_pc`'s (exit port, PCI host bridge, identification
/// MSRs, fw_cfg, the CMOS RTC on this machine's wall clock), exactly as on KVM; COM1 onto
/// this machine's console (watched by `trigger`); and the interrupt controllers and timers
/// that KVM has in its kernel (`irq`).
fn platform_devices(
    config: &AxVMConfig,
    irq: &VmInterrupts,
    trigger: Option<Arc<inject::LineTrigger>>,
) -> Result<AxVmDevices, String> {
    let mut devices = AxVmDevices::new(UnclaimedAccessPolicy::Ignore);
    let platform: [Arc<dyn BaseDeviceOps>; 6] = [
        Arc::new(console_uart::ConsoleUart::watched_by(trigger)),
        Arc::new(axvm_pc::ExitPort),
        Arc::new(axvm_pc::PciHost::default()),
        Arc::new(axvm_pc::IdentMsrs::default()),
        Arc::new(axvm_pc::FwCfg::for_vm(config)),
        Arc::new(axvm_pc::Cmos::with_clock(config, wall_clock::unix_seconds)),
    ];
    for device in platform.into_iter().chain(irq.devices()) {
        let name = device.name().to_string();
        devices
            .add(device)
            .map_err(|err| format!("platform device {name}: {err}"))?;
    }
    Ok(devices)
}
