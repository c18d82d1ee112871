//! Whether a vCPU sleeps in the kernel, read without disturbing it.
//!
//! With KVM's in-kernel local APIC a halted vCPU (or an AP waiting for INIT-SIPI) sleeps
//! inside `KVM_RUN`: user space sees no exit. Asking the vCPU would mean kicking it out of
//! `KVM_RUN`, which costs a running vCPU an exit. Instead KVM's binary statistics
//! (`KVM_GET_STATS_FD`, Linux 5.14; the `blocking` statistic, Linux 5.16) say whether the
//! vCPU is blocked in the kernel right now, read with one `pread` from another thread.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

use kvm_ioctls::VcpuFd;
use vmm_sys_util::ioctl::ioctl;
use vmm_sys_util::ioctl_io_nr;

ioctl_io_nr!(KVM_GET_STATS_FD, kvm_bindings::KVMIO, 0xce);

/// The statistic that is 1 while the vCPU blocks (halted, or waiting for a start-up IPI).
const BLOCKING: &[u8] = b"blocking";
/// `struct kvm_stats_header`: six u32 fields.
const HEADER_SIZE: usize = 24;
/// `struct kvm_stats_desc` before its name: flags, exponent, size, offset, bucket_size.
const DESC_FIXED_SIZE: usize = 16;

/// Reads one vCPU's `blocking` statistic.
pub struct BlockingProbe {
    stats: File,
    /// Where the value is in the statistics file.
    at: u64,
}

impl BlockingProbe {
    /// Opens `vcpu`'s statistics and finds `blocking`; why not, when this KVM lacks them.
    pub fn open(vcpu: &VcpuFd) -> Result<Self, String> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new fd or -1.
        let fd = unsafe { ioctl(vcpu, KVM_GET_STATS_FD()) };
        if fd < 0 {
            return Err(format!(
                "KVM_GET_STATS_FD: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
        let stats = unsafe { File::from_raw_fd(fd) };
        let at = find_blocking(&stats)?;
        Ok(Self { stats, at })
    }

    /// Whether the vCPU blocks in the kernel now; `None` when the statistic cannot be read.
    pub fn is_blocking(&self) -> Option<bool> {
        let mut value = [0u8; 8];
        self.stats.read_exact_at(&mut value, self.at).ok()?;
        Some(u64::from_ne_bytes(value) != 0)
    }
}

impl std::fmt::Debug for BlockingProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BlockingProbe(fd {}, at {})",
            self.stats.as_raw_fd(),
            self.at
        )
    }
}

/// The offset of the `blocking` value in the statistics file.
fn find_blocking(stats: &File) -> Result<u64, String> {
    let mut header = [0u8; HEADER_SIZE];
    stats
        .read_exact_at(&mut header, 0)
        .map_err(|e| format!("reading the KVM statistics header: {e}"))?;
    let field = |index: usize| {
        let bytes = [0, 1, 2, 3].map(|i| header[index * 4 + i]);
        u64::from(u32::from_ne_bytes(bytes))
    };
    let (name_size, descs, desc_offset, data_offset) = (field(1), field(2), field(4), field(5));
    // All descriptors in one read: opening a probe is part of every VM's start.
    let desc_size =
        usize::try_from(DESC_FIXED_SIZE as u64 + name_size).map_err(|e| e.to_string())?;
    let count = usize::try_from(descs).map_err(|e| e.to_string())?;
    let mut table = vec![0u8; desc_size.saturating_mul(count)];
    stats
        .read_exact_at(&mut table, desc_offset)
        .map_err(|e| format!("reading the KVM statistics descriptors: {e}"))?;
    for desc in table.chunks_exact(desc_size) {
        let name = desc[DESC_FIXED_SIZE..].split(|&b| b == 0).next();
        if name == Some(BLOCKING) {
            let offset = u32::from_ne_bytes([desc[8], desc[9], desc[10], desc[11]]);
            return Ok(data_offset + u64::from(offset));
        }
    }
    Err("this KVM has no `blocking` vCPU statistic (Linux 5.16 or later has it)".into())
}
