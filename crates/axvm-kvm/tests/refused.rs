//! `KvmVm::create` refuses images and configs that cannot work with an error naming the
//! config field to fix, and never panics: ELF segments outside RAM or over the boot page
//! tables, malformed ELF files, raw images larger than their region, ELF guests without RAM
//! for the boot tables, device types axvm does not emulate, and configs that fail validation.

mod common;

use axvm::config::toml::AxVMCrateConfig;
use common::guests::{elf64, EXIT_42, LONG_MODE_STATE};
use common::{assert_refused, parse_config, raw_config, raw_config_text, require_kvm};

/// 16 MiB of RAM from 0, config entry 0x20_0000: room for ELF images at 0x20_0000.
fn elf_config() -> axvm::AxVMConfig {
    parse_config(&raw_config_text(0x100_0000, 0x20_0000, 0x20_0000))
}

fn elf_at(paddr: u64, memsz: u64) -> Vec<u8> {
    elf64(paddr, memsz, paddr, LONG_MODE_STATE)
}

fn elf_segment_outside_ram_is_refused() {
    require_kvm();
    // Wholly past the end of RAM, then starting inside and running past it.
    let message = assert_refused(
        elf_config(),
        &elf_at(0x200_0000, 0x1000),
        "kernel.kernel_path",
        "ELF segment 0 at 0x2000000",
    );
    assert!(
        message.contains("not inside any memory region"),
        "{message}"
    );
    let message = assert_refused(
        elf_config(),
        &elf_at(0xff_f000, 0x2000),
        "kernel.kernel_path",
        "ELF segment 0 at 0xfff000",
    );
    assert!(message.contains("does not fit"), "{message}");
}

fn elf_segment_over_the_boot_page_tables_is_refused() {
    require_kvm();
    assert_refused(
        elf_config(),
        &elf_at(0x2000, 0x1000),
        "kernel.kernel_path",
        "overlaps the boot page tables",
    );
}

fn elf_entry_outside_ram_is_refused() {
    require_kvm();
    let elf = elf64(0x20_0000, 0x1000, 0x4000_0000, LONG_MODE_STATE);
    assert_refused(
        elf_config(),
        &elf,
        "kernel.kernel_path",
        "the ELF entry 0x40000000 is not inside any memory region",
    );
}

fn malformed_elf_images_are_refused() {
    require_kvm();
    let good = elf_at(0x20_0000, 0x1000);
    let mut class32 = good.clone();
    class32[4] = 1;
    let mut arm = good.clone();
    arm[18] = 183; // EM_AARCH64
    let truncated_segment = good[..good.len() - 4].to_vec();
    let cases: [(&str, &[u8], &str); 4] = [
        ("32-bit", &class32, "32-bit ELF image"),
        ("aarch64", &arm, "not x86-64"),
        ("truncated header", &good[..40], "truncated"),
        (
            "truncated segment",
            &truncated_segment,
            "beyond the end of the file",
        ),
    ];
    for (what, image, words) in cases {
        eprintln!("case: {what}");
        assert_refused(elf_config(), image, "kernel.kernel_path", words);
    }
}

fn raw_image_larger_than_its_region_is_refused() {
    require_kvm();
    // 64 KiB of RAM; an image of 0x9000 bytes at 0x8000 ends 0x1000 bytes past it.
    let config = parse_config(&raw_config_text(0x1_0000, 0x8000, 0x8000));
    let mut image = EXIT_42.to_vec();
    image.resize(0x9000, 0);
    let message = assert_refused(config, &image, "kernel.kernel_load_addr", "does not fit");
    assert!(message.contains("0x1000 bytes short"), "{message}");
}

fn elf_guest_without_ram_for_the_boot_tables_is_refused() {
    require_kvm();
    let original = "[0x0, 0x100_0000, 0x7, 0]";
    assert!(axvm_guests::DEMO_CONFIG.contains(original));
    let text = axvm_guests::DEMO_CONFIG.replace(original, "[0x10_0000, 0xf0_0000, 0x7, 0]");
    assert_refused(
        parse_config(&text),
        axvm_guests::DEMO,
        "kernel.memory_regions",
        "boot page tables",
    );
}

fn device_type_axvm_does_not_emulate_is_refused() {
    require_kvm();
    let original = r#"["scratch", 0xfeb0_0000, 0x1000, 0, 0x0, []]"#;
    assert!(axvm_guests::DEMO_CONFIG.contains(original));
    let text = axvm_guests::DEMO_CONFIG
        .replace(original, r#"["scratch", 0xfeb0_0000, 0x1000, 0, 0x21, []]"#);
    assert_refused(
        parse_config(&text),
        axvm_guests::DEMO,
        "devices.emu_devices[0] (scratch)",
        "GIC partial pass-through distributor",
    );
}

fn invalid_config_is_refused_before_kvm_is_touched() {
    // Validation comes first, so this needs no /dev/kvm.
    let text = raw_config_text(0x10_0000, 0x8000, 0x20_0000);
    let config = AxVMCrateConfig::from_toml(&text)
        .expect("parses")
        .to_vm_config_unchecked()
        .expect("converts");
    assert_refused(config, EXIT_42, "kernel.entry_point", "0x200000");
    let mut config = raw_config();
    config.phys_cpu_ids = Some(vec![0, 1]);
    assert_refused(config, EXIT_42, "base.phys_cpu_ids", "base.cpu_num is 1");
}

axvm_test_harness::main!(
    elf_segment_outside_ram_is_refused,
    elf_segment_over_the_boot_page_tables_is_refused,
    elf_entry_outside_ram_is_refused,
    malformed_elf_images_are_refused,
    raw_image_larger_than_its_region_is_refused,
    elf_guest_without_ram_for_the_boot_tables_is_refused,
    device_type_axvm_does_not_emulate_is_refused,
    invalid_config_is_refused_before_kvm_is_touched,
);
