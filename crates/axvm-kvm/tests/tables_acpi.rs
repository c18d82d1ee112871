//! The ACPI tables as a kernel finds them: written into a created (not running) VM's RAM,
//! read back from guest memory, and parsed the way a kernel does: scan 0xe0000-0xfffff for
//! the RSDP, check both its checksums, follow the XSDT (and the RSDT) to the MADT and FADT
//! (and the HPET table of a VM given the HPET), and check every table's checksum; ACPICA's
//! iasl and acpiexec read them as kernels would.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use axvm::device::UnclaimedAccessPolicy;
use axvm::{AxVM, GuestPhysAddr, HostPhysAddr, PassThroughDeviceConfig};
use axvm_kvm::testing::write_acpi_tables;
use axvm_kvm::testing::{e820_map, E820Kind};
use axvm_kvm::KvmHal;

use common::{
    built, byte_sum, create, guests, le_field, options, raw_builder, read_guest, require_kvm, skip,
    unrun_vm, Console,
};

/// The RSDP a kernel finds: the first "RSD PTR " on a 16-byte boundary in 0xe0000-0xfffff
/// whose first 20 bytes sum to zero.
fn find_rsdp(vm: &AxVM<KvmHal>) -> (u64, Vec<u8>) {
    let area = read_guest(vm, 0xe_0000, 0x2_0000);
    let offset = (0..area.len())
        .step_by(16)
        .find(|&at| &area[at..at + 8] == b"RSD PTR " && byte_sum(&area[at..at + 20]) == 0)
        .expect("no RSDP with a valid checksum in 0xe0000-0xfffff");
    (0xe_0000 + offset as u64, area[offset..offset + 36].to_vec())
}

/// The table at `gpa`, after checking that it sums to zero and lies in the ACPI area.
fn table(vm: &AxVM<KvmHal>, gpa: u64) -> Vec<u8> {
    let len = le_field(&read_guest(vm, gpa, 8), 4, 4) as usize;
    let bytes = read_guest(vm, gpa, len);
    let name = String::from_utf8_lossy(&bytes[..4]).into_owned();
    assert_eq!(byte_sum(&bytes), 0, "{name} at {gpa:#x}: bad checksum");
    assert!(
        gpa >= 0xe_0000 && gpa + len as u64 <= 0xf_0000,
        "{name} at {gpa:#x}+{len:#x} is outside 0xe0000..0xf0000"
    );
    bytes
}

/// The tables a root table (RSDT: 4-byte pointers, XSDT: 8-byte) lists, by signature.
fn listed(vm: &AxVM<KvmHal>, root: &[u8], pointer_len: usize) -> Vec<(String, u64, Vec<u8>)> {
    (36..root.len())
        .step_by(pointer_len)
        .map(|at| {
            let gpa = le_field(root, at, pointer_len);
            let bytes = table(vm, gpa);
            (
                String::from_utf8_lossy(&bytes[..4]).into_owned(),
                gpa,
                bytes,
            )
        })
        .collect()
}

/// Follows RSDP → XSDT, checks that the RSDT lists the same tables, and returns them.
fn tables_of(vm: &AxVM<KvmHal>) -> Vec<(String, u64, Vec<u8>)> {
    let (_, rsdp) = find_rsdp(vm);
    assert_eq!(rsdp[15], 2, "RSDP revision");
    assert_eq!(le_field(&rsdp, 20, 4), 36, "RSDP length");
    assert_eq!(byte_sum(&rsdp), 0, "RSDP extended checksum");
    let xsdt = table(vm, le_field(&rsdp, 24, 8));
    let rsdt = table(vm, le_field(&rsdp, 16, 4));
    assert_eq!((&xsdt[..4], &rsdt[..4]), (&b"XSDT"[..], &b"RSDT"[..]));
    let tables = listed(vm, &xsdt, 8);
    let via_rsdt: Vec<u64> = listed(vm, &rsdt, 4).iter().map(|t| t.1).collect();
    assert_eq!(via_rsdt, tables.iter().map(|t| t.1).collect::<Vec<_>>());
    tables
}

fn find<'a>(tables: &'a [(String, u64, Vec<u8>)], signature: &str) -> &'a [u8] {
    let found = tables.iter().find(|t| t.0 == signature);
    &found.unwrap_or_else(|| panic!("no {signature} table")).2
}

/// The MADT's interrupt controller structures as (type, bytes).
fn madt_entries(madt: &[u8]) -> Vec<(u8, &[u8])> {
    let mut entries = Vec::new();
    let mut at = 44;
    while at < madt.len() {
        let len = usize::from(madt[at + 1]);
        assert!(len >= 2 && at + len <= madt.len(), "bad MADT entry at {at}");
        entries.push((madt[at], &madt[at..at + len]));
        at += len;
    }
    entries
}

fn madt_lists_every_vcpu_the_ioapic_and_the_isa_overrides() {
    require_kvm();
    for cpus in [1, 2, 4] {
        let vm = unrun_vm(cpus, 0x10_0000);
        let rsdp = write_acpi_tables(vm.vm()).expect("the tables are written");
        assert_eq!(rsdp, GuestPhysAddr::new(find_rsdp(vm.vm()).0));
        assert_eq!(rsdp.as_u64() % 16, 0);
        let tables = tables_of(vm.vm());
        let madt = find(&tables, "APIC");
        assert_eq!(le_field(madt, 36, 4), 0xfee0_0000, "local APIC address");
        assert_eq!(le_field(madt, 40, 4) & 1, 1, "PCAT_COMPAT");
        let entries = madt_entries(madt);
        let apics: Vec<_> = entries.iter().filter(|e| e.0 == 0).map(|e| e.1).collect();
        assert_eq!(apics.len(), cpus, "{cpus} vCPUs: local APIC entries");
        for (id, apic) in apics.iter().enumerate() {
            assert_eq!(
                (apic[2], apic[3]),
                (id as u8, id as u8),
                "processor id, APIC id"
            );
            assert_eq!(le_field(apic, 4, 4) & 1, 1, "vCPU {id} enabled");
        }
        let ioapics: Vec<_> = entries.iter().filter(|e| e.0 == 1).map(|e| e.1).collect();
        assert_eq!(ioapics.len(), 1);
        assert!(
            usize::from(ioapics[0][2]) >= cpus,
            "IOAPIC id clashes with an APIC id"
        );
        assert_eq!(
            (le_field(ioapics[0], 4, 4), le_field(ioapics[0], 8, 4)),
            (0xfec0_0000, 0)
        );
        let overrides: Vec<_> = entries.iter().filter(|e| e.0 == 2).map(|e| e.1).collect();
        let irq = |n: u8| overrides.iter().find(|o| o[2] == 0 && o[3] == n).copied();
        let irq0 = irq(0).expect("an override for ISA IRQ 0");
        assert_eq!(le_field(irq0, 4, 4), 2, "IRQ 0 (the PIT) is on GSI 2");
        let sci = irq(9).expect("an override for the SCI");
        assert_eq!(
            (le_field(sci, 4, 4), le_field(sci, 8, 2)),
            (9, 0b1101),
            "SCI: level, high"
        );
    }
}

fn fadt_names_the_reset_register_the_sci_the_dsdt_and_the_facs() {
    require_kvm();
    let vm = unrun_vm(2, 0x10_0000);
    write_acpi_tables(vm.vm()).expect("the tables are written");
    let tables = tables_of(vm.vm());
    let fadt = find(&tables, "FACP");
    assert!(fadt[8] >= 5, "FADT revision {}", fadt[8]);
    let flags = le_field(fadt, 112, 4);
    assert_eq!(
        flags & 1 << 20,
        0,
        "HW_REDUCED_ACPI would hide the PIT and the PIC"
    );
    assert_ne!(flags & 1 << 10, 0, "RESET_REG_SUP");
    assert_eq!(
        &fadt[116..120],
        &[1, 8, 0, 1],
        "RESET_REG: one byte of I/O space"
    );
    assert_eq!(
        (le_field(fadt, 120, 8), fadt[128]),
        (0xcf9, 6),
        "reset port, value"
    );
    assert_eq!(le_field(fadt, 46, 2), 9, "SCI_INT");
    assert_eq!(le_field(fadt, 48, 4), 0, "SMI_CMD: always in ACPI mode");
    let blocks = [(56, 88, 0x600, 4), (64, 89, 0x604, 2), (76, 91, 0x608, 4)];
    for (address, length, port, len) in blocks {
        assert_eq!(
            (le_field(fadt, address, 4), fadt[length]),
            (port, len),
            "PM block at {port:#x}"
        );
    }
    assert_ne!(
        flags & 1 << 8,
        0,
        "TMR_VAL_EXT: the PM timer counts 32 bits"
    );
    assert_eq!(le_field(fadt, 109, 2) & 3, 1, "LEGACY_DEVICES, no 8042");
    let dsdt = le_field(fadt, 140, 8);
    assert_eq!(le_field(fadt, 40, 4), dsdt, "DSDT and X_DSDT agree");
    assert_eq!(&table(vm.vm(), dsdt)[..4], b"DSDT");
    let facs_at = le_field(fadt, 36, 4);
    let facs = read_guest(vm.vm(), facs_at, 64);
    assert_eq!((&facs[..4], le_field(&facs, 4, 4)), (&b"FACS"[..], 64));
    assert_eq!(facs_at % 64, 0, "the FACS is 64-byte aligned");
}

fn the_tables_lie_in_memory_the_e820_map_reserves() {
    require_kvm();
    let vm = unrun_vm(4, 0x10_0000);
    write_acpi_tables(vm.vm()).expect("the tables are written");
    let map = e820_map(vm.vm().config());
    for (name, gpa, bytes) in tables_of(vm.vm()) {
        let end = gpa + bytes.len() as u64;
        assert!(
            map.iter()
                .any(|e| e.kind == E820Kind::Reserved && e.addr <= gpa && end <= e.addr + e.size),
            "{name} at {gpa:#x} is not in a reserved e820 range: {map:?}"
        );
    }
}

fn a_vm_without_ram_under_1_mib_is_refused_with_the_fix() {
    require_kvm();
    let vm = unrun_vm(1, 0x8_0000);
    let err = write_acpi_tables(vm.vm()).expect_err("512 KiB of RAM has no room for ACPI");
    let message = err.to_string();
    assert_eq!(err.field(), Some("kernel.memory_regions"), "{message}");
    assert!(
        message.contains("0xe0000") && message.contains("1 MiB"),
        "{message}"
    );
}

/// Whether a missing tool must fail the test rather than skip it: in CI, and wherever KVM
/// tests are required.
fn tools_required() -> bool {
    std::env::var("AXVM_REQUIRE_KVM").as_deref() == Ok("1")
        || std::env::var("CI").as_deref() == Ok("true")
}

/// A fresh scratch directory holding `files` (name, bytes), for one test.
fn scratch_dir(test: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("axvm-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|err| panic!("cannot create {dir:?}: {err}"));
    for (name, bytes) in files {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap_or_else(|err| panic!("cannot write {path:?}: {err}"));
    }
    dir
}

/// Runs the ACPICA tool `tool` (from Debian's `acpica-tools`) with `args` in `dir`; returns
/// what it printed, after checking that it succeeded. Skips the test when the tool is not
/// installed and tools are not required.
fn run_acpica(tool: &str, args: &[&str], dir: &Path) -> String {
    let output = match Command::new(tool)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
    {
        Ok(output) => output,
        Err(err) if tools_required() => {
            panic!("cannot run {tool} ({err}): install it with `apt-get install acpica-tools`")
        }
        Err(err) => skip(format!(
            "needs {tool} (apt-get install acpica-tools): {err}"
        )),
    };
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{tool} {args:?} failed:\n{printed}"
    );
    printed
}

/// How iasl's disassembler flags a problem: messages, and `****` before what it cannot parse.
const IASL_COMPLAINTS: [&str; 4] = ["error", "warning", "invalid", "****"];
/// How ACPICA's interpreter flags a problem ("ACPI Error", "Firmware Warning (ACPI)", ...).
const ACPIEXEC_COMPLAINTS: [&str; 2] = ["error", "warning"];

/// Fails if `text`, from ACPICA about `what`, contains any of `complaints` (in any case).
/// Disassembles each named table with `iasl -d` in a scratch directory of `test`'s and
/// returns the listings, in order, after checking that neither iasl nor a listing complains.
fn iasl_listings(test: &str, tables: &[(&str, &[u8])]) -> Vec<String> {
    let files: Vec<(String, &[u8])> = tables
        .iter()
        .map(|&(name, bytes)| (format!("{name}.dat"), bytes))
        .collect();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(f, b)| (f.as_str(), *b)).collect();
    let dir = scratch_dir(test, &files);
    let mut listings = Vec::new();
    for (name, _) in tables {
        let printed = run_acpica("iasl", &["-d", &format!("{name}.dat")], &dir);
        assert_no_complaint(&format!("iasl -d {name}"), &printed, &IASL_COMPLAINTS);
        let listing = std::fs::read_to_string(dir.join(format!("{name}.dsl")))
            .unwrap_or_else(|err| panic!("iasl wrote no {name}.dsl ({err}):\n{printed}"));
        assert_no_complaint(&format!("{name}.dsl"), &listing, &IASL_COMPLAINTS);
        listings.push(listing);
    }
    let _ = std::fs::remove_dir_all(&dir);
    listings
}

fn assert_no_complaint(what: &str, text: &str, complaints: &[&str]) {
    let lower = text.to_lowercase();
    for complaint in complaints {
        assert!(
            !lower.contains(complaint),
            "{what}: ACPICA reports `{complaint}`:\n{text}"
        );
    }
}

/// The FADT and the DSDT axvm writes for 2 vCPUs and 128 MiB of RAM, read back from the
/// guest.
fn fadt_and_dsdt() -> (Vec<u8>, Vec<u8>) {
    let vm = unrun_vm(2, 0x800_0000);
    write_acpi_tables(vm.vm()).expect("the tables are written");
    let tables = tables_of(vm.vm());
    let fadt = find(&tables, "FACP").to_vec();
    let dsdt = table(vm.vm(), le_field(&fadt, 140, 8));
    (fadt, dsdt)
}

fn iasl_disassembles_the_fadt_and_the_dsdt_without_complaint() {
    require_kvm();
    let (fadt, dsdt) = fadt_and_dsdt();
    let listings = iasl_listings("iasl", &[("fadt", &fadt), ("dsdt", &dsdt)]);
    let fadt_fields = listings[0].split_whitespace().collect::<Vec<_>>().join(" ");
    for field in [
        "PM1A Event Block Address : 00000600",
        "PM Timer Block Length : 04",
        "32-bit PM Timer (V1) : 1",
        "Legacy Devices Supported (V2) : 1",
        "8042 Present on ports 60/64 (V2) : 0",
    ] {
        assert!(
            fadt_fields.contains(field),
            "no `{field}` in\n{}",
            listings[0]
        );
    }
    let expected = [
        "Name (\\_S5, Package (0x04)",
        "Scope (\\_SB)",
        "Device (PCI0)",
        "EisaId (\"PNP0A03\")",
        "0x08000000,         // Range Minimum",
        "0xFEBFFFFF,         // Range Maximum",
    ];
    for expected in expected {
        assert!(
            listings[1].contains(expected),
            "no `{expected}` in\n{}",
            listings[1]
        );
    }
}

/// ACPICA's interpreter, as Linux runs it, in `acpiexec`: it loads the FADT and the DSDT,
/// starts (the step that failed without PM blocks), and goes through the S5 transition
/// Linux's `poweroff` makes, reading SLP_TYP from `\_S5`. (acpiexec pauses some 10 s in its
/// simulated sleep.)
fn acpicas_interpreter_starts_and_enters_s5_from_the_tables() {
    require_kvm();
    let (fadt, dsdt) = fadt_and_dsdt();
    let dir = scratch_dir("acpiexec", &[("fadt.dat", &fadt), ("dsdt.dat", &dsdt)]);
    let args = ["-b", "sleep 5", "dsdt.dat", "fadt.dat"];
    let printed = run_acpica("acpiexec", &args, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    assert_no_complaint("acpiexec", &printed, &ACPIEXEC_COMPLAINTS);
    // SLP_TYP 0, QEMU's: what ArceOS and NimbOS write (0x2000) without reading `\_S5`.
    for expected in ["Sleep-A: 00, Sleep-B: 00", "Entering sleep state [S5]"] {
        assert!(printed.contains(expected), "no `{expected}` in\n{printed}");
    }
}

/// A table as [`tables_of`] lists it: signature, address, bytes.
type Table = (String, u64, Vec<u8>);

/// The tables of a VM that passes the HPET's page through, as the ArceOS hypervisor's x86
/// configs do, and its DSDT.
fn tables_with_the_hpet() -> (Vec<Table>, Vec<u8>) {
    let mut config = built(raw_builder(0x800_0000).cpus(1));
    config.pass_through_devices.push(PassThroughDeviceConfig {
        name: "HPET".into(),
        base_gpa: GuestPhysAddr::new(0xfed0_0000),
        base_hpa: HostPhysAddr::new(0xfed0_0000),
        length: 0x1000,
        irq_id: 1,
    });
    let console = Console::default();
    let options = options(&console, UnclaimedAccessPolicy::Ignore);
    let vm = create(config, guests::SPIN, options);
    write_acpi_tables(vm.vm()).expect("the tables are written");
    let tables = tables_of(vm.vm());
    let dsdt = table(vm.vm(), le_field(find(&tables, "FACP"), 140, 8));
    (tables, dsdt)
}

/// Only a VM given the HPET has the `HPET` table, and iasl reads it as the HPET's: its
/// block ID (revision 1, 3 comparators, 64-bit counter, legacy replacement, vendor 8086)
/// and its address; the DSDT declares the `PNP0103` device with its register block.
fn iasl_disassembles_the_hpet_table_of_a_vm_with_the_hpet() {
    require_kvm();
    let plain = unrun_vm(1, 0x800_0000);
    write_acpi_tables(plain.vm()).expect("the tables are written");
    let without = tables_of(plain.vm());
    assert!(
        without.iter().all(|t| t.0 != "HPET"),
        "an HPET table without the HPET"
    );
    let (tables, dsdt) = tables_with_the_hpet();
    let hpet = find(&tables, "HPET");
    assert_eq!(hpet.len(), 56);
    let listings = iasl_listings("iasl-hpet", &[("hpet", hpet), ("dsdt", &dsdt)]);
    for expected in [
        "Device (HPET)",
        "EisaId (\"PNP0103\")",
        "Memory32Fixed (ReadOnly,",
        "0xFED00000,         // Address Base",
        "0x00000400,         // Address Length",
    ] {
        assert!(
            listings[1].contains(expected),
            "no `{expected}` in\n{}",
            listings[1]
        );
    }
    let listing = &listings[0];
    let fields = listing.split_whitespace().collect::<Vec<_>>().join(" ");
    for field in [
        "Signature : \"HPET\"",
        "Hardware Block ID : 8086A201",
        "Space ID : 00 [SystemMemory]",
        "Address : 00000000FED00000",
        "Sequence Number : 00",
        "Minimum Clock Ticks : 0080",
    ] {
        assert!(fields.contains(field), "no `{field}` in\n{listing}");
    }
}

axvm_test_harness::main!(
    iasl_disassembles_the_hpet_table_of_a_vm_with_the_hpet,
    madt_lists_every_vcpu_the_ioapic_and_the_isa_overrides,
    fadt_names_the_reset_register_the_sci_the_dsdt_and_the_facs,
    the_tables_lie_in_memory_the_e820_map_reserves,
    a_vm_without_ram_under_1_mib_is_refused_with_the_fix,
    iasl_disassembles_the_fadt_and_the_dsdt_without_complaint,
    acpicas_interpreter_starts_and_enters_s5_from_the_tables,
);
