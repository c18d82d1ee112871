//! The `Dummy` emulated device (emu_type 0): a bank of scratch registers.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use crate::{AccessWidth, EmulatedDeviceType};

/// MMIO registers that return what was last written to them (zero before), little-endian,
/// at any width: the simplest device a guest can check an MMIO path against.
///
/// Storage is sparse, so a config's `length` costs nothing until the guest writes; bytes
/// of an access that run past the end read as zero and are dropped on write.
///
/// ```
/// use axvm::device::{BaseDeviceOps, DeviceOffset, ScratchRegisters};
/// use axvm::AccessWidth;
/// let regs = ScratchRegisters::new("scratch", 0xfeb0_0000, 0x1000);
/// // Offsets from the base: 0x10 is guest-physical 0xfeb0_0010.
/// regs.handle_write(DeviceOffset::first(0x10), AccessWidth::Dword, 0x1234_5678).unwrap();
/// assert_eq!(regs.handle_read(DeviceOffset::first(0x10), AccessWidth::Byte).unwrap(), 0x78);
/// assert_eq!(regs.handle_read(DeviceOffset::first(0x12), AccessWidth::Word).unwrap(), 0x1234);
/// ```
pub struct ScratchRegisters {
    name: String,
    base: u64,
    len: u64,
    bytes: spin::Mutex<BTreeMap<u64, u8>>,
}

impl ScratchRegisters {
    /// Registers at `base..base + len` of guest-physical memory.
    pub fn new(name: &str, base: u64, len: u64) -> Self {
        Self {
            name: name.into(),
            base,
            len,
            bytes: spin::Mutex::new(BTreeMap::new()),
        }
    }

    /// Offsets of the access's bytes that fall inside the device.
    fn offsets(&self, start: u64, width: AccessWidth) -> impl Iterator<Item = (usize, u64)> + '_ {
        (0..width.size())
            .map(move |i| (i, start.wrapping_add(i as u64)))
            .filter(|&(_, offset)| offset < self.len)
    }
}

impl BaseDeviceOps for ScratchRegisters {
    fn name(&self) -> &str {
        &self.name
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::mmio(self.base, self.len)]
    }

    fn handle_read(&self, at: DeviceOffset, width: AccessWidth) -> Result<u64, DeviceError> {
        let bytes = self.bytes.lock();
        let value = self
            .offsets(at.offset, width)
            .fold(0u64, |value, (i, offset)| {
                let byte = bytes.get(&offset).copied().unwrap_or(0);
                value | u64::from(byte) << (8 * i)
            });
        Ok(value)
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        let mut bytes = self.bytes.lock();
        for (i, offset) in self.offsets(at.offset, width) {
            bytes.insert(offset, (value >> (8 * i)) as u8);
        }
        Ok(WriteOutcome::Done)
    }
}
