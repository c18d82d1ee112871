use super::*;
use axvm::{GuestPhysAddr, VmMemConfig, VmMemMappingType};

const RAM: u64 = 0x800_0000;

fn config() -> AxVMConfig {
    let mut config = AxVMConfig::new("low-memory", 2);
    config.memory_regions.push(VmMemConfig {
        gpa: GuestPhysAddr::new(0),
        size: RAM,
        flags: MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE,
        map_type: VmMemMappingType::MapAlloc,
    });
    config
}

/// Segments covering `ranges` (`[start, end)`).
fn segments(ranges: &[(u64, u64)]) -> Vec<Segment> {
    ranges
        .iter()
        .map(|&(start, end)| Segment {
            paddr: start,
            vaddr: start,
            offset: 0,
            filesz: 0,
            memsz: end - start,
        })
        .collect()
}

/// The inputs of `protocol` ("Multiboot", "Pvh" or "BzImage") for `kernel`, with the
/// command line each passes for a config without one (Multiboot's is the kernel's name).
fn inputs<'a>(protocol: &'a str, kernel: &'a [Segment]) -> LayoutInputs<'a> {
    LayoutInputs {
        protocol,
        page_tables: protocol == "BzImage",
        entry_stack: protocol == "Multiboot",
        cmdline: (protocol == "Multiboot").then_some("kernel "),
        kernel,
        ramdisk: None,
        images: &[],
    }
}

fn layout(protocol: &str, ranges: &[(u64, u64)]) -> Result<BootLayout, ConfigError> {
    plan_layout(&config(), &inputs(protocol, &segments(ranges)))
}

fn acpi_len() -> u64 {
    acpi::acpi_tables(&AcpiInputs::for_config(&config()))
        .unwrap()
        .len() as u64
}

#[test]
fn images_above_1_mib_leave_the_pc_layout_as_it_is() {
    let expected = BootLayout {
        tables: (GDT_START, GDT_END),
        boot_info: (BOOT_INFO_START, BOOT_INFO_END),
        acpi: (ACPI_START, ACPI_END),
        mptable: Some((MPTABLE_START, MPTABLE_END)),
        stack: None,
    };
    assert_eq!(layout("Pvh", &[(0x10_0000, 0x12_0000)]).unwrap(), expected);
    let multiboot = BootLayout {
        stack: Some((MULTIBOOT_STACK_START, MULTIBOOT_STACK_END)),
        ..expected
    };
    assert_eq!(
        layout("Multiboot", &[(0x10_0000, 0x12_0000)]).unwrap(),
        multiboot
    );
    let linux = layout("BzImage", &[(0x10_0000, 0x12_0000)]).unwrap();
    assert_eq!(linux.tables, (BOOT_TABLES_START, BOOT_TABLES_END));
}

#[test]
fn a_kernel_linked_at_0x9000_gets_its_boot_data_right_after_it() {
    let layout = layout("Multiboot", &[(0x9000, 0x3_2010)]).unwrap();
    assert_eq!(layout.tables, (GDT_START, GDT_END));
    let (start, end) = layout.boot_info;
    assert_eq!(start, 0x3_3000, "the first page after the kernel");
    assert!(end > start && end <= BOOT_INFO_END, "{layout:?}");
    assert_eq!(layout.acpi, (ACPI_START, ACPI_END));
}

#[test]
fn elf_headers_at_0xff000_collide_with_nothing() {
    let layout = layout("Pvh", &[(0xf_f000, 0xf_f159), (0x10_0000, 0x12_7010)]);
    assert_eq!(layout.unwrap().mptable, Some((MPTABLE_START, MPTABLE_END)));
}

#[test]
fn firmware_tables_move_to_the_free_bytes_of_the_bios_area() {
    // A kernel over the first ACPI page and the MP table's: both move, within where kernels
    // scan, clear of the kernel and of each other.
    let layout = layout("Multiboot", &[(0xe_0000, 0xe_1000), (0xf_0000, 0xf_0800)]).unwrap();
    assert_eq!(layout.acpi, (0xe_1000, 0xe_1000 + acpi_len()));
    let (mp_start, mp_end) = layout.mptable.unwrap();
    assert_eq!(mp_start, 0xf_0800);
    assert!(mp_end <= HIGH_MEMORY_START);
}

#[test]
fn a_kernel_over_the_whole_bios_area_is_refused_naming_the_bytes() {
    let err = layout("Multiboot", &[(0xd_0000, 0x11_0000)]).unwrap_err();
    assert_eq!(err.field(), Some("kernel.kernel_path"));
    let message = err.to_string();
    for words in [
        "ACPI tables",
        "0xd0000..0x110000",
        "covers 0xe0000..0x100000",
        "RSDP",
        "0x110000 covers",
    ] {
        assert!(message.contains(words), "no {words:?} in: {message}");
    }
}

#[test]
fn linux_page_tables_and_boot_data_move_around_a_low_ramdisk() {
    let kernel = segments(&[(0x10_0000, 0x20_0000)]);
    let inputs = LayoutInputs {
        ramdisk: Some(RamdiskPlacement {
            gpa: GuestPhysAddr::new(0x2000),
            size: 0x1000,
        }),
        ..inputs("BzImage", &kernel)
    };
    let mut config = config();
    config.image_config.ramdisk_load_gpa = Some(GuestPhysAddr::new(0x2000));
    let layout = plan_layout(&config, &inputs).unwrap();
    assert_eq!(
        layout.tables,
        (0x3000, 0xa000),
        "whole pages after the ramdisk"
    );
    assert_eq!(layout.boot_info.0, 0xa000, "after the moved tables");
}

#[test]
fn the_multiboot_stack_moves_off_an_image_and_out_of_missing_ram() {
    // A kernel over 0x6000..0x7000 pushes the stack to the first free conventional memory,
    // after the GDT.
    let layout = layout("Multiboot", &[(0x5000, 0x8000)]).unwrap();
    assert_eq!(layout.stack, Some((GDT_END, GDT_END + 0x1000)));
    // Without RAM below 1 MiB, it goes above, below 4 GiB.
    let mut high_only = config();
    high_only.memory_regions[0].gpa = GuestPhysAddr::new(HIGH_MEMORY_START);
    let kernel = segments(&[(0x20_0000, 0x21_0000)]);
    let layout = plan_layout(&high_only, &inputs("Multiboot", &kernel)).unwrap();
    assert_eq!(
        layout.stack,
        Some((HIGH_MEMORY_START, HIGH_MEMORY_START + 0x1000))
    );
}
