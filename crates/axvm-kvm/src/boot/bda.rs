//! Writes the BIOS Data Area and the EBDA's first KiB (`platform::pc::bda`) into a VM's
//! RAM before its kernel starts, as PC firmware would have: for every PC boot whose RAM
//! covers them and whose images leave them alone. A raw real-mode image loaded over
//! 0x400 is its own firmware and keeps its bytes; a config without RAM there has no BDA.

use axvm::{AxVM, AxVMConfig, ConfigError, GuestPhysAddr, MappingFlags};

use super::e820::{e820_map, lower_and_upper_memory_kib};
use super::placement::overlaps;
use super::protocol::{BootProtocol, KernelPlan};
use super::ExtraImage;
use crate::devices::cmos::host_unix_time;
use crate::kvm::KvmHal;
use crate::platform::pc::bda::{
    bda_bytes, BdaContents, BDA_SIZE, BDA_START, COM_PORTS, EBDA_KIB, EBDA_START,
};

/// The EBDA's size in bytes.
const EBDA_BYTES: u64 = EBDA_KIB as u64 * 1024;
/// Seconds in a day.
const DAY_SECONDS: u64 = 86_400;

/// A range of guest memory something else is loaded to: (start, length).
pub(crate) type Occupied = (u64, u64);

/// What a boot puts in guest memory besides the BIOS data: the kernel's segments, its
/// ramdisk, the extra images and the protocol's own boot data.
pub(crate) fn occupied(
    protocol: &dyn BootProtocol,
    kernel: &KernelPlan,
    extras: &[ExtraImage<'_>],
) -> Vec<Occupied> {
    let segments = kernel.image.segments.iter().map(|s| (s.paddr, s.memsz));
    let ramdisk = kernel.ramdisk.map(|r| (r.gpa.as_u64(), r.size));
    let images = extras
        .iter()
        .map(|(_, gpa, bytes)| (gpa.as_u64(), bytes.len() as u64));
    let boot_data = protocol
        .boot_data()
        .into_iter()
        .map(|(start, end, _)| (start, end.saturating_sub(start)));
    segments
        .chain(ramdisk)
        .chain(images)
        .chain(boot_data)
        .collect()
}

/// What the BDA says of `config`'s VM at `unix_time`, or None when the BDA cannot be
/// written: no writable RAM under it, or `occupied` (the images and boot data) overlaps it.
/// The EBDA is left out (segment 0) unless base memory reaches it and RAM covers it, free.
pub(crate) fn bda_contents(
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
/// [`bda_contents`] says there is no room. The host clock gives the tick count.
pub(crate) fn write_bda(vm: &AxVM<KvmHal>, occupied: &[Occupied]) -> Result<(), ConfigError> {
    let Some(contents) = bda_contents(vm.config(), occupied, host_unix_time()) else {
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
    use crate::devices::tests::config;

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
