//! axvm's identification MSRs, in the range Intel reserves for hypervisors
//! (0x4000_0000-0x4fff_ffff): a guest can tell it runs on axvm, and tests can exercise the
//! MSR exit path with a known value.

use core::sync::atomic::{AtomicU64, Ordering};

use alloc::vec;
use alloc::vec::Vec;

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

/// Reads as [`AXVM_SIGNATURE`]: "AXVM" in the low half, the interface version in the high.
pub const IDENT_MSR: u32 = 0x4158_564d;
/// A read/write scratch MSR, zero at reset.
pub const SCRATCH_MSR: u32 = 0x4158_564e;
/// The value of [`IDENT_MSR`].
pub const AXVM_SIGNATURE: u64 = 0x0000_0001_4158_564d;

/// Where each MSR lies in the device's one range, which starts at [`IDENT_MSR`].
const IDENT_OFFSET: u64 = 0;
const SCRATCH_OFFSET: u64 = (SCRATCH_MSR - IDENT_MSR) as u64;

/// The identification and scratch MSRs.
#[derive(Default)]
pub struct IdentMsrs {
    scratch: AtomicU64,
}

impl BaseDeviceOps for IdentMsrs {
    fn name(&self) -> &str {
        "axvm identification MSRs"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::Dummy
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::sysreg(IDENT_MSR, 2)]
    }

    fn handle_read(&self, at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        Ok(if at.offset == IDENT_OFFSET {
            AXVM_SIGNATURE
        } else {
            self.scratch.load(Ordering::Relaxed)
        })
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        if at.offset == SCRATCH_OFFSET {
            self.scratch.store(value, Ordering::Relaxed);
        }
        Ok(WriteOutcome::Done)
    }
}
