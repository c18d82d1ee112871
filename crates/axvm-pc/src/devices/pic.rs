//! The two 8259 PICs' ports (0x20/0x21, 0xa0/0xa1), accepted but never interrupting: a
//! host that routes ISA interrupts through the IOAPIC only (the bare-metal SVM hypervisor)
//! gives guests PICs they can initialise and mask, as every PC guest does before using the
//! IOAPIC. The mask registers read back what was written (initially all masked); the
//! initialisation words are taken and dropped; command-port reads (IRR/ISR) are zero.

use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU8, Ordering};

use axvm::device::{BaseDeviceOps, DeviceError, DeviceOffset, DeviceRange, WriteOutcome};
use axvm::{AccessWidth, EmulatedDeviceType};

/// ICW1 has bit 4 set on the command port: the data port's next writes are ICW2-ICW4.
const ICW1: u8 = 1 << 4;
/// ICW1 bit 0: an ICW4 follows.
const ICW1_NEEDS_ICW4: u8 = 1;

/// One PIC: its mask and how many initialisation words it still expects.
struct Pic {
    mask: AtomicU8,
    icws_left: AtomicU8,
}

impl Pic {
    const fn new() -> Self {
        Self {
            mask: AtomicU8::new(0xff),
            icws_left: AtomicU8::new(0),
        }
    }

    fn write_command(&self, value: u8) {
        if value & ICW1 != 0 {
            let left = if value & ICW1_NEEDS_ICW4 != 0 { 3 } else { 2 };
            self.icws_left.store(left, Ordering::Relaxed);
        }
    }

    fn write_data(&self, value: u8) {
        let left = self.icws_left.load(Ordering::Relaxed);
        if left > 0 {
            self.icws_left.store(left - 1, Ordering::Relaxed);
        } else {
            self.mask.store(value, Ordering::Relaxed);
        }
    }
}

/// The master and slave PICs, masked and silent.
pub struct SilentPics {
    pics: [Pic; 2],
}

impl Default for SilentPics {
    fn default() -> Self {
        Self {
            pics: [Pic::new(), Pic::new()],
        }
    }
}

impl BaseDeviceOps for SilentPics {
    fn name(&self) -> &str {
        "8259 PICs (masked)"
    }

    fn emu_type(&self) -> EmulatedDeviceType {
        EmulatedDeviceType::InterruptController
    }

    fn address_ranges(&self) -> Vec<DeviceRange> {
        vec![DeviceRange::port(0x20, 2), DeviceRange::port(0xa0, 2)]
    }

    fn handle_read(&self, at: DeviceOffset, _width: AccessWidth) -> Result<u64, DeviceError> {
        let Some(pic) = self.pics.get(at.range) else {
            return Ok(0);
        };
        Ok(if at.offset == 1 {
            u64::from(pic.mask.load(Ordering::Relaxed))
        } else {
            0
        })
    }

    fn handle_write(
        &self,
        at: DeviceOffset,
        _width: AccessWidth,
        value: u64,
    ) -> Result<WriteOutcome, DeviceError> {
        if let Some(pic) = self.pics.get(at.range) {
            if at.offset == 1 {
                pic.write_data(value as u8);
            } else {
                pic.write_command(value as u8);
            }
        }
        Ok(WriteOutcome::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_reads_back_after_an_initialisation_sequence() {
        let pics = SilentPics::default();
        let data = DeviceOffset::new(0, 1);
        let w = AccessWidth::Byte;
        assert_eq!(pics.handle_read(data, w).unwrap(), 0xff);
        pics.handle_write(DeviceOffset::new(0, 0), w, 0x11).unwrap();
        for icw in [0x20, 0x04, 0x01] {
            pics.handle_write(data, w, icw).unwrap();
        }
        assert_eq!(
            pics.handle_read(data, w).unwrap(),
            0xff,
            "ICWs are not masks"
        );
        pics.handle_write(data, w, 0xfb).unwrap();
        assert_eq!(pics.handle_read(data, w).unwrap(), 0xfb);
        assert_eq!(pics.handle_read(DeviceOffset::new(1, 1), w).unwrap(), 0xff);
    }
}
