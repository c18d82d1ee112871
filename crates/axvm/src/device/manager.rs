//! The device manager: finds the device behind an address, and deals with addresses that
//! no device claims.

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::unclaimed::{AccessKind, UnclaimedRun, UnclaimedRuns};
use super::{
    BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, DeviceSpace, ScratchRegisters,
    WriteOutcome,
};
use crate::{AccessWidth, ConfigError, EmulatedDeviceConfig, EmulatedDeviceType};

/// What happens when the guest touches an address that no device claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnclaimedAccessPolicy {
    /// Reads return zero, writes are dropped, and each run of accesses to adjacent
    /// addresses is logged once at debug level (probing for absent hardware is normal, not
    /// a fault): guests that probe for hardware keep running, and every access is counted
    /// for the summary.
    #[default]
    Ignore,
    /// The access is an error: the vCPU stops and the VM reports where.
    Error,
}

/// The devices of one VM, looked up by address: the seed's `AxVmDevices`.
///
/// The set is fixed once the VM is created, so lookups on the exit path take no lock.
pub struct AxVmDevices {
    /// Every claimed range, sorted by (space, base); ranges never overlap.
    ranges: Vec<Claim>,
    policy: UnclaimedAccessPolicy,
    /// Unclaimed accesses, in runs of adjacent addresses.
    unclaimed: spin::Mutex<UnclaimedRuns>,
}

/// One range of one device, as the manager keeps it.
struct Claim {
    range: DeviceRange,
    /// The range's index in the device's own `address_ranges()`, which the device receives
    /// with each access in its [`DeviceOffset`].
    index: usize,
    device: Arc<dyn BaseDeviceOps>,
}

impl Default for AxVmDevices {
    fn default() -> Self {
        Self::new(UnclaimedAccessPolicy::default())
    }
}

impl AxVmDevices {
    /// No devices yet; unclaimed accesses follow `policy`.
    pub fn new(policy: UnclaimedAccessPolicy) -> Self {
        Self {
            ranges: Vec::new(),
            policy,
            unclaimed: spin::Mutex::new(UnclaimedRuns::default()),
        }
    }

    /// Creates the devices of a config's `emu_devices` that axvm emulates itself, and
    /// refuses the others with the entry named.
    ///
    /// An `emu_type` that the ArceOS numbering does not define (`Unknown`) becomes a Dummy
    /// device, as the ArceOS hypervisor treats it, so configs written for it keep working;
    /// it is logged at debug level only, since a config's front end warns about it with the
    /// entry named (`axvm check` and `axvm run` do). Other types (virtio, ...) are the
    /// host's to emulate: an entry the host already added a device for (same name and type,
    /// at its `base_gpa`) is left to it; any other is refused, because the guest expects a
    /// real device there.
    pub fn add_emulated(&mut self, configs: &[EmulatedDeviceConfig]) -> Result<(), ConfigError> {
        for (index, config) in configs.iter().enumerate() {
            let field = || format!("devices.emu_devices[{index}] ({})", config.name);
            if self.host_provides(config) {
                continue;
            }
            let scratch = || {
                Arc::new(ScratchRegisters::new(
                    &config.name,
                    config.base_gpa.as_u64(),
                    config.length,
                ))
            };
            let device: Arc<dyn BaseDeviceOps> = match config.emu_type {
                EmulatedDeviceType::Dummy => scratch(),
                EmulatedDeviceType::Unknown(value) => {
                    log::debug!(
                        "{}: emu_type {value:#x} is not a device type; treated as 0x0 (Dummy: scratch registers)",
                        field()
                    );
                    scratch()
                }
                other => {
                    return Err(ConfigError::invalid(
                        field(),
                        format!("emu_type {other} is not emulated by this host; remove the entry or use 0x0 (Dummy)"),
                    ))
                }
            };
            self.add(device)
                .map_err(|err| ConfigError::invalid(field(), err.message))?;
        }
        Ok(())
    }

    /// Whether the host added the device `config` describes: one of that name and type
    /// claims its `base_gpa`.
    fn host_provides(&self, config: &EmulatedDeviceConfig) -> bool {
        self.find(DeviceSpace::Mmio, config.base_gpa.as_u64())
            .is_some_and(|device| {
                device.name() == config.name && device.emu_type() == config.emu_type
            })
    }

    /// Adds `device`, refusing it when one of its ranges overlaps another device's.
    pub fn add(&mut self, device: Arc<dyn BaseDeviceOps>) -> Result<(), DeviceError> {
        let new_ranges = device.address_ranges();
        for range in &new_ranges {
            if let Some(other) = self.ranges.iter().find(|c| overlap(&c.range, range)) {
                return Err(DeviceError {
                    device: device.name().into(),
                    message: format!(
                        "{} {:#x}..{:#x} overlaps device `{}`",
                        range.space,
                        range.base,
                        range.end(),
                        other.device.name()
                    ),
                });
            }
        }
        for (index, range) in new_ranges.into_iter().enumerate() {
            self.ranges.push(Claim {
                range,
                index,
                device: device.clone(),
            });
        }
        self.ranges
            .sort_by_key(|claim| (claim.range.space, claim.range.base));
        Ok(())
    }

    /// The device claiming `addr` in `space`.
    pub fn find(&self, space: DeviceSpace, addr: u64) -> Option<&Arc<dyn BaseDeviceOps>> {
        self.locate(space, addr).map(|(device, _)| device)
    }

    /// The device claiming `addr` in `space`, and where in it `addr` lands: what the device
    /// receives with the access.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use axvm::device::{AxVmDevices, DeviceOffset, DeviceSpace, ScratchRegisters};
    /// let mut devices = AxVmDevices::default();
    /// devices.add(Arc::new(ScratchRegisters::new("regs", 0xfeb0_0000, 0x100))).unwrap();
    /// let (device, at) = devices.locate(DeviceSpace::Mmio, 0xfeb0_0010).unwrap();
    /// assert_eq!((device.name(), at), ("regs", DeviceOffset::first(0x10)));
    /// ```
    pub fn locate(
        &self,
        space: DeviceSpace,
        addr: u64,
    ) -> Option<(&Arc<dyn BaseDeviceOps>, DeviceOffset)> {
        let index = self
            .ranges
            .partition_point(|claim| (claim.range.space, claim.range.base) <= (space, addr));
        let claim = self.ranges.get(index.checked_sub(1)?)?;
        claim.range.contains(space, addr).then(|| {
            let at = DeviceOffset::new(claim.index, addr - claim.range.base);
            (&claim.device, at)
        })
    }

    /// Every device range, sorted by space and address (for memory maps and diagnostics).
    pub fn ranges(&self) -> impl Iterator<Item = (&DeviceRange, &Arc<dyn BaseDeviceOps>)> {
        self.ranges
            .iter()
            .map(|claim| (&claim.range, &claim.device))
    }

    /// The policy for unclaimed accesses.
    pub fn policy(&self) -> UnclaimedAccessPolicy {
        self.policy
    }

    /// Routes a read; `Ok(None)` when no device claims `addr` (the caller applies the
    /// policy, because only it knows the vCPU).
    pub fn handle_read(
        &self,
        space: DeviceSpace,
        addr: u64,
        width: AccessWidth,
    ) -> Result<Option<u64>, DeviceError> {
        match self.locate(space, addr) {
            Some((device, at)) => device
                .handle_read(at, width)
                .map(|v| Some(width.truncate(v))),
            None => Ok(None),
        }
    }

    /// Routes a write; `Ok(None)` when no device claims `addr`.
    pub fn handle_write(
        &self,
        space: DeviceSpace,
        addr: u64,
        width: AccessWidth,
        value: u64,
    ) -> Result<Option<WriteOutcome>, DeviceError> {
        match self.locate(space, addr) {
            Some((device, at)) => device
                .handle_write(at, width, width.truncate(value))
                .map(Some),
            None => Ok(None),
        }
    }

    /// Counts an access that no device claims; `true` when it starts a new run (no run of
    /// its kind covers or touches its address), which deserves a log line. Runs are kept up
    /// to a limit, beyond which new ones are only counted together: a guest scanning the
    /// address space must not grow the VMM's memory without bound.
    pub(crate) fn record_unclaimed(
        &self,
        space: DeviceSpace,
        addr: u64,
        width: AccessWidth,
        write: bool,
    ) -> bool {
        let kind = AccessKind {
            space,
            width,
            write,
        };
        self.unclaimed.lock().record(kind, addr)
    }

    /// The unclaimed accesses so far, in runs of adjacent addresses, most accesses first,
    /// and how many more accesses went beyond the runs kept.
    pub fn unclaimed_accesses(&self) -> (Vec<UnclaimedRun>, u64) {
        self.unclaimed.lock().runs()
    }

    /// The device whose range is closest to `addr` in `space`: the one a guest touching a
    /// wrong address most likely meant.
    pub fn nearest_device(
        &self,
        space: DeviceSpace,
        addr: u64,
    ) -> Option<(&DeviceRange, &Arc<dyn BaseDeviceOps>)> {
        let distance = |range: &DeviceRange| {
            if addr < range.base {
                range.base - addr
            } else {
                addr.saturating_sub(range.end().saturating_sub(1))
            }
        };
        self.ranges()
            .filter(|(range, _)| range.space == space)
            .min_by_key(|(range, _)| distance(range))
    }
}

fn overlap(a: &DeviceRange, b: &DeviceRange) -> bool {
    a.space == b.space && a.base < b.end() && b.base < a.end()
}
