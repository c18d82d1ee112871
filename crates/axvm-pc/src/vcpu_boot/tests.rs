//! Each mode's start state, value by value (the values the KVM host has always set).

use super::*;

const REGS: BootRegs = BootRegs {
    rax: 0x2bad_b002,
    rbx: 0x9500,
    rsi: 0x7000,
    rsp: 0x8_0000,
};

fn start(mode: CpuMode, entry: u64) -> BootState {
    let boot = VCpuBoot {
        mode,
        regs: REGS,
        start: StartPolicy::AtBoot,
    };
    BootState::new(&boot, GuestPhysAddr::new(entry))
}

#[test]
fn real_mode_keeps_the_reset_state_with_cs_ip_at_the_entry() {
    let state = start(CpuMode::Real, 0x9_3456);
    let reset = BootState::after_init();
    assert_eq!(state.cs.base, 0x9_0000);
    assert_eq!(state.cs.selector, 0x9000);
    assert_eq!(state.cs.limit, 0xffff);
    assert_eq!(state.cs.attributes, SegmentAttributes(0x9b));
    assert_eq!(state.rip, 0x3456);
    for segment in &state.segments()[1..] {
        assert_eq!(
            *segment,
            Segment::new(0, 0, 0xffff, SegmentAttributes(0x93))
        );
    }
    assert_eq!(state.cr0, 0x6000_0010);
    assert_eq!((state.cr3, state.cr4, state.efer), (0, 0, 0));
    assert_eq!((state.gdtr, state.idtr), (reset.gdtr, reset.idtr));
    assert_eq!((state.ldtr, state.tr), (reset.ldtr, reset.tr));
    assert_eq!(state.rflags, 2);
    assert_eq!(state.regs, REGS);
}

#[test]
fn protected32_uses_the_boot_gdts_flat_32_bit_segments() {
    let state = start(
        CpuMode::Protected32 {
            gdt_base: GuestPhysAddr::new(0x500),
        },
        0x12_3456,
    );
    // Code 0x18: type 0xb, S, P, D, G; data 0x10: type 3, S, P, B, G.
    assert_eq!(
        state.cs,
        Segment::new(0x18, 0, 0xffff_ffff, SegmentAttributes(0xc9b))
    );
    for segment in &state.segments()[1..] {
        assert_eq!(
            *segment,
            Segment::new(0x10, 0, 0xffff_ffff, SegmentAttributes(0xc93))
        );
    }
    assert_eq!(
        state.gdtr,
        TableRegister {
            base: 0x500,
            limit: 31
        }
    );
    assert_eq!(state.cr0, 0x11, "PE | ET");
    assert_eq!((state.cr3, state.cr4, state.efer), (0, 0, 0));
    assert_eq!(state.rip, 0x12_3456);
}

#[test]
fn long_mode_has_paging_on_and_64_bit_code() {
    let state = start(
        CpuMode::Long {
            page_table_root: GuestPhysAddr::new(0x2000),
            gdt_base: GuestPhysAddr::new(0x1000),
        },
        0x20_0000,
    );
    assert_eq!(
        state.cs,
        Segment::new(0x8, 0, 0xffff_ffff, SegmentAttributes(0xa9b))
    );
    let cs = state.cs.attributes;
    assert_eq!((cs.long(), cs.db(), cs.granularity()), (1, 0, 1));
    assert_eq!((cs.type_(), cs.s(), cs.present(), cs.dpl()), (0xb, 1, 1, 0));
    assert_eq!(state.ss.attributes.db(), 1);
    assert_eq!(state.gdtr.base, 0x1000);
    assert_eq!(state.cr3, 0x2000);
    assert_eq!(state.cr4, 0x620, "PAE | OSFXSR | OSXMMEXCPT");
    assert_eq!(state.cr0, 0x8001_0033, "PE | MP | ET | NE | WP | PG");
    assert_eq!(state.efer, 0x500, "LME | LMA");
    assert_eq!(state.rip, 0x20_0000);
}

#[test]
fn a_sipi_starts_at_vector_times_4_kib() {
    let state = BootState::after_sipi(0x9a);
    assert_eq!(
        (state.cs.selector, state.cs.base, state.rip),
        (0x9a00, 0x9_a000, 0)
    );
    assert_eq!(state.cr0, CR0_RESET);
}
