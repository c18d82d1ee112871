//! Guest RAM against the host's memory: the KVM host maps guest RAM without reserving it
//! (`MAP_NORESERVE`: untouched RAM costs nothing), so a VM with more RAM than the host has
//! starts fine and fails only when the guest uses it — the host swaps, or the OOM killer
//! ends axvm. `axvm check` warns about it, and `axvm run` logs the same warning.

use axvm::{AxVMConfig, VmMemMappingType};

/// The guest RAM the host allocates for `config`: every region but MapReserved ones (those
/// are host memory reserved beforehand, which axvm maps and never allocates).
pub fn allocated_ram(config: &AxVMConfig) -> u64 {
    config
        .memory_regions
        .iter()
        .filter(|region| region.map_type != VmMemMappingType::MapReserved)
        .fold(0, |sum: u64, region| sum.saturating_add(region.size))
}

/// The host's memory, MemTotal in `/proc/meminfo`, or `None` when it cannot be read.
pub fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    mem_total(&text)
}

/// MemTotal from the text of `/proc/meminfo` ("MemTotal:       24000000 kB"), in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|line| line.starts_with("MemTotal:"))?;
    let mut words = line["MemTotal:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then(|| kib.saturating_mul(1024))
}

/// The warning for `config` when its guest RAM exceeds `host` bytes of host memory.
pub fn warning_against(config: &AxVMConfig, host: u64) -> Option<String> {
    let ram = allocated_ram(config);
    (ram > host).then(|| {
        format!(
            "kernel.memory_regions: {} of guest RAM is more than this host's {} of memory (MemTotal): the VM starts, since axvm reserves RAM only as the guest touches it, but a guest that uses it all makes the host swap or the OOM killer end axvm; give the VM less RAM",
            approximate_size(ram),
            approximate_size(host)
        )
    })
}

/// `bytes` to one decimal in the largest binary unit it reaches: "23.5 GiB", "1.0 TiB"
/// (MemTotal is rarely a whole number of any unit).
fn approximate_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 3] = [(40, "TiB"), (30, "GiB"), (20, "MiB")];
    for (shift, name) in UNITS {
        if bytes >= 1 << shift {
            return format!("{:.1} {name}", bytes as f64 / (1u64 << shift) as f64);
        }
    }
    format!("{bytes} bytes")
}

/// [`warning_against`] this host's memory (none when it cannot be read).
pub fn warning(config: &AxVMConfig) -> Option<String> {
    warning_against(config, host_memory()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mem_total_is_read_in_bytes() {
        let text = "MemTotal:       24006060 kB\nMemFree:         1000 kB\n";
        assert_eq!(mem_total(text), Some(24_006_060 * 1024));
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total("MemTotal: many kB\n"), None);
    }

    #[test]
    fn sizes_are_given_to_one_decimal() {
        assert_eq!(approximate_size(24_683_584 * 1024), "23.5 GiB");
        assert_eq!(approximate_size(1 << 40), "1.0 TiB");
        assert_eq!(approximate_size(3 << 19), "1.5 MiB");
        assert_eq!(approximate_size(1000), "1000 bytes");
    }

    #[test]
    fn the_host_has_some_memory() {
        assert!(host_memory().is_some_and(|bytes| bytes > 0));
    }

    #[test]
    fn ram_over_the_host_is_warned_about() {
        let config = AxVMConfig::builder("big")
            .ram(0, 2 << 20)
            .kernel_at(0x8000)
            .build()
            .unwrap();
        assert_eq!(allocated_ram(&config), 2 << 20);
        let warning = warning_against(&config, 1 << 20).expect("a warning");
        assert!(
            warning.starts_with(
                "kernel.memory_regions: 2.0 MiB of guest RAM is more than this host's 1.0 MiB"
            ),
            "{warning}"
        );
        assert_eq!(warning_against(&config, 2 << 20), None);
    }
}
