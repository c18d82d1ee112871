//! The MP table as a kernel finds it: written into a created (not running) VM's RAM, read
//! back from guest memory and parsed the way a kernel does: scan 0xf0000-0xfffff for "_MP_",
//! check its checksum, follow it to "PCMP", check that one, and walk its entries.

mod common;

use axvm::AxVM;
use axvm_kvm::testing::write_acpi_tables;
use axvm_kvm::testing::write_mp_table;
use axvm_kvm::KvmHal;

use common::{byte_sum, le_field, read_guest, require_kvm, unrun_vm};

/// The configuration table a kernel finds: through the first "_MP_" on a 16-byte boundary in
/// 0xf0000-0xfffff with a valid checksum.
fn find_config_table(vm: &AxVM<KvmHal>) -> Vec<u8> {
    let area = read_guest(vm, 0xf_0000, 0x1_0000);
    let at = (0..area.len())
        .step_by(16)
        .find(|&at| &area[at..at + 4] == b"_MP_" && byte_sum(&area[at..at + 16]) == 0)
        .expect("no MP floating pointer with a valid checksum in 0xf0000-0xfffff");
    let pointer = &area[at..at + 16];
    assert_eq!(
        (pointer[8], pointer[9]),
        (1, 4),
        "length 1, spec revision 1.4"
    );
    assert_eq!(
        pointer[11], 0,
        "feature byte 1: a configuration table, not a default"
    );
    let table_at = le_field(pointer, 4, 4);
    let len = le_field(&read_guest(vm, table_at, 8), 4, 2) as usize;
    let table = read_guest(vm, table_at, len);
    assert_eq!(&table[..4], b"PCMP");
    assert_eq!(byte_sum(&table), 0, "configuration table checksum");
    assert_eq!(table[6], 4, "spec revision");
    assert_eq!(&table[8..16], b"AXVM    ");
    assert_eq!(le_field(&table, 36, 4), 0xfee0_0000, "local APIC address");
    table
}

/// The entries as (type, bytes): processors are 20 bytes, every other entry 8.
fn entries(table: &[u8]) -> Vec<(u8, &[u8])> {
    let mut entries = Vec::new();
    let mut at = 44;
    while at < table.len() {
        let len = if table[at] == 0 { 20 } else { 8 };
        entries.push((table[at], &table[at..at + len]));
        at += len;
    }
    assert_eq!(entries.len() as u64, le_field(table, 34, 2), "entry count");
    entries
}

fn of_type<'a>(entries: &[(u8, &'a [u8])], kind: u8) -> Vec<&'a [u8]> {
    entries
        .iter()
        .filter(|e| e.0 == kind)
        .map(|e| e.1)
        .collect()
}

fn one_processor_entry_per_vcpu_and_the_bsp_is_vcpu_0() {
    require_kvm();
    for cpus in [1, 2, 4] {
        let vm = unrun_vm(cpus, 0x10_0000);
        write_mp_table(vm.vm()).expect("the MP table is written");
        let table = find_config_table(vm.vm());
        let entries = entries(&table);
        let processors = of_type(&entries, 0);
        assert_eq!(processors.len(), cpus, "{cpus} vCPUs: processor entries");
        for (id, processor) in processors.iter().enumerate() {
            let bsp = if id == 0 { 0b10 } else { 0 };
            assert_eq!(processor[1..4], [id as u8, 0x14, 0b01 | bsp], "vCPU {id}");
        }
        let buses = of_type(&entries, 1);
        assert_eq!(buses.len(), 1);
        assert_eq!(&buses[0][1..8], b"\0ISA   ");
    }
}

fn isa_irqs_reach_the_ioapic_of_the_madt_with_irq_0_on_pin_2() {
    require_kvm();
    let vm = unrun_vm(2, 0x10_0000);
    write_mp_table(vm.vm()).expect("the MP table is written");
    let rsdp = write_acpi_tables(vm.vm()).expect("the ACPI tables are written");
    let table = find_config_table(vm.vm());
    let entries = entries(&table);
    let ioapics = of_type(&entries, 2);
    assert_eq!(ioapics.len(), 1);
    let ioapic = ioapics[0];
    assert_eq!((ioapic[2], ioapic[3] & 1), (0x11, 1), "version, enabled");
    assert_eq!(le_field(ioapic, 4, 4), 0xfec0_0000);
    // The IOAPIC id of the MADT (RSDP → XSDT → second entry, the MADT → after the LAPICs).
    let xsdt = read_guest(
        vm.vm(),
        le_field(&read_guest(vm.vm(), rsdp.as_u64(), 36), 24, 8),
        52,
    );
    let madt = read_guest(vm.vm(), le_field(&xsdt, 44, 8), 44 + 2 * 8 + 12);
    assert_eq!(&madt[..4], b"APIC");
    assert_eq!(madt[44 + 16], 1, "the IOAPIC entry follows the two LAPICs");
    assert_eq!(
        ioapic[1],
        madt[44 + 16 + 2],
        "MP and MADT IOAPIC ids differ"
    );

    let routes: Vec<(u8, u8)> = of_type(&entries, 3)
        .iter()
        .map(|e| {
            assert_eq!(
                (e[1], e[4], e[6]),
                (0, 0, ioapic[1]),
                "INT from bus 0 to the IOAPIC"
            );
            (e[5], e[7])
        })
        .collect();
    let expected: Vec<(u8, u8)> = (0..16u8)
        .filter(|&irq| irq != 2)
        .map(|irq| (irq, if irq == 0 { 2 } else { irq }))
        .collect();
    assert_eq!(routes, expected, "(ISA IRQ, IOAPIC pin)");
    let locals: Vec<(u8, u8)> = of_type(&entries, 4).iter().map(|e| (e[1], e[7])).collect();
    assert_eq!(locals, [(3, 0), (1, 1)], "ExtINT on LINT0, NMI on LINT1");
}

fn a_vm_without_ram_under_1_mib_is_refused_with_the_fix() {
    require_kvm();
    let vm = unrun_vm(1, 0x8_0000);
    let err = write_mp_table(vm.vm()).expect_err("512 KiB of RAM has no room for the MP table");
    let message = err.to_string();
    assert_eq!(err.field(), Some("kernel.memory_regions"), "{message}");
    assert!(
        message.contains("0xf0000") && message.contains("1 MiB"),
        "{message}"
    );
}

axvm_test_harness::main!(
    one_processor_entry_per_vcpu_and_the_bsp_is_vcpu_0,
    isa_irqs_reach_the_ioapic_of_the_madt_with_irq_0_on_pin_2,
    a_vm_without_ram_under_1_mib_is_refused_with_the_fix,
);
