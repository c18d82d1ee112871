//! How an x86 vCPU starts: the processor mode, the registers a boot protocol passes values
//! in, and when it starts. One type for every x86 backend, so a boot loader decides a guest's
//! initial state once; and one description of the state that follows ([`BootState`]), which
//! each backend (KVM's registers, an SVM VMCB) only converts.

use alloc::format;

use axvm::{AxVM, AxVMHal, ConfigError, GuestPhysAddr};

use crate::boot_tables::write_gdt;

use crate::boot_tables::{CODE32_SELECTOR, CODE64_SELECTOR, DATA_SELECTOR};

/// The processor mode a vCPU starts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CpuMode {
    /// 16-bit real mode at the entry address, like a PC after reset jumping to a BIOS-style
    /// entry (how the ArceOS hypervisor starts x86 guests).
    #[default]
    Real,
    /// 32-bit protected mode, paging off, interrupts off, flat 4 GiB segments from the GDT at
    /// `gdt_base` (code 0x18, data 0x10): the Multiboot and PVH entry state.
    Protected32 {
        /// Guest-physical address of the GDT.
        gdt_base: GuestPhysAddr,
    },
    /// 64-bit long mode, paging on, interrupts off, with the page tables at
    /// `page_table_root` and the GDT at `gdt_base` (code 0x8, data 0x10).
    Long {
        /// Guest-physical address of the PML4.
        page_table_root: GuestPhysAddr,
        /// Guest-physical address of the GDT.
        gdt_base: GuestPhysAddr,
    },
}

/// Registers a boot protocol hands values in (Multiboot: EAX magic, EBX info block; PVH: EBX
/// start_info; Linux: RSI zero page). The others start at zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BootRegs {
    /// RAX.
    pub rax: u64,
    /// RBX.
    pub rbx: u64,
    /// RSI.
    pub rsi: u64,
    /// RSP.
    pub rsp: u64,
}

/// When a vCPU starts running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartPolicy {
    /// At boot, at its entry (axvm's direct start; always the case for vCPU 0).
    #[default]
    AtBoot,
    /// When another vCPU sends it INIT-SIPI-SIPI through the local APIC, as on a real PC:
    /// the entry is then the SIPI vector, and the entry set here is unused.
    WaitForSipi,
}

/// How one vCPU starts: the `SetupConfig` of every x86 backend (`axvm_kvm::KvmVCpu`,
/// `axvm_svm::SvmVCpu`), chosen by the boot loader from the image format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct VCpuBoot {
    /// The processor mode.
    pub mode: CpuMode,
    /// Registers with values from the boot protocol.
    pub regs: BootRegs,
    /// When it starts.
    pub start: StartPolicy,
}

/// vCPU 0's state for the 32-bit protocols (Multiboot, PVH): protected mode, paging and
/// interrupts off, flat segments from the GDT written at `gdt` (the boot layout's), and
/// `regs`. Refused, naming the memory regions, when `gdt` is not RAM.
pub fn protected32_boot<H: AxVMHal>(
    vm: &AxVM<H>,
    gdt: u64,
    regs: BootRegs,
) -> Result<VCpuBoot, ConfigError> {
    let gdt_base = write_gdt(vm, gdt).map_err(|err| {
        ConfigError::invalid(
            "kernel.memory_regions",
            format!("cannot write the GDT at {gdt:#x}, which must be RAM: {err}"),
        )
    })?;
    Ok(VCpuBoot {
        mode: CpuMode::Protected32 { gdt_base },
        regs,
        start: StartPolicy::AtBoot,
    })
}

/// How an application processor starts under the PC boot protocols: it waits for the
/// kernel's INIT-SIPI-SIPI, as on a PC, whose firmware hands over with only the BSP running.
pub const WAIT_FOR_SIPI: VCpuBoot = VCpuBoot {
    mode: CpuMode::Real,
    regs: BootRegs {
        rax: 0,
        rbx: 0,
        rsi: 0,
        rsp: 0,
    },
    start: StartPolicy::WaitForSipi,
};

/// A segment register's attributes, packed as AMD's VMCB keeps them: type (bits 0-3), S (4),
/// DPL (5-6), P (7), AVL (8), L (9), D/B (10), G (11), i.e. the descriptor's bits 40-47 and
/// 52-55. KVM's `kvm_segment` spells the same bits as separate fields: see the accessors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SegmentAttributes(pub u16);

impl SegmentAttributes {
    /// S: a code or data segment (clear: a system segment).
    pub const S: u16 = 1 << 4;
    /// P: present.
    pub const P: u16 = 1 << 7;
    /// L: 64-bit code.
    pub const L: u16 = 1 << 9;
    /// D/B: 32-bit default operand size (code) or upper bound (stack).
    pub const DB: u16 = 1 << 10;
    /// G: the limit counts 4 KiB units.
    pub const G: u16 = 1 << 11;
    /// Read/write data, accessed, present.
    pub const DATA: Self = Self(0x3 | Self::S | Self::P);
    /// Execute/read code, accessed, present.
    pub const CODE: Self = Self(0xb | Self::S | Self::P);
    /// A present LDT system segment.
    pub const LDT: Self = Self(0x2 | Self::P);
    /// A present busy 32-bit TSS.
    pub const BUSY_TSS: Self = Self(0xb | Self::P);

    /// These attributes with the bits `flags` set too.
    pub const fn with(self, flags: u16) -> Self {
        Self(self.0 | flags)
    }

    /// The 4-bit segment type.
    pub const fn type_(self) -> u8 {
        (self.0 & 0xf) as u8
    }

    /// The S bit (code/data rather than system), as 0 or 1.
    pub const fn s(self) -> u8 {
        self.bit(4)
    }

    /// The descriptor privilege level.
    pub const fn dpl(self) -> u8 {
        ((self.0 >> 5) & 3) as u8
    }

    /// The P bit, as 0 or 1.
    pub const fn present(self) -> u8 {
        self.bit(7)
    }

    /// The AVL bit, as 0 or 1.
    pub const fn avl(self) -> u8 {
        self.bit(8)
    }

    /// The L bit, as 0 or 1.
    pub const fn long(self) -> u8 {
        self.bit(9)
    }

    /// The D/B bit, as 0 or 1.
    pub const fn db(self) -> u8 {
        self.bit(10)
    }

    /// The G bit, as 0 or 1.
    pub const fn granularity(self) -> u8 {
        self.bit(11)
    }

    const fn bit(self, index: u32) -> u8 {
        ((self.0 >> index) & 1) as u8
    }
}

/// A segment register as loaded: the selector and the cached descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Segment {
    /// The selector.
    pub selector: u16,
    /// The base address.
    pub base: u64,
    /// The limit in bytes (already scaled when G is set).
    pub limit: u32,
    /// Type, S, DPL, P, AVL, L, D/B, G.
    pub attributes: SegmentAttributes,
}

impl Segment {
    /// A segment with these four parts.
    pub const fn new(selector: u16, base: u64, limit: u32, attributes: SegmentAttributes) -> Self {
        Self {
            selector,
            base,
            limit,
            attributes,
        }
    }

    /// A flat 4 GiB segment from the boot GDT (`attributes` with G added).
    const fn flat(selector: u16, attributes: SegmentAttributes) -> Self {
        Self::new(
            selector,
            0,
            0xffff_ffff,
            attributes.with(SegmentAttributes::G),
        )
    }
}

/// A descriptor-table register (GDTR, IDTR).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TableRegister {
    /// The table's linear address.
    pub base: u64,
    /// Its size in bytes, minus one.
    pub limit: u16,
}

/// The whole architectural state a vCPU starts with, in one place for every x86 backend:
/// [`BootState::new`] for a start at an entry in a [`CpuMode`], [`BootState::after_init`] for
/// the processor after INIT, [`BootState::after_sipi`] for an AP a start-up IPI woke. The
/// values are KVM's: the KVM host starts from a new vCPU's `KVM_GET_SREGS` (which is
/// [`BootState::after_init`]) and changes only what each mode needs, and each backend only
/// converts this into its own structures (KVM's `kvm_sregs`/`kvm_regs`, an SVM VMCB).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootState {
    /// CS.
    pub cs: Segment,
    /// DS.
    pub ds: Segment,
    /// ES.
    pub es: Segment,
    /// FS.
    pub fs: Segment,
    /// GS.
    pub gs: Segment,
    /// SS.
    pub ss: Segment,
    /// LDTR (the reset one in every mode).
    pub ldtr: Segment,
    /// TR (the reset one in every mode).
    pub tr: Segment,
    /// GDTR.
    pub gdtr: TableRegister,
    /// IDTR (the reset one in every mode: no IDT, interrupts are off).
    pub idtr: TableRegister,
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// EFER as the guest sees it (a backend adds its own bits, such as SVM's SVME).
    pub efer: u64,
    /// RFLAGS: only the reserved bit 1; IF and the rest clear.
    pub rflags: u64,
    /// RIP.
    pub rip: u64,
    /// RAX, RBX, RSI and RSP; every other general register starts at zero.
    pub regs: BootRegs,
}

/// CR0 after reset: CD | NW | ET (KVM's reset value, which a real-mode start keeps).
pub const CR0_RESET: u64 = 0x6000_0010;
const CR0_PE: u64 = 1 << 0;
const CR0_MP: u64 = 1 << 1;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_OSFXSR: u64 = 1 << 9;
const CR4_OSXMMEXCPT: u64 = 1 << 10;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
/// RFLAGS bit 1 is reserved and always set.
const RFLAGS_RESERVED: u64 = 1 << 1;
/// The boot GDT's limit: its entries, 8 bytes each, minus one.
const GDT_LIMIT: u16 = (crate::boot_tables::GDT_ENTRIES * 8 - 1) as u16;

impl BootState {
    /// The processor after INIT, as KVM gives a new vCPU: real mode, CS:IP at f000:fff0 with
    /// base 0xffff_0000, 64 KiB segments, CR0 = [`CR0_RESET`].
    pub const fn after_init() -> Self {
        let data = Segment::new(0, 0, 0xffff, SegmentAttributes::DATA);
        let empty_table = TableRegister {
            base: 0,
            limit: 0xffff,
        };
        Self {
            cs: Segment::new(0xf000, 0xffff_0000, 0xffff, SegmentAttributes::CODE),
            ds: data,
            es: data,
            fs: data,
            gs: data,
            ss: data,
            ldtr: Segment::new(0, 0, 0xffff, SegmentAttributes::LDT),
            tr: Segment::new(0, 0, 0xffff, SegmentAttributes::BUSY_TSS),
            gdtr: empty_table,
            idtr: empty_table,
            cr0: CR0_RESET,
            cr3: 0,
            cr4: 0,
            efer: 0,
            rflags: RFLAGS_RESERVED,
            rip: 0xfff0,
            regs: BootRegs {
                rax: 0,
                rbx: 0,
                rsi: 0,
                rsp: 0,
            },
        }
    }

    /// An AP after INIT and a start-up IPI with `vector`: the reset state with CS =
    /// vector << 8 (base vector << 12) and IP = 0.
    pub const fn after_sipi(vector: u8) -> Self {
        let mut state = Self::after_init();
        state.cs.selector = (vector as u16) << 8;
        state.cs.base = (vector as u64) << 12;
        state.rip = 0;
        state
    }

    /// The state that starts a vCPU at `entry` as `boot` says (its start policy is the
    /// caller's): the reset state with the mode's segments, control registers and entry,
    /// and the boot protocol's registers.
    pub fn new(boot: &VCpuBoot, entry: GuestPhysAddr) -> Self {
        let mut state = Self::after_init();
        state.regs = boot.regs;
        let entry = entry.as_u64();
        match boot.mode {
            CpuMode::Real => state.enter_real_mode(entry),
            CpuMode::Protected32 { gdt_base } => {
                let code = SegmentAttributes::CODE.with(SegmentAttributes::DB);
                state.load_flat_segments(Segment::flat(CODE32_SELECTOR, code), gdt_base);
                state.cr0 = CR0_PE | CR0_ET;
                state.rip = entry;
            }
            CpuMode::Long {
                page_table_root,
                gdt_base,
            } => {
                let code = SegmentAttributes::CODE.with(SegmentAttributes::L);
                state.load_flat_segments(Segment::flat(CODE64_SELECTOR, code), gdt_base);
                state.cr3 = page_table_root.as_u64();
                state.cr4 = CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT;
                state.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
                state.efer = EFER_LME | EFER_LMA;
                state.rip = entry;
            }
        }
        state
    }

    /// CS, DS, ES, FS, GS and SS, in that order.
    pub const fn segments(&self) -> [Segment; 6] {
        [self.cs, self.ds, self.es, self.fs, self.gs, self.ss]
    }

    /// CS:IP reaches `entry` (CS base = entry & !0xffff, selector = base >> 4); the other
    /// segments start at 0, like after reset.
    fn enter_real_mode(&mut self, entry: u64) {
        let cs_base = entry & !0xffff;
        self.cs.base = cs_base;
        self.cs.selector = (cs_base >> 4) as u16;
        for segment in self.data_segments_mut() {
            segment.base = 0;
            segment.selector = 0;
        }
        self.rip = entry & 0xffff;
    }

    /// Loads `code` into CS, the boot GDT's flat data segment into the others, and GDTR.
    fn load_flat_segments(&mut self, code: Segment, gdt_base: GuestPhysAddr) {
        let data_attributes = SegmentAttributes::DATA.with(SegmentAttributes::DB);
        let data = Segment::flat(DATA_SELECTOR, data_attributes);
        self.cs = code;
        for segment in self.data_segments_mut() {
            *segment = data;
        }
        self.gdtr = TableRegister {
            base: gdt_base.as_u64(),
            limit: GDT_LIMIT,
        };
    }

    fn data_segments_mut(&mut self) -> [&mut Segment; 5] {
        [
            &mut self.ds,
            &mut self.es,
            &mut self.fs,
            &mut self.gs,
            &mut self.ss,
        ]
    }
}

#[cfg(test)]
mod tests;
