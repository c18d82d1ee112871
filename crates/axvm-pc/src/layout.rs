//! The PC's guest-physical layout and interrupt wiring: every address, size and pin axvm
//! relies on, each written once here with why it is where it is. Every host shares it (the
//! KVM host re-exports it as its `platform::pc::layout`), so a guest finds its firmware
//! tables and boot data at the same addresses under each.
//!
//! ```text
//! 0x0000_0000-0x0000_0500  real-mode IVT and BIOS data area (never given to boot data)
//! 0x0000_1000-0x0000_1020  GDT                                 (axvm-pc boot_tables.rs)
//! 0x0000_2000-0x0000_8000  boot page tables: PML4, PDPT, 4 PDs (axvm-pc boot_tables.rs)
//!   0x0000_6000-0x0000_7000  Multiboot entry stack, ESP 0x7000 (no page tables then)
//! 0x0000_9000-0x0009_f000  boot-protocol data: Multiboot info, PVH start_info, Linux zero
//!                          page, command line, memory maps, module lists (BootInfoWriter)
//! 0x0009_fc00-0x0010_0000  reserved, as on a PC: EBDA, VGA hole, option ROMs, BIOS
//!   0x0009_fc00-0x000a_0000  EBDA (never given to boot data)
//!   0x000e_0000-0x000f_0000  ACPI tables, RSDP first            (acpi/)     
//!   0x000f_0000-0x000f_1000  MP floating pointer and table      (mptable.rs)     
//! 0x0010_0000-             kernels and ramdisks (a bzImage's protected-mode kernel here)
//!           -0xfebf_ffff   end of the PCI memory window the DSDT declares
//! 0xfec0_0000-0xfec0_1000  IOAPIC registers                    (KVM's in-kernel IOAPIC)
//! 0xfed0_0000-0xfed0_0400  HPET registers, when the config passes the HPET through
//!                          (axvm-kvm devices/hpet.rs)
//! 0xfee0_0000-0xfee0_1000  local APIC registers, MSI window     (KVM's in-kernel LAPIC)
//! 0xfffb_d000-0xfffc_0000  KVM's real-mode TSS (Intel hosts)
//! ```
//!
//! Each boot protocol fills the boot data area from its start, in this order (the register
//! names the block the kernel is given):
//!
//! - Multiboot: command line, boot loader name, module name, module list, memory map, then
//!   the information structure (EBX); the GDT.
//! - PVH: command line, module list, memory map, then `hvm_start_info` (EBX); the GDT.
//! - Linux: command line, then the zero page (RSI) at the next 4 KiB boundary (0xa000 for
//!   a command line under 4 KiB); the GDT and the page tables.
//!
//! These are the places while no image is there. Kernels and ramdisks may load anywhere in
//! RAM, below 1 MiB too (a Multiboot boot loader linked at 0x9000, the ELF headers `ld`
//! loads at 0xff000 below a 1 MiB text): for the boot protocols, `low_memory.rs` then
//! moves what an image covers, only the bytes it needs, to the first free RAM of where it
//! may live:
//!
//! - the GDT and page tables: conventional memory (0x1000-0x9fc00), then above 1 MiB;
//! - the boot data: the rest of 0x9000-0x9f000 (right after a kernel loaded there, as QEMU
//!   puts its Multiboot data after the kernel), then conventional memory, then above 1 MiB;
//! - the ACPI tables: 0xe0000-0xfffff, where kernels scan for the RSDP;
//! - the MP table: 0xf0000-0xfffff, where kernels scan for its floating pointer.
//!
//! An image that leaves one of them no room is refused, naming the image, its range, and
//! the bytes it covers. Boot data stays in RAM the e820 map reports usable (kernels keep
//! clear of it until they have read it, as with any loader's); the firmware tables stay in
//! the reserved legacy area.
//!
//! # Interrupt wiring
//!
//! A PC wires the PIT's IRQ 0 to IOAPIC pin [`TIMER_IOAPIC_PIN`] (pin 0 carries the 8259's
//! ExtINT output), and ISA IRQ 2 is the 8259 cascade, which reaches no IOAPIC pin; the ACPI
//! MADT's interrupt source override and the MP table say so, and every host routes its
//! interrupts that way (the KVM host replaces KVM's default routing to match:
//! `axvm-kvm`'s `platform::pc::layout`).

/// The GDT and the boot page tables of the 64-bit starts: the layout every axvm host
/// shares (`axvm-pc`), so a guest finds them at the same addresses on each.
pub use crate::boot_tables::{BOOT_TABLES_END, BOOT_TABLES_START, GDT_END, GDT_START};

/// The Multiboot entry stack: ESP points at its end when a Multiboot kernel is entered.
/// The Multiboot spec leaves ESP undefined, but QEMU enters with SeaBIOS's stack (ESP
/// 0x6f08 or so) and the ArceOS hypervisor's BIOS stub with ESP 0x7000, and kernels push
/// before they set their own (NimbOS does). Below the boot data, in conventional memory the
/// e820 map reports usable; free for Multiboot, which has a GDT but no page tables.
pub const MULTIBOOT_STACK_START: u64 = 0x6000;
/// One past the Multiboot entry stack: ESP at entry, as the ArceOS hypervisor's BIOS stub
/// sets it.
pub const MULTIBOOT_STACK_END: u64 = 0x7000;

/// The boot-protocol data area: after the page tables, up to below the EBDA, in the
/// conventional memory every PC kernel can address in any mode.
pub const BOOT_INFO_START: u64 = 0x9000;
/// One past the boot-protocol data area.
pub const BOOT_INFO_END: u64 = 0x9_f000;
/// Start of the reserved legacy area below 1 MiB (the EBDA onwards): PC kernels treat it
/// as firmware's, so the e820 map reports it reserved.
pub const LEGACY_HOLE_START: u64 = 0x9_fc00;
/// 1 MiB: where the legacy area ends and "upper memory" starts.
pub const HIGH_MEMORY_START: u64 = 0x10_0000;
/// ACPI tables area: inside the BIOS area kernels scan for the RSDP (0xe0000-0xfffff), and
/// inside the legacy hole, so the guest's memory map marks it reserved.
pub const ACPI_START: u64 = 0xe_0000;
/// One past the ACPI tables area.
pub const ACPI_END: u64 = 0xf_0000;
/// MP table area: inside the BIOS area kernels scan for the MP floating pointer
/// (0xf0000-0xfffff).
pub const MPTABLE_START: u64 = 0xf_0000;
/// One past the MP table area.
pub const MPTABLE_END: u64 = 0xf_1000;
/// Where a bzImage's protected-mode kernel goes: 1 MiB, the header's default
/// `code32_start`, where QEMU loads it too.
pub const BZIMAGE_LOAD_ADDR: u64 = HIGH_MEMORY_START;

/// Where the IOAPIC's registers are: the PC's address, where KVM's in-kernel IOAPIC sits.
pub const IOAPIC_ADDRESS: u32 = 0xfec0_0000;
/// Where every local APIC's registers are: the architectural default, where KVM's
/// in-kernel local APIC sits.
pub const LOCAL_APIC_ADDRESS: u32 = 0xfee0_0000;
/// Where the HPET's registers are: the PC's address (QEMU's too, and the one ArceOS
/// hypervisor configs pass through).
pub const HPET_ADDRESS: u64 = 0xfed0_0000;
/// The HPET's register block: 1 KiB (the spec's, and what the ACPI table and QEMU claim).
pub const HPET_LEN: u64 = 0x400;
/// The most of the HPET's page a pass-through entry for it may span.
pub const HPET_PAGE_SIZE: u64 = 0x1000;
/// The MSI address window: a write there is an interrupt message to the local APIC whose
/// id is in bits 12-19. It is the local APIC's page by the architecture's design.
pub const MSI_ADDRESS_BASE: u32 = LOCAL_APIC_ADDRESS;
/// The size of each interrupt controller's register page (what a pass-through entry for it
/// may span).
pub const APIC_PAGE_SIZE: u64 = 0x1000;
/// The last address of the PCI memory window the DSDT declares: right below the IOAPIC, as
/// on a PC, so the window never covers the interrupt controllers.
pub const PCI_MEMORY_WINDOW_END: u32 = IOAPIC_ADDRESS - 1;

/// The IOAPIC's pin count (KVM's in-kernel IOAPIC has 24, as a PC's does).
pub const IOAPIC_PINS: u8 = 24;
/// ISA IRQs: the 16 lines of the two 8259 PICs.
pub const ISA_IRQS: u8 = 16;
/// ISA IRQ 2 is where the secondary 8259 cascades into the primary one: no device has it,
/// and it reaches no IOAPIC pin.
pub const CASCADE_IRQ: u8 = 2;
/// The PIT's ISA IRQ (KVM's in-kernel PIT raises GSI 0).
pub const TIMER_IRQ: u8 = 0;
/// The IOAPIC pin the timer's IRQ 0 arrives on, as on a PC (see the module documentation); the MADT and the MP table declare it.
pub const TIMER_IOAPIC_PIN: u8 = 2;
/// COM1's ISA IRQ, as on every PC.
pub const COM1_IRQ: u8 = 4;
/// The ISA IRQ of the ACPI system control interrupt (as on QEMU's PC).
pub const SCI_IRQ: u8 = 9;
/// The ISA IRQ of the CMOS real-time clock.
pub const RTC_IRQ: u8 = 8;
/// The ISA IRQs of the i8042's keyboard and mouse ports.
pub const I8042_IRQS: [u8; 2] = [1, 12];

/// The GSIs the platform's own devices (or the PC's wiring) take: a config's device may not
/// use them.
pub const PLATFORM_GSIS: [(u8, &str); 7] = [
    (TIMER_IRQ, "the PIT timer"),
    (I8042_IRQS[0], "the i8042 keyboard port"),
    (CASCADE_IRQ, "the 8259 cascade"),
    (COM1_IRQ, "COM1"),
    (RTC_IRQ, "the CMOS RTC"),
    (SCI_IRQ, "the ACPI SCI"),
    (I8042_IRQS[1], "the i8042 mouse port"),
];
