//! Host memory for guest RAM: an anonymous private mapping the host reserves nothing for
//! up front (`MAP_NORESERVE`: untouched guest RAM costs the host nothing), left out of
//! axvm's core dumps (`MADV_DONTDUMP`: a dump of axvm is about the VMM, and gigabytes of a
//! guest's memory, maybe its secrets, have no place in it).

use axvm::HostVirtAddr;
use vmm_sys_util::errno::Error as Errno;

/// Why guest RAM could not be mapped.
#[derive(Debug)]
pub enum GuestRamError {
    /// The size does not fit this host's address space.
    TooLarge {
        /// The size asked for.
        size: u64,
    },
    /// `mmap` refused.
    Mmap {
        /// The size asked for.
        size: u64,
        /// Why.
        errno: Errno,
    },
}

impl std::fmt::Display for GuestRamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge { size } => {
                write!(
                    f,
                    "{size:#x} bytes of guest RAM do not fit this host's address space"
                )
            }
            Self::Mmap { size, errno } => {
                write!(f, "cannot map {size:#x} bytes of guest RAM: {errno}")
            }
        }
    }
}

impl std::error::Error for GuestRamError {}

/// Maps `size` bytes for guest RAM (see the module doc); freed with `munmap`.
pub fn map_guest_ram(size: u64) -> Result<HostVirtAddr, GuestRamError> {
    let len = usize::try_from(size).map_err(|_| GuestRamError::TooLarge { size })?;
    // SAFETY: an anonymous private mapping; the arguments are valid and the result is
    // checked.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(GuestRamError::Mmap {
            size,
            errno: Errno::last(),
        });
    }
    // SAFETY: advice on the whole mapping just made, which nothing else uses yet.
    if unsafe { libc::madvise(addr, len, libc::MADV_DONTDUMP) } != 0 {
        log::warn!(
            "guest RAM ({size:#x} bytes) will be part of axvm's core dumps: madvise(MADV_DONTDUMP) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(HostVirtAddr::new(addr as u64))
}

/// Unmaps guest RAM that [`map_guest_ram`] mapped; a failure is logged (the memory is
/// then only leaked).
///
/// # Safety
///
/// `hva` and `size` must be those of one `map_guest_ram` mapping, which nothing uses any
/// more (the VM, and so KVM, has stopped using it) and which is unmapped only once.
pub unsafe fn unmap_guest_ram(hva: HostVirtAddr, size: u64) {
    let Ok(len) = usize::try_from(size) else {
        return;
    };
    // SAFETY: the caller's promise above.
    if unsafe { libc::munmap(hva.as_u64() as *mut libc::c_void, len) } != 0 {
        log::warn!(
            "munmap of guest memory at {hva} failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The VmFlags line /proc/self/smaps gives the mapping that starts at `start` (each
    /// mapping's block begins with its address range and ends with its VmFlags).
    fn vm_flags(start: u64) -> String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("/proc/self/smaps");
        let header = format!("{start:x}-");
        smaps
            .lines()
            .skip_while(|line| !line.starts_with(&header))
            .find(|line| line.starts_with("VmFlags:"))
            .unwrap_or_else(|| panic!("no mapping at {start:#x} in /proc/self/smaps"))
            .to_string()
    }

    #[test]
    fn guest_ram_is_left_out_of_core_dumps() {
        let size = 4 << 20;
        let hva = map_guest_ram(size).expect("4 MiB of guest RAM");
        let flags = vm_flags(hva.as_u64());
        // SAFETY: the mapping made above, which nothing else uses.
        unsafe { unmap_guest_ram(hva, size) };
        // "dd": do not include in core dumps; "nr": no swap space reserved.
        let flags: Vec<&str> = flags.split_whitespace().collect();
        assert!(flags.contains(&"dd"), "{flags:?}");
        assert!(flags.contains(&"nr"), "{flags:?}");
    }
}
