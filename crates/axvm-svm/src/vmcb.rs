//! The Virtual Machine Control Block: the 4 KiB page `VMRUN` reads the guest's state and
//! intercepts from and `#VMEXIT` writes the exit into (AMD APM vol. 2, appendix B).
//!
//! The layout is hardware ABI: every field sits at the offset the APM gives, and the tests
//! pin each one the backend relies on with `offset_of!`, so a misplaced field fails the
//! build's tests instead of corrupting a guest.

/// The control area (VMCB offsets 0x000–0x3ff): what to intercept, where the permission maps
/// and nested page tables are, and — after `#VMEXIT` — why the guest exited.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VmcbControlArea {
    /// Bits 0–15 intercept reads of CR0–CR15, bits 16–31 writes.
    pub intercept_cr: u32,
    /// Bits 0–15 intercept reads of DR0–DR15, bits 16–31 writes.
    pub intercept_dr: u32,
    /// Bit n intercepts exception vector n.
    pub intercept_exceptions: u32,
    /// Instruction and event intercepts of vector 3 (the `INTERCEPT_*` bits of [`intercept`]).
    pub intercept_misc1: u32,
    /// Instruction intercepts of vector 4 (the `INTERCEPT2_*` bits of [`intercept`]).
    pub intercept_misc2: u32,
    /// Intercept vector 5 (INVLPGB, TLBSYNC, ...), unused so far.
    pub intercept_misc3: u32,
    _reserved_018: [u8; 0x3c - 0x18],
    /// PAUSE filter threshold.
    pub pause_filter_threshold: u16,
    /// PAUSE filter count.
    pub pause_filter_count: u16,
    /// Host-physical address of the I/O permission map (see [`crate::iopm`]).
    pub iopm_base_pa: u64,
    /// Host-physical address of the MSR permission map (see [`crate::msrpm`]).
    pub msrpm_base_pa: u64,
    /// Added to the host TSC for the guest's `RDTSC`.
    pub tsc_offset: u64,
    /// The guest's address-space id (nonzero) for TLB tagging.
    pub guest_asid: u32,
    /// TLB flush command for this `VMRUN`.
    pub tlb_control: u8,
    _reserved_05d: [u8; 3],
    /// Virtual interrupt control (V_TPR, V_IRQ, V_INTR_MASKING, ...).
    pub int_ctl: u32,
    /// Virtual interrupt vector.
    pub int_vector: u32,
    /// Interrupt shadow state.
    pub int_state: u32,
    _reserved_06c: [u8; 4],
    /// Why the guest exited (see [`SvmExitCode`]).
    pub exit_code: u64,
    /// Exit-specific information (e.g. the IOIO fields, the NPF error code).
    pub exit_info1: u64,
    /// More exit-specific information (e.g. the next RIP of IOIO, the NPF address).
    pub exit_info2: u64,
    /// An event that was being delivered when the exit happened.
    pub exit_int_info: u32,
    /// Its error code.
    pub exit_int_info_err: u32,
    /// Bit 0 enables nested paging.
    pub nested_ctl: u64,
    /// AVIC APIC BAR.
    pub avic_vapic_bar: u64,
    /// GHCB guest-physical address (SEV-ES).
    pub ghcb_gpa: u64,
    /// An event to inject on the next `VMRUN`.
    pub event_inj: u32,
    /// Its error code.
    pub event_inj_err: u32,
    /// Host-physical address of the nested page tables' root (see [`crate::npt`]).
    pub nested_cr3: u64,
    /// LBR virtualization and VMSAVE/VMLOAD virtualization enables.
    pub virt_ext: u64,
    /// VMCB clean bits: which state the CPU may keep cached.
    pub clean_bits: u32,
    _reserved_0c4: u32,
    /// With NRIP save: the RIP of the instruction after the intercepted one.
    pub next_rip: u64,
    /// With decode assists: how many guest instruction bytes were fetched (0 if none).
    pub guest_insn_len: u8,
    /// With decode assists: the fetched bytes of the faulting instruction.
    pub guest_insn_bytes: [u8; 15],
    _reserved_0e0: [u8; 0x3e0 - 0xe0],
    /// Reserved for the host's own use (the processor never touches it).
    pub host_reserved: [u8; 0x20],
}

/// A segment register in the state-save area: selector, attributes, limit, base.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmcbSegment {
    /// The selector.
    pub selector: u16,
    /// The descriptor attributes, packed as type(4) S DPL(2) P AVL L D/B G.
    pub attrib: u16,
    /// The limit.
    pub limit: u32,
    /// The base.
    pub base: u64,
}

impl VmcbSegment {
    /// The L (64-bit code) attribute bit.
    pub const ATTR_L: u16 = 1 << 9;
    /// The D/B (32-bit default operand size) attribute bit.
    pub const ATTR_DB: u16 = 1 << 10;
}

/// The state-save area (VMCB offsets 0x400–0x697): the guest's registers that `VMRUN` loads
/// and `#VMEXIT` stores. RAX is here; the other general registers are the host's to save.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct VmcbSaveArea {
    /// ES.
    pub es: VmcbSegment,
    /// CS (its L and D/B bits give the guest's code size).
    pub cs: VmcbSegment,
    /// SS.
    pub ss: VmcbSegment,
    /// DS.
    pub ds: VmcbSegment,
    /// FS.
    pub fs: VmcbSegment,
    /// GS.
    pub gs: VmcbSegment,
    /// GDTR (base and limit only).
    pub gdtr: VmcbSegment,
    /// LDTR.
    pub ldtr: VmcbSegment,
    /// IDTR (base and limit only).
    pub idtr: VmcbSegment,
    /// TR.
    pub tr: VmcbSegment,
    _reserved_4a0: [u8; 0x4ca - 0x4a0],
    /// The VM permission level (SEV-SNP).
    pub vmpl: u8,
    /// The current privilege level.
    pub cpl: u8,
    _reserved_4cc: u32,
    /// EFER (SVME must stay set).
    pub efer: u64,
    _reserved_4d8: [u8; 0x548 - 0x4d8],
    /// CR4.
    pub cr4: u64,
    /// CR3 (the guest's own page-table root).
    pub cr3: u64,
    /// CR0.
    pub cr0: u64,
    /// DR7.
    pub dr7: u64,
    /// DR6.
    pub dr6: u64,
    /// RFLAGS.
    pub rflags: u64,
    /// RIP.
    pub rip: u64,
    _reserved_580: [u8; 0x5d8 - 0x580],
    /// RSP.
    pub rsp: u64,
    /// Supervisor shadow-stack CET state.
    pub s_cet: u64,
    /// Shadow-stack pointer.
    pub ssp: u64,
    /// Interrupt shadow-stack table address.
    pub isst_addr: u64,
    /// RAX.
    pub rax: u64,
    /// STAR.
    pub star: u64,
    /// LSTAR.
    pub lstar: u64,
    /// CSTAR.
    pub cstar: u64,
    /// SFMASK.
    pub sfmask: u64,
    /// KernelGSbase.
    pub kernel_gs_base: u64,
    /// SYSENTER_CS.
    pub sysenter_cs: u64,
    /// SYSENTER_ESP.
    pub sysenter_esp: u64,
    /// SYSENTER_EIP.
    pub sysenter_eip: u64,
    /// CR2.
    pub cr2: u64,
    _reserved_648: [u8; 0x668 - 0x648],
    /// The guest PAT, used by nested paging.
    pub g_pat: u64,
    /// DBGCTL.
    pub dbgctl: u64,
    /// Last-branch-from IP.
    pub br_from: u64,
    /// Last-branch-to IP.
    pub br_to: u64,
    /// Last-exception-from IP.
    pub last_excp_from: u64,
    /// Last-exception-to IP.
    pub last_excp_to: u64,
}

/// A whole VMCB: one 4 KiB-aligned page, as `VMRUN` requires.
#[repr(C, align(4096))]
#[derive(Clone, Copy, Debug)]
pub struct Vmcb {
    /// The control area.
    pub control: VmcbControlArea,
    /// The state-save area.
    pub save: VmcbSaveArea,
    _reserved_698: [u8; 0x1000 - 0x698],
}

impl Vmcb {
    /// An all-zero VMCB, the state the APM asks software to start from.
    pub fn zeroed() -> Self {
        // Every field is an integer or an array of integers, so all-zero is the natural
        // default; the constants spell it out so that no `unsafe` zeroing is needed.
        Self {
            control: VmcbControlArea::ZERO,
            save: VmcbSaveArea::ZERO,
            _reserved_698: [0; 0x1000 - 0x698],
        }
    }

    /// The guest's code size in bits (16, 32 or 64) from EFER.LMA and CS.L/CS.D, which the
    /// instruction decoder needs for the bytes of an MMIO exit.
    pub fn guest_code_bitness(&self) -> u32 {
        const EFER_LMA: u64 = 1 << 10;
        let cs = self.save.cs.attrib;
        if self.save.efer & EFER_LMA != 0 && cs & VmcbSegment::ATTR_L != 0 {
            64
        } else if cs & VmcbSegment::ATTR_DB != 0 {
            32
        } else {
            16
        }
    }
}

impl VmcbControlArea {
    const ZERO: Self = Self {
        intercept_cr: 0,
        intercept_dr: 0,
        intercept_exceptions: 0,
        intercept_misc1: 0,
        intercept_misc2: 0,
        intercept_misc3: 0,
        _reserved_018: [0; 0x3c - 0x18],
        pause_filter_threshold: 0,
        pause_filter_count: 0,
        iopm_base_pa: 0,
        msrpm_base_pa: 0,
        tsc_offset: 0,
        guest_asid: 0,
        tlb_control: 0,
        _reserved_05d: [0; 3],
        int_ctl: 0,
        int_vector: 0,
        int_state: 0,
        _reserved_06c: [0; 4],
        exit_code: 0,
        exit_info1: 0,
        exit_info2: 0,
        exit_int_info: 0,
        exit_int_info_err: 0,
        nested_ctl: 0,
        avic_vapic_bar: 0,
        ghcb_gpa: 0,
        event_inj: 0,
        event_inj_err: 0,
        nested_cr3: 0,
        virt_ext: 0,
        clean_bits: 0,
        _reserved_0c4: 0,
        next_rip: 0,
        guest_insn_len: 0,
        guest_insn_bytes: [0; 15],
        _reserved_0e0: [0; 0x3e0 - 0xe0],
        host_reserved: [0; 0x20],
    };
}

impl VmcbSaveArea {
    const ZERO: Self = Self {
        es: SEG0,
        cs: SEG0,
        ss: SEG0,
        ds: SEG0,
        fs: SEG0,
        gs: SEG0,
        gdtr: SEG0,
        ldtr: SEG0,
        idtr: SEG0,
        tr: SEG0,
        _reserved_4a0: [0; 0x4ca - 0x4a0],
        vmpl: 0,
        cpl: 0,
        _reserved_4cc: 0,
        efer: 0,
        _reserved_4d8: [0; 0x548 - 0x4d8],
        cr4: 0,
        cr3: 0,
        cr0: 0,
        dr7: 0,
        dr6: 0,
        rflags: 0,
        rip: 0,
        _reserved_580: [0; 0x5d8 - 0x580],
        rsp: 0,
        s_cet: 0,
        ssp: 0,
        isst_addr: 0,
        rax: 0,
        star: 0,
        lstar: 0,
        cstar: 0,
        sfmask: 0,
        kernel_gs_base: 0,
        sysenter_cs: 0,
        sysenter_esp: 0,
        sysenter_eip: 0,
        cr2: 0,
        _reserved_648: [0; 0x668 - 0x648],
        g_pat: 0,
        dbgctl: 0,
        br_from: 0,
        br_to: 0,
        last_excp_from: 0,
        last_excp_to: 0,
    };
}

const SEG0: VmcbSegment = VmcbSegment {
    selector: 0,
    attrib: 0,
    limit: 0,
    base: 0,
};

/// Intercept bits of the control area (APM vol. 2, table B-1).
pub mod intercept {
    /// `intercept_misc1`: physical INTR (host interrupts leave the guest).
    pub const INTR: u32 = 1 << 0;
    /// `intercept_misc1`: NMI.
    pub const NMI: u32 = 1 << 1;
    /// `intercept_misc1`: INIT (application-processor start-up goes through the host).
    pub const INIT: u32 = 1 << 3;
    /// `intercept_misc1`: CPUID.
    pub const CPUID: u32 = 1 << 18;
    /// `intercept_misc1`: HLT.
    pub const HLT: u32 = 1 << 24;
    /// `intercept_misc1`: INVLPGA (an SVM instruction the guest must not reach).
    pub const INVLPGA: u32 = 1 << 26;
    /// `intercept_misc1`: IN/OUT, filtered by the I/O permission map.
    pub const IOIO_PROT: u32 = 1 << 27;
    /// `intercept_misc1`: RDMSR/WRMSR, filtered by the MSR permission map.
    pub const MSR_PROT: u32 = 1 << 28;
    /// `intercept_misc1`: shutdown (a triple fault), which would otherwise reset the host.
    pub const SHUTDOWN: u32 = 1 << 31;
    /// `intercept_misc2`: VMRUN — the APM makes `VMRUN` fail unless this is set.
    pub const VMRUN: u32 = 1 << 0;
    /// `intercept_misc2`: VMMCALL (the guest's hypercalls).
    pub const VMMCALL: u32 = 1 << 1;
    /// `intercept_misc2`: VMLOAD. The guest's EFER.SVME must be set for `VMRUN`, so
    /// without this the guest could load state from memory the host chose.
    pub const VMLOAD: u32 = 1 << 2;
    /// `intercept_misc2`: VMSAVE (as VMLOAD).
    pub const VMSAVE: u32 = 1 << 3;
    /// `intercept_misc2`: STGI (the guest must not toggle the host's global interrupt flag).
    pub const STGI: u32 = 1 << 4;
    /// `intercept_misc2`: CLGI.
    pub const CLGI: u32 = 1 << 5;
    /// `intercept_misc2`: SKINIT.
    pub const SKINIT: u32 = 1 << 6;
}

/// Bits of the control area's `int_ctl` (virtual interrupt control).
pub mod int_ctl {
    /// V_INTR_MASKING: the guest's RFLAGS.IF masks only virtual interrupts; physical
    /// interrupts follow the host's IF, so they exit the guest (with the INTR intercept)
    /// whatever the guest does with its IF.
    pub const V_INTR_MASKING: u32 = 1 << 24;
    /// V_IRQ: a virtual interrupt (vector in `int_vector`) is pending; the processor
    /// clears it when the guest takes the interrupt.
    pub const V_IRQ: u32 = 1 << 8;
    /// V_INTR_PRIO (bits 16-19): the pending virtual interrupt's priority against V_TPR.
    pub const V_INTR_PRIO_SHIFT: u32 = 16;
    /// V_IGN_TPR: deliver the virtual interrupt whatever the guest's TPR says.
    pub const V_IGN_TPR: u32 = 1 << 20;
}

/// Bits of the control area's `nested_ctl`.
pub mod nested_ctl {
    /// NP_ENABLE: nested paging through `nested_cr3`.
    pub const NP_ENABLE: u64 = 1 << 0;
}

/// Values of the control area's `tlb_control`.
pub mod tlb_control {
    /// Keep the TLB.
    pub const DO_NOTHING: u8 = 0;
    /// Flush every ASID's entries (supported by every SVM processor, and by QEMU).
    pub const FLUSH_ALL: u8 = 1;
}

/// Why a guest exited: the VMCB's EXITCODE (APM vol. 2, appendix C). Values this crate does
/// not name are kept in [`Other`](Self::Other) so that an error can still show them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SvmExitCode {
    /// An exception of the given vector (EXITCODE 0x40 + vector).
    Exception(u8),
    /// A physical interrupt arrived (0x60).
    Intr,
    /// A physical NMI arrived (0x61).
    Nmi,
    /// An INIT signal (0x63).
    Init,
    /// CPUID (0x72).
    Cpuid,
    /// HLT (0x78).
    Hlt,
    /// IN/OUT/INS/OUTS (0x7b).
    Ioio,
    /// RDMSR/WRMSR (0x7c).
    Msr,
    /// Shutdown, e.g. a triple fault (0x7f).
    Shutdown,
    /// VMRUN inside the guest (0x80).
    Vmrun,
    /// VMMCALL (0x81).
    Vmmcall,
    /// A nested page fault (0x400).
    NestedPageFault,
    /// `VMRUN` found the guest state invalid (-1).
    Invalid,
    /// `VMRUN` found the VMSA busy (-2, SEV-ES).
    Busy,
    /// Any other code, kept as the hardware wrote it.
    Other(u64),
}

impl SvmExitCode {
    /// The name of a raw EXITCODE.
    pub const fn from_raw(code: u64) -> Self {
        match code {
            0x40..=0x5f => Self::Exception((code - 0x40) as u8),
            0x60 => Self::Intr,
            0x61 => Self::Nmi,
            0x63 => Self::Init,
            0x72 => Self::Cpuid,
            0x78 => Self::Hlt,
            0x7b => Self::Ioio,
            0x7c => Self::Msr,
            0x7f => Self::Shutdown,
            0x80 => Self::Vmrun,
            0x81 => Self::Vmmcall,
            0x400 => Self::NestedPageFault,
            u64::MAX => Self::Invalid,
            0xffff_ffff_ffff_fffe => Self::Busy,
            other => Self::Other(other),
        }
    }

    /// The raw EXITCODE.
    pub const fn raw(self) -> u64 {
        match self {
            Self::Exception(vector) => 0x40 + vector as u64,
            Self::Intr => 0x60,
            Self::Nmi => 0x61,
            Self::Init => 0x63,
            Self::Cpuid => 0x72,
            Self::Hlt => 0x78,
            Self::Ioio => 0x7b,
            Self::Msr => 0x7c,
            Self::Shutdown => 0x7f,
            Self::Vmrun => 0x80,
            Self::Vmmcall => 0x81,
            Self::NestedPageFault => 0x400,
            Self::Invalid => u64::MAX,
            Self::Busy => 0xffff_ffff_ffff_fffe,
            Self::Other(code) => code,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn control_area_fields_sit_at_the_apm_offsets() {
        assert_eq!(size_of::<VmcbControlArea>(), 0x400);
        assert_eq!(offset_of!(VmcbControlArea, intercept_misc1), 0x0c);
        assert_eq!(offset_of!(VmcbControlArea, intercept_misc2), 0x10);
        assert_eq!(offset_of!(VmcbControlArea, pause_filter_threshold), 0x3c);
        assert_eq!(offset_of!(VmcbControlArea, iopm_base_pa), 0x40);
        assert_eq!(offset_of!(VmcbControlArea, msrpm_base_pa), 0x48);
        assert_eq!(offset_of!(VmcbControlArea, tsc_offset), 0x50);
        assert_eq!(offset_of!(VmcbControlArea, guest_asid), 0x58);
        assert_eq!(offset_of!(VmcbControlArea, tlb_control), 0x5c);
        assert_eq!(offset_of!(VmcbControlArea, int_ctl), 0x60);
        assert_eq!(offset_of!(VmcbControlArea, exit_code), 0x70);
        assert_eq!(offset_of!(VmcbControlArea, exit_info1), 0x78);
        assert_eq!(offset_of!(VmcbControlArea, exit_info2), 0x80);
        assert_eq!(offset_of!(VmcbControlArea, exit_int_info), 0x88);
        assert_eq!(offset_of!(VmcbControlArea, nested_ctl), 0x90);
        assert_eq!(offset_of!(VmcbControlArea, event_inj), 0xa8);
        assert_eq!(offset_of!(VmcbControlArea, nested_cr3), 0xb0);
        assert_eq!(offset_of!(VmcbControlArea, clean_bits), 0xc0);
        assert_eq!(offset_of!(VmcbControlArea, next_rip), 0xc8);
        assert_eq!(offset_of!(VmcbControlArea, guest_insn_len), 0xd0);
        assert_eq!(offset_of!(VmcbControlArea, guest_insn_bytes), 0xd1);
        assert_eq!(offset_of!(VmcbControlArea, host_reserved), 0x3e0);
    }

    #[test]
    fn save_area_fields_sit_at_the_apm_offsets() {
        let at = |offset: usize| offset_of!(Vmcb, save) + offset;
        assert_eq!(at(offset_of!(VmcbSaveArea, es)), 0x400);
        assert_eq!(at(offset_of!(VmcbSaveArea, cs)), 0x410);
        assert_eq!(at(offset_of!(VmcbSaveArea, gdtr)), 0x460);
        assert_eq!(at(offset_of!(VmcbSaveArea, tr)), 0x490);
        assert_eq!(at(offset_of!(VmcbSaveArea, cpl)), 0x4cb);
        assert_eq!(at(offset_of!(VmcbSaveArea, efer)), 0x4d0);
        assert_eq!(at(offset_of!(VmcbSaveArea, cr4)), 0x548);
        assert_eq!(at(offset_of!(VmcbSaveArea, cr3)), 0x550);
        assert_eq!(at(offset_of!(VmcbSaveArea, cr0)), 0x558);
        assert_eq!(at(offset_of!(VmcbSaveArea, dr7)), 0x560);
        assert_eq!(at(offset_of!(VmcbSaveArea, rflags)), 0x570);
        assert_eq!(at(offset_of!(VmcbSaveArea, rip)), 0x578);
        assert_eq!(at(offset_of!(VmcbSaveArea, rsp)), 0x5d8);
        assert_eq!(at(offset_of!(VmcbSaveArea, rax)), 0x5f8);
        assert_eq!(at(offset_of!(VmcbSaveArea, star)), 0x600);
        assert_eq!(at(offset_of!(VmcbSaveArea, kernel_gs_base)), 0x620);
        assert_eq!(at(offset_of!(VmcbSaveArea, cr2)), 0x640);
        assert_eq!(at(offset_of!(VmcbSaveArea, g_pat)), 0x668);
        assert_eq!(at(offset_of!(VmcbSaveArea, last_excp_to)), 0x690);
        assert_eq!(size_of::<VmcbSegment>(), 16);
        assert_eq!(size_of::<Vmcb>(), 0x1000);
        assert_eq!(core::mem::align_of::<Vmcb>(), 0x1000);
    }

    #[test]
    fn exit_codes_round_trip_and_unknown_ones_are_kept() {
        for raw in [
            0x40,
            0x4e,
            0x60,
            0x72,
            0x78,
            0x7b,
            0x7c,
            0x7f,
            0x81,
            0x400,
            u64::MAX,
        ] {
            assert_eq!(SvmExitCode::from_raw(raw).raw(), raw);
        }
        assert_eq!(SvmExitCode::from_raw(0x4e), SvmExitCode::Exception(14));
        assert_eq!(SvmExitCode::from_raw(0x8d), SvmExitCode::Other(0x8d));
        assert_eq!(SvmExitCode::from_raw(0x8d).raw(), 0x8d);
    }

    #[test]
    fn code_size_follows_efer_lma_and_cs_attributes() {
        let mut vmcb = Vmcb::zeroed();
        assert_eq!(vmcb.guest_code_bitness(), 16);
        vmcb.save.cs.attrib = VmcbSegment::ATTR_DB;
        assert_eq!(vmcb.guest_code_bitness(), 32);
        vmcb.save.cs.attrib = VmcbSegment::ATTR_L;
        assert_eq!(
            vmcb.guest_code_bitness(),
            16,
            "CS.L means nothing outside long mode"
        );
        vmcb.save.efer = 1 << 10;
        assert_eq!(vmcb.guest_code_bitness(), 64);
    }
}
