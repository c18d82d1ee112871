//! Mapping flags and mapping types of guest memory regions, with the bit values of the
//! ArceOS hypervisor's config files.

use core::fmt;

/// Access rights and attributes of a guest-memory region (the `flags` column of
/// `memory_regions` and what a device mapping needs).
///
/// ```
/// use axvm::MappingFlags;
/// let ram = MappingFlags::from_bits(0x7).unwrap();
/// assert!(ram.contains(MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE));
/// assert!(MappingFlags::from_bits(0x40).is_none()); // no such bit
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MappingFlags(u64);

impl MappingFlags {
    /// The guest may read.
    pub const READ: Self = Self(0x1);
    /// The guest may write.
    pub const WRITE: Self = Self(0x2);
    /// The guest may execute.
    pub const EXECUTE: Self = Self(0x4);
    /// Accessible from guest user mode (stage-1 notion kept for config compatibility).
    pub const USER: Self = Self(0x8);
    /// Device memory: strongly ordered, never cached. Only for pass-through devices.
    pub const DEVICE: Self = Self(0x10);
    /// Uncached normal memory.
    pub const UNCACHED: Self = Self(0x20);

    const ALL: u64 = 0x3f;

    /// No rights at all.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The flags for `bits`, or `None` when a bit has no meaning.
    pub const fn from_bits(bits: u64) -> Option<Self> {
        if bits & !Self::ALL == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The raw bits.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for MappingFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl fmt::Debug for MappingFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MappingFlags {
    /// Renders like `ls -l` does permissions: `rwx---`, then attribute letters.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let letters = [
            (Self::READ, 'r'),
            (Self::WRITE, 'w'),
            (Self::EXECUTE, 'x'),
            (Self::USER, 'u'),
            (Self::DEVICE, 'd'),
            (Self::UNCACHED, 'c'),
        ];
        for (flag, letter) in letters {
            let shown = if self.contains(flag) { letter } else { '-' };
            write!(f, "{shown}")?;
        }
        Ok(())
    }
}

/// How a guest-memory region gets its host memory (the `map_type` column).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum VmMemMappingType {
    /// The host allocates the memory anywhere (config value 0).
    #[default]
    MapAlloc,
    /// The memory sits at the host-physical address equal to its guest-physical address
    /// (config value 1): for guests that must see real physical addresses. A host that cannot
    /// allocate there falls back to [`MapAlloc`](Self::MapAlloc) with a warning.
    MapIdentical,
    /// Memory the host already reserved for this guest at the same physical address
    /// (config value 2): mapped, never allocated nor freed by axvm.
    MapReserved,
}

impl VmMemMappingType {
    /// The mapping type for a config value, or `None` for an unknown value.
    pub const fn from_raw(value: u64) -> Option<Self> {
        match value {
            0 => Some(Self::MapAlloc),
            1 => Some(Self::MapIdentical),
            2 => Some(Self::MapReserved),
            _ => None,
        }
    }
}

impl fmt::Display for VmMemMappingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MapAlloc => "MapAlloc",
            Self::MapIdentical => "MapIdentical",
            Self::MapReserved => "MapReserved",
        })
    }
}
