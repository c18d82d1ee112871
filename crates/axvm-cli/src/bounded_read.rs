//! Reading a config or an image it names without trusting the path: only a regular file is
//! read (a FIFO would block `open` for ever, `/dev/zero` never ends, a directory is no
//! image), and never more than it could usefully be, checked against its size before the
//! read and enforced during it (a file growing under axvm cannot exceed the bound either).
//!
//! ```text
//! let text = read(Path::new("vm.toml"), |_| Bound::config())?;
//! ```

use std::fs::{File, FileType, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::output::human_size;

/// The largest config file axvm reads. Configs are a few KiB; 16 MiB leaves room for
/// thousands of generated device rows while keeping a wrong path (a disk image, a log)
/// from being read and parsed whole.
pub const CONFIG_BYTES: u64 = 16 << 20;

/// How large an ELF kernel may be even when guest RAM is smaller: its debug sections and
/// symbols are not loaded (an unstripped Linux `vmlinux` is hundreds of MiB), only its
/// PT_LOAD segments have to fit in RAM.
pub const ELF_KERNEL_BYTES: u64 = 2 << 30;

/// The most bytes a file may have, and why, for the refusal.
#[derive(Debug, Clone)]
pub struct Bound {
    /// The limit.
    pub bytes: u64,
    /// What makes it the limit: "the 16 MiB of guest RAM (kernel.memory_regions) it must
    /// fit in".
    pub why: String,
}

impl Bound {
    /// The bound of a config file: [`CONFIG_BYTES`].
    pub fn config() -> Self {
        Self {
            bytes: CONFIG_BYTES,
            why: format!("the {} a config may have", human_size(CONFIG_BYTES)),
        }
    }

    /// The bound of an image loaded into `ram` bytes of guest RAM.
    pub fn guest_ram(ram: u64) -> Self {
        Self {
            bytes: ram,
            why: format!(
                "the {} of guest RAM (kernel.memory_regions) it must fit in",
                human_size(ram)
            ),
        }
    }

    /// The bound of a kernel whose file begins with `header`, for `ram` bytes of guest RAM:
    /// the RAM, or at least [`ELF_KERNEL_BYTES`] for an ELF file.
    pub fn kernel(ram: u64, header: &[u8]) -> Self {
        if header.starts_with(b"\x7fELF") && ram < ELF_KERNEL_BYTES {
            Self {
                bytes: ELF_KERNEL_BYTES,
                why: format!(
                    "the {} axvm reads of an ELF kernel (its loaded segments must also fit in the {} of guest RAM)",
                    human_size(ELF_KERNEL_BYTES),
                    human_size(ram)
                ),
            }
        } else {
            Self::guest_ram(ram)
        }
    }
}

/// How many bytes of the file `bound` is given to decide (enough for any magic number).
const HEADER_BYTES: usize = 64;

/// Reads the regular file at `path`, whose bound `bound` gives from its first bytes. The
/// error is why it cannot be read ("it is a FIFO (named pipe), not a regular file", an I/O
/// error), for the caller to prefix with the file and the config field or argument.
pub fn read(path: &Path, bound: impl FnOnce(&[u8]) -> Bound) -> Result<Vec<u8>, String> {
    let cannot = |reason: &dyn std::fmt::Display| reason.to_string();
    // Refused before `open`, which would block on a FIFO without O_NONBLOCK.
    let metadata = std::fs::metadata(path).map_err(|err| cannot(&err))?;
    not_regular(metadata.file_type()).map_or(Ok(()), |what| Err(cannot(&what)))?;
    // O_NONBLOCK: a FIFO put in the file's place since does not block `open` either (and
    // is refused just below); on a regular file the flag means nothing.
    let mut file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|err| cannot(&err))?;
    let opened = file.metadata().map_err(|err| cannot(&err))?;
    not_regular(opened.file_type()).map_or(Ok(()), |what| Err(cannot(&what)))?;
    let mut bytes = Vec::new();
    (&mut file)
        .take(HEADER_BYTES as u64)
        .read_to_end(&mut bytes)
        .map_err(|err| cannot(&err))?;
    let bound = bound(&bytes);
    let too_large = |size: u64| {
        let human = human_size(size);
        let size = if human.ends_with(" B") {
            format!("{size} bytes")
        } else {
            format!("{human} ({size} bytes)")
        };
        cannot(&format!("it is {size}, more than {}", bound.why))
    };
    if opened.len() > bound.bytes {
        return Err(too_large(opened.len()));
    }
    read_rest(&mut file, &mut bytes, bound.bytes).map_err(|err| cannot(&err))?;
    let read = bytes.len() as u64;
    if read > bound.bytes {
        return Err(too_large(read));
    }
    Ok(bytes)
}

/// Appends the rest of `file` to `bytes`, stopping one byte past `limit` in all (a file
/// that grew past the bound is caught without reading it all). `bytes` is sized from the
/// file's length up front, so an image costs one allocation.
fn read_rest(file: &mut File, bytes: &mut Vec<u8>, limit: u64) -> std::io::Result<()> {
    let room = limit.saturating_add(1).saturating_sub(bytes.len() as u64);
    let expected = file.metadata()?.len().min(limit);
    bytes.reserve(
        usize::try_from(expected)
            .unwrap_or(0)
            .saturating_sub(bytes.len()),
    );
    file.take(room).read_to_end(bytes)?;
    Ok(())
}

/// What a file of type `kind` is, when it is not a regular file.
fn not_regular(kind: FileType) -> Option<&'static str> {
    let what = if kind.is_file() {
        return None;
    } else if kind.is_dir() {
        "it is a directory, not a regular file"
    } else if kind.is_fifo() {
        "it is a FIFO (named pipe), not a regular file: axvm reads files whole and would wait for a writer"
    } else if kind.is_char_device() {
        "it is a character device, not a regular file (a device like /dev/zero never ends)"
    } else if kind.is_block_device() {
        "it is a block device, not a regular file: give a disk to a virtio-blk backend instead"
    } else if kind.is_socket() {
        "it is a socket, not a regular file"
    } else {
        "it is not a regular file"
    };
    Some(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("axvm-bounded-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_file_within_its_bound_is_read_whole() {
        let dir = scratch("whole");
        let path = dir.join("image");
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        let bytes = read(&path, |_| Bound::guest_ram(1000)).unwrap();
        assert_eq!(bytes, vec![7u8; 1000]);
        let err = read(&path, |_| Bound::guest_ram(999)).unwrap_err();
        assert!(err.contains("more than the 999 B of guest RAM"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn an_elf_kernel_may_exceed_ram_up_to_its_own_bound() {
        let dir = scratch("elf");
        let path = dir.join("vmlinux");
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(4096, 0);
        std::fs::write(&path, &elf).unwrap();
        assert_eq!(
            read(&path, |header| Bound::kernel(1024, header)).unwrap(),
            elf
        );
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        let err = read(&path, |header| Bound::kernel(1024, header)).unwrap_err();
        assert!(err.contains("more than the 1 KiB of guest RAM"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn devices_and_directories_are_refused() {
        let err = read(Path::new("/dev/zero"), |_| Bound::config()).unwrap_err();
        assert!(err.contains("is a character device"), "{err}");
        let err = read(Path::new("/"), |_| Bound::config()).unwrap_err();
        assert!(err.contains("is a directory"), "{err}");
    }
}
