//! The BIOS Data Area (0x400-0x4ff) and the first bytes of the Extended BIOS Data Area,
//! as PC firmware leaves them before any kernel runs, and their writer ([`write_bda`]):
//! for every PC boot whose RAM covers them and whose images leave them alone. A raw
//! real-mode image loaded over 0x400 is its own firmware and keeps its bytes; a config
//! without RAM there has no BDA. Kernels read them even when a boot
//! protocol hands them everything else: Multiboot kernels take the smaller of the BDA's base
//! memory size and `mem_lower` as their low memory (and put their AP trampoline below it),
//! and kernels that look for the MP table search the first KiB of the EBDA the BDA points
//! to. An all-zero BDA says "no low memory", so they fault or read garbage.
//!
//! The reference is SeaBIOS on QEMU's `-M pc` with axvm's devices (`-nodefaults`: no VGA,
//! no parallel port, no floppy drive, no disks): each field below is filled as SeaBIOS
//! fills it there, with why, and every other byte is zero, as SeaBIOS clears the area
//! first. Fields SeaBIOS fills only for hardware axvm lacks (video mode and cursor, which
//! its VGA BIOS or serial-console emulation sets; floppy state; LPT ports) stay zero.
//!
//! | offset | size | field | value |
//! |---|---|---|---|
//! | 0x00 | 2×4 | COM1-COM4 base ports | 0x3f8 (COM1, axvm's one UART), 0 |
//! | 0x08 | 2×3 | LPT1-LPT3 base ports | 0: no parallel port |
//! | 0x0e | 2 | EBDA segment | 0x9fc0: the EBDA is the last KiB below 640 KiB |
//! | 0x10 | 2 | equipment word | see [`equipment_word`] |
//! | 0x13 | 2 | base memory, KiB | 639: RAM below the EBDA, e820's first RAM entry |
//! | 0x1a | 2 | keyboard buffer head | 0x1e: empty buffer (head = tail = start) |
//! | 0x1c | 2 | keyboard buffer tail | 0x1e |
//! | 0x6c | 4 | timer ticks since midnight | from the host's clock, as CMOS shows it |
//! | 0x76 | 1 | fixed-disk control byte | 0xc0: SeaBIOS's, written with or without disks |
//! | 0x7c | 1×4 | COM1-COM4 timeouts | 10 for each port present |
//! | 0x80 | 2 | keyboard buffer start | 0x1e: the 16-word ring at 0x41e |
//! | 0x82 | 2 | keyboard buffer end | 0x3e |
//! | 0x96 | 1 | keyboard flags 3 | 0x10: a 101/102-key keyboard |
//!
//! The EBDA's first byte is its size in KiB (1). Its segment and the base memory size stay
//! consistent with the e820 map (RAM up to 0x9fc00, reserved from there) and CMOS 0x15
//! (640 KiB of base memory installed, of which the EBDA takes the last KiB).

use alloc::format;

use axvm::{AxVM, AxVMConfig, AxVMHal, ConfigError, GuestPhysAddr, MappingFlags};

use crate::e820::{e820_map, lower_and_upper_memory_kib};
use crate::layout::LEGACY_HOLE_START;
use crate::placement::overlaps;

/// Where the BDA starts: segment 0x40.
pub const BDA_START: u64 = 0x400;
/// The BDA's size.
pub const BDA_SIZE: usize = 0x100;
/// Where the EBDA starts: the reserved legacy area's first KiB.
pub const EBDA_START: u64 = LEGACY_HOLE_START;
/// The EBDA's size in KiB (what its first byte says). One KiB is what SeaBIOS keeps for
/// its own use there; an OS must leave it alone (the e820 map reserves it).
pub const EBDA_KIB: u8 = 1;
/// The COM ports a PC may have, in BDA order.
pub const COM_PORTS: [u16; 4] = [0x3f8, 0x2f8, 0x3e8, 0x2e8];
/// The PIT's input clock in Hz: the BIOS timer tick is this divided by 65536 (~18.2 Hz).
const PIT_HZ: u64 = 1_193_182;
/// Seconds in a day: the tick count restarts at midnight.
const DAY_SECONDS: u64 = 86_400;
/// Each COM port's timeout, in the BIOS's polling units: SeaBIOS's default.
const COM_TIMEOUT: u8 = 10;
/// The keyboard ring buffer, as offsets from segment 0x40: 16 words at 0x41e-0x43d.
const KBD_BUFFER_START: u16 = 0x1e;
const KBD_BUFFER_END: u16 = 0x3e;
/// Keyboard flags 3 (0x496) bit 4: a 101/102-key keyboard.
const KBD_101_KEYS: u8 = 0x10;
/// The fixed-disk control byte SeaBIOS writes when it sets up ATA.
const DISK_CONTROL: u8 = 0xc0;

/// Field offsets in the BDA.
mod field {
    pub const COM_PORTS: usize = 0x00;
    pub const EBDA_SEGMENT: usize = 0x0e;
    pub const EQUIPMENT: usize = 0x10;
    pub const BASE_MEMORY_KIB: usize = 0x13;
    pub const KBD_HEAD: usize = 0x1a;
    pub const KBD_TAIL: usize = 0x1c;
    pub const TIMER_TICKS: usize = 0x6c;
    pub const DISK_CONTROL: usize = 0x76;
    pub const COM_TIMEOUTS: usize = 0x7c;
    pub const KBD_BUFFER_START: usize = 0x80;
    pub const KBD_BUFFER_END: usize = 0x82;
    pub const KBD_FLAGS_3: usize = 0x96;
}

/// What the BDA describes of a VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BdaContents {
    /// The COM ports that exist, in BDA order (first free slots zero).
    pub com_ports: [u16; 4],
    /// Base memory in KiB: the RAM below the EBDA.
    pub base_memory_kib: u16,
    /// The EBDA's address, when there is one (a multiple of 16 below 1 MiB).
    pub ebda: Option<u64>,
    /// Seconds since midnight, for the timer tick count.
    pub seconds_since_midnight: u64,
}

/// The equipment word (0x410): what SeaBIOS reports with axvm's devices. Bit 1, an x87
/// FPU (every vCPU has one); bit 2, a pointing device (SeaBIOS sets it whenever it
/// provides the INT 15h mouse services, mouse or not); bits 9-11, the COM ports. No
/// floppy drives (bit 0, bits 6-7), no initial video mode (bits 4-5: no VGA), no
/// parallel ports (bits 14-15).
pub fn equipment_word(com_ports: usize) -> u16 {
    const FPU: u16 = 1 << 1;
    const POINTING_DEVICE: u16 = 1 << 2;
    const COM_COUNT_SHIFT: u16 = 9;
    FPU | POINTING_DEVICE | ((com_ports.min(7) as u16) << COM_COUNT_SHIFT)
}

/// The timer tick count at `seconds` past midnight (ticks at PIT_HZ / 65536).
pub fn ticks_at(seconds: u64) -> u32 {
    ((seconds % DAY_SECONDS) * PIT_HZ / 65_536) as u32
}

/// Stores `value` little-endian at `at`.
fn put16(bda: &mut [u8; BDA_SIZE], at: usize, value: u16) {
    bda[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

/// The 256 bytes of the BDA for `contents`.
pub fn bda_bytes(contents: &BdaContents) -> [u8; BDA_SIZE] {
    let mut bda = [0u8; BDA_SIZE];
    let present = contents.com_ports.iter().filter(|&&port| port != 0).count();
    for (slot, &port) in contents.com_ports.iter().enumerate() {
        put16(&mut bda, field::COM_PORTS + 2 * slot, port);
        if port != 0 {
            bda[field::COM_TIMEOUTS + slot] = COM_TIMEOUT;
        }
    }
    let ebda_segment = contents.ebda.map_or(0, |ebda| (ebda >> 4) as u16);
    put16(&mut bda, field::EBDA_SEGMENT, ebda_segment);
    put16(&mut bda, field::EQUIPMENT, equipment_word(present));
    put16(&mut bda, field::BASE_MEMORY_KIB, contents.base_memory_kib);
    put16(&mut bda, field::KBD_HEAD, KBD_BUFFER_START);
    put16(&mut bda, field::KBD_TAIL, KBD_BUFFER_START);
    put16(&mut bda, field::KBD_BUFFER_START, KBD_BUFFER_START);
    put16(&mut bda, field::KBD_BUFFER_END, KBD_BUFFER_END);
    let ticks = ticks_at(contents.seconds_since_midnight);
    bda[field::TIMER_TICKS..field::TIMER_TICKS + 4].copy_from_slice(&ticks.to_le_bytes());
    bda[field::DISK_CONTROL] = DISK_CONTROL;
    bda[field::KBD_FLAGS_3] = KBD_101_KEYS;
    bda
}

/// The EBDA's size in bytes.
const EBDA_BYTES: u64 = EBDA_KIB as u64 * 1024;

/// A range of guest memory something else is loaded to: (start, length).
pub type Occupied = (u64, u64);

/// What the BDA says of `config`'s VM at `unix_time`, or None when the BDA cannot be
/// written: no writable RAM under it, or `occupied` (the images and boot data) overlaps it.
/// The EBDA is left out (segment 0) unless base memory reaches it and RAM covers it, free.
pub fn bda_contents(
    config: &AxVMConfig,
    occupied: &[Occupied],
    unix_time: u64,
) -> Option<BdaContents> {
    let free_ram = |start: u64, len: u64| {
        writable_ram_covers(config, start, len)
            && !occupied
                .iter()
                .any(|&(at, size)| overlaps(start, len, at, size))
    };
    if !free_ram(BDA_START, BDA_SIZE as u64) {
        return None;
    }
    let (lower_kib, _) = lower_and_upper_memory_kib(&e820_map(config));
    let ebda =
        (lower_kib * 1024 == EBDA_START && free_ram(EBDA_START, EBDA_BYTES)).then_some(EBDA_START);
    Some(BdaContents {
        // axvm's one UART is COM1 (devices/serial.rs).
        com_ports: [COM_PORTS[0], 0, 0, 0],
        base_memory_kib: lower_kib.min(u64::from(u16::MAX)) as u16,
        ebda,
        seconds_since_midnight: unix_time % DAY_SECONDS,
    })
}

/// Whether one writable memory region holds all of `start..start + len`.
fn writable_ram_covers(config: &AxVMConfig, start: u64, len: u64) -> bool {
    config.memory_regions.iter().any(|region| {
        region.flags.contains(MappingFlags::WRITE)
            && region.gpa.as_u64() <= start
            && start.saturating_add(len) <= region.end().as_u64()
    })
}

/// Writes the BDA and, when there is one, the EBDA (its size byte, then zeros), unless
/// [`bda_contents`] says there is no room. `unix_time` (the host's wall clock, seconds since
/// 1970 UTC) gives the tick count, as the CMOS clock shows the same time.
pub fn write_bda<H: AxVMHal>(
    vm: &AxVM<H>,
    occupied: &[Occupied],
    unix_time: u64,
) -> Result<(), ConfigError> {
    let Some(contents) = bda_contents(vm.config(), occupied, unix_time) else {
        log::debug!("no BIOS Data Area: no free RAM at {BDA_START:#x}");
        return Ok(());
    };
    let write = |gpa: u64, bytes: &[u8]| {
        vm.memory()
            .write(GuestPhysAddr::new(gpa), bytes)
            .map_err(|err| {
                ConfigError::invalid(
                    "kernel.memory_regions",
                    format!("cannot write the BIOS data at {gpa:#x}: {err}"),
                )
            })
    };
    write(BDA_START, &bda_bytes(&contents))?;
    if let Some(ebda) = contents.ebda {
        let mut bytes = [0u8; EBDA_BYTES as usize];
        bytes[0] = EBDA_KIB;
        write(ebda, &bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([bytes[at], bytes[at + 1]])
    }

    #[test]
    fn fields_are_seabios_values_for_one_com_port_and_639_kib() {
        let bda = bda_bytes(&BdaContents {
            com_ports: [0x3f8, 0, 0, 0],
            base_memory_kib: 639,
            ebda: Some(EBDA_START),
            seconds_since_midnight: 12 * 3600,
        });
        assert_eq!(u16_at(&bda, 0x00), 0x3f8);
        assert!(bda[0x02..0x0e].iter().all(|&b| b == 0), "COM2-4, LPT1-3");
        assert_eq!(u16_at(&bda, 0x0e), 0x9fc0);
        assert_eq!(u16_at(&bda, 0x10), 0x0206);
        assert_eq!(u16_at(&bda, 0x13), 639);
        assert_eq!([u16_at(&bda, 0x1a), u16_at(&bda, 0x1c)], [0x1e, 0x1e]);
        assert_eq!([u16_at(&bda, 0x80), u16_at(&bda, 0x82)], [0x1e, 0x3e]);
        // Noon: half a day of 1193182/65536 Hz ticks.
        let ticks = u32::from_le_bytes(bda[0x6c..0x70].try_into().unwrap());
        assert_eq!(ticks, 786_521);
        assert_eq!(bda[0x76], 0xc0);
        assert_eq!(bda[0x7c..0x80], [10, 0, 0, 0]);
        assert_eq!(bda[0x96], 0x10);
        let set: Vec<usize> = (0..BDA_SIZE).filter(|&i| bda[i] != 0).collect();
        assert_eq!(
            set,
            [
                0x00, 0x01, 0x0e, 0x0f, 0x10, 0x11, 0x13, 0x14, 0x1a, 0x1c, 0x6c, 0x6e, 0x76, 0x7c,
                0x80, 0x82, 0x96
            ],
            "no other byte is set"
        );
    }

    #[test]
    fn no_ebda_and_more_com_ports() {
        let bda = bda_bytes(&BdaContents {
            com_ports: COM_PORTS,
            base_memory_kib: 512,
            ebda: None,
            seconds_since_midnight: DAY_SECONDS,
        });
        assert_eq!(u16_at(&bda, 0x0e), 0);
        assert_eq!(u16_at(&bda, 0x10), 0x0806);
        assert_eq!(bda[0x7c..0x80], [10; 4]);
        assert_eq!(bda[0x6c..0x70], [0; 4], "midnight restarts the count");
    }

    // The BDA's contents for a config: what the loader writes.
    use crate::test_config::config;

    const NOON: u64 = 12 * 3600;

    #[test]
    fn a_pc_gets_com1_639_kib_and_the_ebda() {
        let contents = bda_contents(&config(1, &[(0, 0x800_0000, 0x7)]), &[], NOON + DAY_SECONDS)
            .expect("a BDA");
        assert_eq!(
            contents,
            BdaContents {
                com_ports: [0x3f8, 0, 0, 0],
                base_memory_kib: 639,
                ebda: Some(0x9_fc00),
                seconds_since_midnight: NOON,
            }
        );
    }

    #[test]
    fn no_bda_without_writable_ram_or_under_an_image() {
        let high_only = config(1, &[(0x10_0000, 0x10_0000, 0x7)]);
        assert_eq!(bda_contents(&high_only, &[], NOON), None);
        let read_only = config(1, &[(0, 0x1000, 0x5), (0x1000, 0x800_0000, 0x7)]);
        assert_eq!(bda_contents(&read_only, &[], NOON), None);
        let pc = config(1, &[(0, 0x800_0000, 0x7)]);
        // A raw image at 0x7c00 leaves it; one loaded at 0 covers it.
        assert!(bda_contents(&pc, &[(0x7c00, 0x200)], NOON).is_some());
        assert_eq!(bda_contents(&pc, &[(0, 0x10_0000)], NOON), None);
    }

    #[test]
    fn the_ebda_needs_base_memory_up_to_it_and_must_be_free() {
        let pc = config(1, &[(0, 0x800_0000, 0x7)]);
        let under_image = bda_contents(&pc, &[(0x9_f000, 0x1000)], NOON).unwrap();
        assert_eq!((under_image.ebda, under_image.base_memory_kib), (None, 639));
        let small = config(1, &[(0, 0x8_0000, 0x7)]);
        let small = bda_contents(&small, &[], NOON).unwrap();
        assert_eq!((small.ebda, small.base_memory_kib), (None, 512));
    }
}
