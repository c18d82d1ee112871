//! [`HostLimits`]: what KVM on this host can map, asked of `/dev/kvm` without creating a VM,
//! so that the plan (and thus `axvm check`) refuses a region KVM would refuse, with the
//! reason, instead of leaving it to `KVM_SET_USER_MEMORY_REGION`'s "Invalid argument".

use axvm::{MappingFlags, VmMemConfig};
use kvm_bindings::KVM_MAX_CPUID_ENTRIES;
use kvm_ioctls::Kvm;

use crate::error::KvmError;

/// The most one KVM memory slot holds: KVM counts a slot's pages in 31 bits
/// (`KVM_MEM_MAX_NR_PAGES`), so 8 TiB less one page.
pub const MAX_SLOT_BYTES: u64 = ((1 << 31) - 1) * 4096;

/// CPUID leaf with the physical address width in EAX bits 7:0.
const ADDRESS_SIZES_LEAF: u32 = 0x8000_0008;

/// The address width x86 allows when CPUID does not say (the architectural maximum).
const ARCHITECTURAL_PHYS_BITS: u8 = 52;

/// What this host's KVM can map for one VM.
///
/// ```
/// use axvm_kvm::HostLimits;
///
/// // `None` without /dev/kvm: the plan then checks only what needs no host.
/// if let Some(limits) = HostLimits::query() {
///     assert!(limits.memory_slots > 0);
///     assert!((32..=52).contains(&limits.phys_addr_bits));
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostLimits {
    /// Memory slots a VM may have (`KVM_CAP_NR_MEMSLOTS`): one per memory region.
    pub memory_slots: usize,
    /// Guest-physical address bits: CPUID 0x8000_0008 as KVM offers it to guests. Memory
    /// at or above 2^bits is beyond what the guest can address (and, on hosts with nested
    /// paging, what KVM can map).
    pub phys_addr_bits: u8,
}

impl HostLimits {
    /// The limits of KVM here, or `None` when `/dev/kvm` cannot be opened (`axvm check`
    /// reports that separately).
    pub fn query() -> Option<Self> {
        let kvm = Kvm::new().ok()?;
        Some(Self::of(&kvm))
    }

    /// The limits of `kvm`.
    pub(crate) fn of(kvm: &Kvm) -> Self {
        // KVM_CAP_NR_MEMSLOTS; kvm-ioctls falls back to the 32 slots KVM always had.
        let memory_slots = kvm.get_nr_memslots();
        let phys_addr_bits = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .ok()
            .and_then(|cpuid| {
                cpuid
                    .as_slice()
                    .iter()
                    .find(|entry| entry.function == ADDRESS_SIZES_LEAF)
                    .map(|entry| (entry.eax & 0xff) as u8)
            })
            .filter(|&bits| bits != 0)
            .unwrap_or(ARCHITECTURAL_PHYS_BITS);
        Self {
            memory_slots,
            phys_addr_bits,
        }
    }

    /// The first guest-physical address the guest cannot reach.
    pub fn phys_addr_limit(&self) -> u64 {
        1u64.checked_shl(u32::from(self.phys_addr_bits))
            .unwrap_or(u64::MAX)
    }

    /// Why KVM cannot map `region` as the `slot`-th memory slot (0-based), or `None`.
    pub fn refusal(&self, slot: usize, region: &VmMemConfig) -> Option<KvmError> {
        region_refusal(slot, region, Some(self))
    }
}

/// Why KVM cannot map `region` as memory slot `slot` on a host with `limits` (only the
/// checks that need no host when `limits` is `None`).
pub(crate) fn region_refusal(
    slot: usize,
    region: &VmMemConfig,
    limits: Option<&HostLimits>,
) -> Option<KvmError> {
    if !region.flags.contains(MappingFlags::READ) {
        return Some(KvmError::UnreadableMemory);
    }
    if region.size > MAX_SLOT_BYTES {
        return Some(KvmError::SlotTooLarge {
            size: region.size,
            max: MAX_SLOT_BYTES,
        });
    }
    let limits = limits?;
    if slot >= limits.memory_slots {
        return Some(KvmError::TooManySlots {
            limit: limits.memory_slots,
        });
    }
    let end = region.gpa.as_u64().saturating_add(region.size);
    if end > limits.phys_addr_limit() {
        return Some(KvmError::BeyondPhysAddrBits {
            end,
            bits: limits.phys_addr_bits,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axvm::{GuestPhysAddr, VmMemMappingType};

    fn region(gpa: u64, size: u64, flags: MappingFlags) -> VmMemConfig {
        VmMemConfig {
            gpa: GuestPhysAddr::new(gpa),
            size,
            flags,
            map_type: VmMemMappingType::MapAlloc,
        }
    }

    const LIMITS: HostLimits = HostLimits {
        memory_slots: 2,
        phys_addr_bits: 40,
    };

    #[test]
    fn each_limit_has_its_own_refusal() {
        let rw = MappingFlags::READ | MappingFlags::WRITE;
        assert_eq!(LIMITS.refusal(1, &region(0, 0x1000, rw)), None);
        assert_eq!(
            LIMITS.refusal(0, &region(0, 0x1000, MappingFlags::WRITE)),
            Some(KvmError::UnreadableMemory)
        );
        assert_eq!(
            LIMITS.refusal(2, &region(0, 0x1000, rw)),
            Some(KvmError::TooManySlots { limit: 2 })
        );
        assert_eq!(
            LIMITS.refusal(0, &region((1 << 40) - 0x1000, 0x2000, rw)),
            Some(KvmError::BeyondPhysAddrBits {
                end: (1 << 40) + 0x1000,
                bits: 40
            })
        );
        assert!(matches!(
            LIMITS.refusal(0, &region(0, MAX_SLOT_BYTES + 0x1000, rw)),
            Some(KvmError::SlotTooLarge { .. })
        ));
        // The messages differ, each with its own fix.
        let texts: Vec<String> = [
            KvmError::UnreadableMemory,
            KvmError::TooManySlots { limit: 2 },
            KvmError::BeyondPhysAddrBits {
                end: 1 << 41,
                bits: 40,
            },
            KvmError::SlotTooLarge {
                size: 1 << 44,
                max: MAX_SLOT_BYTES,
            },
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert!(texts[0].contains("add READ"), "{}", texts[0]);
        assert!(texts[1].contains("fewer regions"), "{}", texts[1]);
        assert!(texts[2].contains("move it below"), "{}", texts[2]);
        assert!(texts[3].contains("split it"), "{}", texts[3]);
    }

    #[test]
    fn the_host_limits_are_sane_where_kvm_is() {
        if let Some(limits) = HostLimits::query() {
            assert!(limits.memory_slots >= 32, "{limits:?}");
            assert!((32..=52).contains(&limits.phys_addr_bits), "{limits:?}");
        }
    }
}
