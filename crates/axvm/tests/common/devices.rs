//! Small emulated devices for exit-loop tests: one that records every access and answers
//! reads with a fixed value, and one that shuts its VM down when written.

use std::sync::{Arc, Mutex, OnceLock, Weak};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, AxVM, EmulatedDeviceType};

use super::TestHal;

/// One access a device saw, where the device manager said it landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read {
        at: DeviceOffset,
        width: AccessWidth,
    },
    Write {
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    },
}

/// The accesses a device saw, shared with the test.
pub type AccessLog = Arc<Mutex<Vec<Access>>>;

/// A device that records accesses, reads as `read_value` (all 64 bits, so the test sees
/// whether axvm cuts it to the access width) and answers writes with `write_outcome`.
pub struct Recorder {
    name: String,
    ranges: Vec<DeviceRange>,
    read_value: u64,
    write_outcome: WriteOutcome,
    fails: bool,
    log: AccessLog,
}

impl Recorder {
    pub fn new(name: &str, range: DeviceRange) -> Self {
        Self {
            name: name.into(),
            ranges: vec![range],
            read_value: 0,
            write_outcome: WriteOutcome::Done,
            fails: false,
            log: AccessLog::default(),
        }
    }

    /// Claims `range` too, after the ranges already claimed.
    pub fn also(mut self, range: DeviceRange) -> Self {
        self.ranges.push(range);
        self
    }

    pub fn reads(mut self, value: u64) -> Self {
        self.read_value = value;
        self
    }

    pub fn on_write(mut self, outcome: WriteOutcome) -> Self {
        self.write_outcome = outcome;
        self
    }

    /// Every access fails with a device error.
    pub fn failing(mut self) -> Self {
        self.fails = true;
        self
    }

    /// The log, and the device ready to add.
    pub fn build(self) -> (AccessLog, Arc<dyn BaseDeviceOps>) {
        (self.log.clone(), Arc::new(self))
    }

    fn record(&self, access: Access) -> Result<(), DeviceError> {
        self.log.lock().unwrap().push(access);
        if self.fails {
            return Err(DeviceError {
                device: self.name.clone(),
                message: "register is broken".into(),
            });
        }
        Ok(())
    }
}

impl BaseDeviceOps for Recorder {
    fn name(&self) -> &str {
        &self.name
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        self.ranges.clone()
    }

    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        self.record(Access::Read { at, width })?;
        Ok(self.read_value)
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        self.record(Access::Write { at, width, value })?;
        Ok(self.write_outcome)
    }
}

/// Where a [`ShutdownPort`] finds its VM once it exists.
pub type VmSlot = Arc<OnceLock<Weak<AxVM<TestHal>>>>;

/// A port whose writes call `AxVM::shutdown` (as a host-side power button would), then
/// let the guest go on: the exit loop must notice the status change by itself.
pub struct ShutdownPort {
    port: u16,
    vm: VmSlot,
}

impl ShutdownPort {
    pub fn build(port: u16) -> (VmSlot, Arc<dyn BaseDeviceOps>) {
        let vm = VmSlot::default();
        (vm.clone(), Arc::new(Self { port, vm }))
    }
}

impl BaseDeviceOps for ShutdownPort {
    fn name(&self) -> &str {
        "power-button"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(self.port, 1)]
    }

    fn handle_read(&self, _at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(0)
    }

    fn handle_write(
        &self,
        _at: DeviceOffset,
        _width: AccessWidth,
        _value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let vm = self
            .vm
            .get()
            .and_then(Weak::upgrade)
            .expect("VM slot filled");
        vm.shutdown();
        Ok(WriteOutcome::Done)
    }
}
