//! Address types and access widths.
//!
//! Guest-physical, host-physical and host-virtual addresses are distinct types so that the
//! compiler catches a GPA passed where an HPA is expected: the mix-up behind many "the guest
//! reads garbage" bugs in a hypervisor.

use core::fmt;

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(u64);

        impl $name {
            /// Wraps a raw address.
            pub const fn new(addr: u64) -> Self {
                Self(addr)
            }

            /// The raw address.
            pub const fn as_u64(self) -> u64 {
                self.0
            }

            /// `self + offset`, or `None` when it would wrap around the address space.
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(addr) => Some(Self(addr)),
                    None => None,
                }
            }

            /// The distance from `base` up to `self`, or `None` when `self` is below `base`.
            pub const fn checked_offset_from(self, base: Self) -> Option<u64> {
                self.0.checked_sub(base.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }

        impl fmt::LowerHex for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address_type!(
    /// An address in the guest's physical address space.
    ///
    /// ```
    /// use axvm::GuestPhysAddr;
    /// let gpa = GuestPhysAddr::new(0x20_0000);
    /// assert_eq!(gpa.checked_add(0x10), Some(GuestPhysAddr::new(0x20_0010)));
    /// assert_eq!(format!("{gpa}"), "0x200000");
    /// ```
    GuestPhysAddr
);
address_type!(
    /// An address in the host's physical address space (what a type-1 host maps into the
    /// nested page tables; a hosted VMM rarely sees one).
    HostPhysAddr
);
address_type!(
    /// An address in the host's virtual address space: where the VMM itself reaches guest RAM.
    HostVirtAddr
);

/// The size of one guest access: a port, MMIO or system-register read or write.
///
/// ```
/// use axvm::AccessWidth;
/// assert_eq!(AccessWidth::from_size(2), Some(AccessWidth::Word));
/// assert_eq!(AccessWidth::Word.truncate(0x1234_5678), 0x5678);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccessWidth {
    /// 8 bits.
    Byte,
    /// 16 bits.
    Word,
    /// 32 bits.
    Dword,
    /// 64 bits.
    Qword,
}

impl AccessWidth {
    /// The width of an access of `size` bytes, or `None` for sizes no instruction produces.
    pub const fn from_size(size: usize) -> Option<Self> {
        match size {
            1 => Some(Self::Byte),
            2 => Some(Self::Word),
            4 => Some(Self::Dword),
            8 => Some(Self::Qword),
            _ => None,
        }
    }

    /// The width in bytes.
    pub const fn size(self) -> usize {
        match self {
            Self::Byte => 1,
            Self::Word => 2,
            Self::Dword => 4,
            Self::Qword => 8,
        }
    }

    /// A mask of the low `size() * 8` bits.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Qword => u64::MAX,
            _ => (1u64 << (self.size() * 8)) - 1,
        }
    }

    /// `value` cut to this width (the bits the access actually carries).
    pub const fn truncate(self, value: u64) -> u64 {
        value & self.mask()
    }
}

impl fmt::Display for AccessWidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-byte", self.size())
    }
}

/// The size of a page of guest memory; regions are mapped in whole pages.
pub const PAGE_SIZE: u64 = 0x1000;

/// Whether `value` is a multiple of [`PAGE_SIZE`].
pub const fn is_page_aligned(value: u64) -> bool {
    value % PAGE_SIZE == 0
}
