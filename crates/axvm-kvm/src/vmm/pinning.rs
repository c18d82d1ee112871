//! Pinning a vCPU thread to the host CPUs its config names.

use axvm::AxVMConfig;

/// Pins the calling thread to the physical CPUs the config gives vCPU `vcpu_id`
/// (`phys_cpu_ids` first, then the `phys_cpu_sets` mask); CPUs this host lacks are skipped
/// with a warning rather than refused, so configs written for larger boards still run.
pub(super) fn pin_to_physical_cpus(config: &AxVMConfig, vcpu_id: usize) {
    let from_id = config
        .phys_cpu_ids
        .as_ref()
        .and_then(|ids| ids.get(vcpu_id))
        .map(|&id| {
            u32::try_from(id)
                .ok()
                .and_then(|id| 1usize.checked_shl(id))
                .unwrap_or(0)
        });
    let from_set = config
        .phys_cpu_sets
        .as_ref()
        .and_then(|sets| sets.get(vcpu_id))
        .copied();
    let Some(mask) = from_id.or(from_set) else {
        return;
    };
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET is bounds-checked by libc.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut any = false;
    for cpu in (0..usize::BITS as usize).filter(|cpu| mask & (1 << cpu) != 0) {
        if cpu < host_cpus {
            // SAFETY: `cpu` is below the host's CPU count, inside cpu_set_t.
            unsafe { libc::CPU_SET(cpu, &mut set) };
            any = true;
        }
    }
    if !any {
        log::warn!("vCPU {vcpu_id}: physical CPUs {mask:#x} do not exist on this host ({host_cpus} CPUs); not pinning");
        return;
    }
    // SAFETY: `set` is a valid cpu_set_t for the calling thread (pid 0).
    let ret = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if ret != 0 {
        log::warn!(
            "vCPU {vcpu_id}: cannot pin to CPUs {mask:#x}: {}",
            std::io::Error::last_os_error()
        );
    }
}
