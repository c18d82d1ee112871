//! [`Arm64Vm`]: creates an axvm VM on arm64 KVM with the virt board's devices, loads its
//! images, and runs a host thread per vCPU until the guest or the host stops it.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock, Weak};

use axvm::device::{AxVmDevices, BaseDeviceOps, DeviceError, UnclaimedAccessPolicy};
use axvm::{AxVM, AxVMConfig, GuestPhysAddr};
use axvm_linux::sandbox;
use axvm_linux::BootImages;
use axvm_virt::exit_device::ExitDevice;
use axvm_virt::layout::PL011_SPI;
use axvm_virt::pl011::Pl011;
use axvm_virt::GicVersion;

use crate::boot::{self, layout_of, BootLayout};
use crate::error::Arm64Error;
use crate::kvm::{Arm64Hal, VCpuStart};

mod console_input;
mod options;
mod vcpu_threads;

pub use options::{Arm64VmOptions, VmOutcome};

/// Ends a running [`Arm64Vm::run`] from any thread.
///
/// ```no_run
/// # #[cfg(target_arch = "aarch64")] {
/// use axvm::AxVMConfig;
/// use axvm_kvm_arm64::{Arm64Vm, Arm64VmOptions, BootImages, VmOutcome};
///
/// let config = AxVMConfig::builder("spin").ram(0x4000_0000, 16 << 20).kernel_at(0x4008_0000).build().unwrap();
/// // `b .`: spins until stopped.
/// let images = BootImages { kernel: 0x1400_0000u32.to_le_bytes().to_vec(), ..Default::default() };
/// let vm = Arm64Vm::create(config, &images, Arm64VmOptions::default()).unwrap();
/// let stop = vm.stop_handle();
/// std::thread::spawn(move || stop.stop());
/// assert_eq!(vm.run().unwrap(), VmOutcome::Stopped);
/// # }
/// ```
pub type StopHandle = axvm_linux::StopHandle<Arm64Hal>;

/// An arm64 VM on KVM with its images loaded, ready to [`run`](Self::run).
pub struct Arm64Vm {
    vm: Arc<AxVM<Arm64Hal>>,
    layout: BootLayout,
    gic: GicVersion,
    stop_requested: Arc<AtomicBool>,
    /// Whether the run confines its threads ([`Arm64VmOptions::sandbox`]).
    sandboxed: bool,
}

impl Arm64Vm {
    /// Creates the VM `config` describes, with the virt board's devices (PL011 console, exit
    /// device, in-kernel vGIC and timer), and loads `images` into it.
    pub fn create(
        config: AxVMConfig,
        images: &BootImages,
        options: Arm64VmOptions,
    ) -> Result<Self, Arm64Error> {
        let load = boot::plan_images(&config, images)?;
        let entry = GuestPhysAddr::new(load.entry);
        // The plan checked the board's RAM rules (`axvm_virt::layout::check_ram`) too.
        let valid = config.into_valid()?.with_entries(entry, entry)?;
        let vm_slot: VmSlot = Arc::default();
        let drained = Arc::new(console_input::Drained::default());
        let uart = Arc::new(pl011(options.console, &vm_slot, &drained));
        let devices = board_devices(options.unclaimed, &uart)?;
        let vm = AxVM::new_validated(valid, Arm64Hal::new()?, devices)?;
        let _ = vm_slot.set(Arc::downgrade(&vm));
        let gic = vm.hal().create_vgic()?;
        let dtb = boot::device_tree(vm.config(), images, &load, gic)?;
        boot::load(vm.memory(), images, &load, &dtb)?;
        vm.setup_vcpu(0, VCpuStart { x0: load.dtb_gpa })?;
        if let Some(observer) = options.observer {
            vm.set_exit_observer(observer)?;
        }
        if let Some(input) = options.console_input {
            console_input::start(input, Arc::downgrade(&uart), drained, options.sandbox).map_err(
                |cause| Arm64Error::Boot(format!("cannot start the console input thread: {cause}")),
            )?;
        }
        Ok(Self {
            vm,
            layout: layout_of(&load, images.dtb.is_none()),
            gic,
            stop_requested: Arc::default(),
            sandboxed: options.sandbox,
        })
    }

    /// Where the images went and where vCPU 0 starts.
    pub fn layout(&self) -> &BootLayout {
        &self.layout
    }

    /// The interrupt controller the guest has.
    pub fn gic_version(&self) -> GicVersion {
        self.gic
    }

    /// A handle that stops the run from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        StopHandle::new(&self.vm, Arc::clone(&self.stop_requested))
    }

    /// The core's VM, for inspection.
    pub fn vm(&self) -> &Arc<AxVM<Arm64Hal>> {
        &self.vm
    }

    /// Boots the VM and runs every vCPU on its own thread until the VM stops.
    pub fn run(&self) -> Result<VmOutcome, Arm64Error> {
        if self.sandboxed && sandbox::current_thread_is_confined() {
            return Err(Arm64Error::AlreadyConfined);
        }
        self.vm.boot()?;
        let ends = vcpu_threads::run_all(&self.vm, self.sandboxed)?;
        if let Some(err) = ends.error {
            return Err(err);
        }
        if let Some(vcpu) = ends.reset_by {
            return Ok(VmOutcome::GuestReset { vcpu });
        }
        // No status: a StopHandle (or the caller's watchdog) stopped it.
        Ok(self
            .vm
            .exit_status()
            .map_or(VmOutcome::Stopped, VmOutcome::Exited))
    }
}

/// Where the PL011's interrupt finds its VM, which exists only after the device does.
type VmSlot = Arc<OnceLock<Weak<AxVM<Arm64Hal>>>>;

/// The board's devices besides the vGIC: the PL011 and the exit device.
fn board_devices(
    unclaimed: UnclaimedAccessPolicy,
    uart: &Arc<Pl011>,
) -> Result<AxVmDevices, Arm64Error> {
    let mut devices = AxVmDevices::new(unclaimed);
    let refused = |err: DeviceError| Arm64Error::Boot(err.to_string());
    devices
        .add(Arc::clone(uart) as Arc<dyn BaseDeviceOps>)
        .map_err(refused)?;
    devices.add(Arc::new(ExitDevice)).map_err(refused)?;
    Ok(devices)
}

/// The PL011 on the caller's console (flushed per write, so that a guest's last line is out
/// before the VM ends), its interrupt on SPI [`PL011_SPI`] of the VM that `vm_slot` will
/// name once it exists.
fn pl011(
    console: Box<dyn Write + Send>,
    vm_slot: &VmSlot,
    drained: &Arc<console_input::Drained>,
) -> Pl011 {
    let mut console = console;
    let vm_slot = Arc::clone(vm_slot);
    let drained = Arc::clone(drained);
    Pl011::new(
        // The PL011 serializes its output calls. A console that cannot be written loses the
        // guest's output, not the VM.
        Box::new(move |bytes: &[u8]| {
            let _ = console.write_all(bytes).and_then(|()| console.flush());
        }),
        Box::new(move |level: bool| {
            if let Some(vm) = vm_slot.get().and_then(Weak::upgrade) {
                if let Err(err) = vm.hal().set_spi(PL011_SPI, level) {
                    log::warn!("PL011: cannot set its interrupt line: {err}");
                }
            }
        }),
    )
    .with_rx_drained(Box::new(move || drained.notify()))
}
