//! The guest programs axvm's demo and integration tests run.
//!
//! They are small freestanding programs built from source (`<repo>/guests`)
//! by this crate's build script, so no binary is kept in git; see
//! `guests/README.md` for what each one checks and the entry contract it
//! expects from the VMM. Each guest comes as:
//!
//! * its image bytes (`DEMO`, ...), for embedding in the `axvm` binary;
//! * the absolute path of the built image file (`DEMO_PATH`, ...), for tests
//!   that write config files referencing it;
//! * its VM config in the ArceOS hypervisor's TOML format (`DEMO_CONFIG`,
//!   ...), whose `kernel_path` is the image's file name, relative to the
//!   config: copy the image next to the config under that name.
//!
//! The x86 guests report on COM1 (port 0x3f8) and end the VM by writing a
//! status byte to port 0xf4 (0 = success).
//!
//! The arm64 guests (`ARM_*`, from `<repo>/guests-arm64`, see its README) are
//! ELF64 images for the arm64 contract's board: loaded at 0x4008_0000, they
//! report on the PL011 at 0x0900_0000 and end the VM through the exit device
//! at 0x0910_0000 or PSCI SYSTEM_OFF. Each also comes flat (`ARM_*_BIN_PATH`),
//! a Linux arm64 `Image` of the same program, which QEMU `-M virt` boots with
//! x0 = its device tree.
#![no_std]
#![warn(missing_docs)]

/// Image of the demo guest: an ELF64 loaded at 0x20_0000 whose two vCPUs
/// say hello (`vCPU 0`, `vCPU 1`) before vCPU 0 checks MMIO, port I/O and
/// MSR exits and prints `all checks passed`. The `axvm` binary embeds it so
/// its demo needs no files.
pub const DEMO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/demo"));

/// Absolute path of the demo guest's image file, so tests can copy or
/// reference it from a config file.
pub const DEMO_PATH: &str = concat!(env!("OUT_DIR"), "/images/demo");

/// The demo VM's config (`guests/demo/demo.toml`): 2 vCPUs, 16 MiB RAM, the
/// MMIO scratch device; `kernel_path = "demo"`.
pub const DEMO_CONFIG: &str = include_str!("../../../guests/demo/demo.toml");

/// Image of the real-mode guest: a raw 16-bit image (no header) loaded and
/// entered at 0x8000 in real mode that prints `axvm real-mode guest: hello`
/// and exits 0. It covers the VMM's raw-image and real-mode paths.
pub const REALMODE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/realmode"));

/// Absolute path of the real-mode guest's image file, so tests can copy or
/// reference it from a config file.
pub const REALMODE_PATH: &str = concat!(env!("OUT_DIR"), "/images/realmode");

/// The real-mode VM's config (`guests/realmode/realmode.toml`): 1 vCPU,
/// 1 MiB RAM, entry 0x8000; `kernel_path = "realmode"`.
pub const REALMODE_CONFIG: &str = include_str!("../../../guests/realmode/realmode.toml");

/// Image of the exit-loop guest: a raw 16-bit image loaded and entered at 0x8000 in real
/// mode that writes COM1's scratch register (port 0x3ff) 20 000 times and then status 0 to
/// the exit port: 20 001 exits, nothing printed. The workload of the exit round-trip
/// figures (the `exits` benchmark, `scripts/svm-bench.sh`); its fixed layout (the loop
/// count at offset [`EXITLOOP_COUNT_OFFSET`]) is documented in `guests/exitloop`.
pub const EXITLOOP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/exitloop"));

/// Absolute path of the exit-loop guest's image file.
pub const EXITLOOP_PATH: &str = concat!(env!("OUT_DIR"), "/images/exitloop");

/// The exit-loop VM's config (`guests/exitloop/exitloop.toml`): 1 vCPU, 1 MiB RAM, entry
/// 0x8000; `kernel_path = "exitloop"`.
pub const EXITLOOP_CONFIG: &str = include_str!("../../../guests/exitloop/exitloop.toml");

/// Offset in [`EXITLOOP`] of the loop count, a little-endian u16 (the immediate of its
/// first instruction, `mov $20000, %cx`): a caller may rewrite it for a shorter or longer
/// run (never 0, which `loop` takes as 65 536).
pub const EXITLOOP_COUNT_OFFSET: usize = 1;

/// Offset in [`EXITLOOP`] of the port written in the loop, a little-endian u16 (the
/// immediate of `mov $0x3ff, %dx`).
pub const EXITLOOP_PORT_OFFSET: usize = 4;

/// Offset in [`EXITLOOP`] of the two bytes that set the byte written, `xor %al, %al`
/// (0x30 0xc0); `mov $value, %al` (0xb0, value) has the same length.
pub const EXITLOOP_VALUE_OFFSET: usize = 6;

/// How many exits [`EXITLOOP`] as built makes: 20 000 port writes and the exit-port write.
pub const EXITLOOP_EXITS: u64 = 20_001;

/// Image of the start-up IPI guest: a flat image for the BIOS start at 0x8000 (vCPU 0 in
/// real mode) that starts vCPU 1 with INIT-SIPI-SIPI through its local APIC and checks that
/// a second SIPI is ignored. It covers the VMM's local APIC ICR and `WaitForSipi` start.
pub const SIPI: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/sipi"));

/// Absolute path of the start-up IPI guest's image file.
pub const SIPI_PATH: &str = concat!(env!("OUT_DIR"), "/images/sipi");

/// The start-up IPI VM's config (`guests/sipi/sipi.toml`): 2 vCPUs, 16 MiB RAM, the image
/// as `bios_path` at 0x8000 and as `kernel_path`.
pub const SIPI_CONFIG: &str = include_str!("../../../guests/sipi/sipi.toml");

/// Image of the ROM guest: an ELF64 loaded at 0x20_0000 that writes to a
/// read-only page at 0x100_0000, expects the write to be ignored and prints
/// `ROM write ignored`. It covers the VMM's read-only memory (nested page
/// fault) path.
pub const ROM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/rom"));

/// Absolute path of the ROM guest's image file, so tests can copy or
/// reference it from a config file.
pub const ROM_PATH: &str = concat!(env!("OUT_DIR"), "/images/rom");

/// The ROM VM's config (`guests/rom/rom.toml`): 1 vCPU, 16 MiB RAM plus the
/// read-only page; `kernel_path = "rom"`.
pub const ROM_CONFIG: &str = include_str!("../../../guests/rom/rom.toml");

/// Image of the timer guest: an ELF64 loaded at 0x20_0000 that programs the PIT for
/// 100 Hz, takes its interrupts through IOAPIC pin 2 and the local APIC, counts them over
/// one second of the CMOS RTC and prints `timer: <n> ticks in one RTC second` and
/// `timer: rate OK` (n within 100 ± 25%). It covers the in-kernel PIT, IOAPIC and local
/// APIC, the interrupt routing and the RTC.
pub const TIMER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/timer"));

/// Absolute path of the timer guest's image file, so tests can copy or reference it from
/// a config file.
pub const TIMER_PATH: &str = concat!(env!("OUT_DIR"), "/images/timer");

/// The timer VM's config (`guests/timer/timer.toml`): 1 vCPU, 16 MiB RAM;
/// `kernel_path = "timer"`.
pub const TIMER_CONFIG: &str = include_str!("../../../guests/timer/timer.toml");

/// Image of the wake-up guest: an ELF64 loaded at 0x20_0000 whose vCPU 0 prints
/// `wakeup: waiting for an interrupt`, halts with interrupts on until the host delivers
/// a fixed interrupt of vector 0x40..=0x4f to its local APIC
/// (`inject_interrupt_to_vcpu(&[0], 0x40)`), then prints `wakeup: woken by vector 0x40`
/// and exits 0. With a vCPU 1 ([`WAKEUP_SMP_CONFIG`]) it then sends vCPU 1 an IPI of
/// vector 0x41, which prints `wakeup: IPI received on vCPU 1 (vector 0x41)`.
pub const WAKEUP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/wakeup"));

/// Absolute path of the wake-up guest's image file, so tests can copy or reference it
/// from a config file.
pub const WAKEUP_PATH: &str = concat!(env!("OUT_DIR"), "/images/wakeup");

/// The wake-up VM's config (`guests/wakeup/wakeup.toml`): 1 vCPU, 16 MiB RAM;
/// `kernel_path = "wakeup"`.
pub const WAKEUP_CONFIG: &str = include_str!("../../../guests/wakeup/wakeup.toml");

/// The two-vCPU wake-up VM's config (`guests/wakeup/wakeup-smp.toml`): the same image
/// and memory as [`WAKEUP_CONFIG`] with 2 vCPUs, for the IPI check.
pub const WAKEUP_SMP_CONFIG: &str = include_str!("../../../guests/wakeup/wakeup-smp.toml");

/// Image of the Linux boot protocol guest: a bzImage-style file (one boot sector and one
/// setup sector with the setup header — protocol 2.12, `LOADED_HIGH`, `XLF_KERNEL_64`,
/// code32_start 0x10_0000 — then the protected-mode kernel) whose 64-bit entry, at
/// 0x10_0200, reads the zero page RSI points to and prints `bzimage: cmdline: <text>`,
/// `bzimage: <m> MiB usable (<k> e820 entries)`, `bzimage: ramdisk OK (<n> bytes)` (n is
/// the ramdisk size the loader passed) and `bzimage: all checks passed`. Its real-mode and
/// 32-bit entries only report that they are not supported (exit statuses 16 and 32).
pub const BZIMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/bzimage"));

/// Absolute path of the bzImage guest's image file.
pub const BZIMAGE_PATH: &str = concat!(env!("OUT_DIR"), "/images/bzimage");

/// Absolute path of the ELF the bzImage guest's protected-mode kernel was flattened from
/// (linked at 0x10_0000, entry 0x10_0200), for disassembly and symbols.
pub const BZIMAGE_ELF_PATH: &str = concat!(env!("OUT_DIR"), "/images/bzimage.elf");

/// The bzImage VM's config (`guests/bzimage/bzimage.toml`): 1 vCPU, 128 MiB RAM, a
/// command line, `kernel_path = "bzimage"` and `ramdisk_path = "ramdisk"` (copy
/// [`RAMDISK_PATH`] there).
pub const BZIMAGE_CONFIG: &str = include_str!("../../../guests/bzimage/bzimage.toml");

/// The test ramdisk the boot-protocol guests check (the `bzimage` guest's initrd, a
/// Multiboot/PVH module): `AXVMRD`, the payload length n (u32 LE), n payload bytes (5000
/// bytes of a fixed pattern), and the wrapping sum of the payload bytes (u32 LE): 5014
/// bytes in all. Generated by the build script; `guests/rt/src/ramdisk.rs` checks it. To
/// test a corrupted one, change a payload byte: the sum no longer matches.
pub const RAMDISK: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/ramdisk"));

/// Absolute path of the test ramdisk file, named `ramdisk` as the configs'
/// `ramdisk_path` say.
pub const RAMDISK_PATH: &str = concat!(env!("OUT_DIR"), "/images/ramdisk");

/// Image of the Multiboot v1 guest: a flat binary with an a.out-kludge Multiboot header
/// (loaded at 0x10_0000, entered in 32-bit protected mode at rt's `axvm_start32`, which
/// switches to long mode). It prints `multiboot: magic 0x2badb002`, `cmdline: <text>`,
/// `fw_cfg: <n> CPUs, <m> MiB`, the BIOS Data Area, CMOS and fw_cfg lines of
/// `rt::firmware`, `memory: mem_upper and mmap agree with fw_cfg`,
/// `module: <size> bytes` (with a module, which must be a test ramdisk), `ACPI: <n> CPUs`,
/// wakes every other CPU of the MADT with INIT-SIPI-SIPI, prints `APs started: <n-1>` and
/// `multiboot: all checks passed`, and exits 0. See `guests/README.md`.
pub const MULTIBOOT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/multiboot"));

/// Absolute path of the Multiboot guest's image file.
pub const MULTIBOOT_PATH: &str = concat!(env!("OUT_DIR"), "/images/multiboot");

/// The Multiboot VM's config (`guests/multiboot/multiboot.toml`): 4 vCPUs, 128 MiB RAM,
/// `cmdline = "console=ttyS0 axvm-compat"`, `kernel_path = "multiboot"` and
/// `ramdisk_path = "ramdisk"` (copy [`RAMDISK_PATH`] there).
pub const MULTIBOOT_CONFIG: &str = include_str!("../../../guests/multiboot/multiboot.toml");

/// The Multiboot guest linked and loaded at 0x9000, where boot loaders built as Multiboot
/// kernels are linked (the PC layout's boot data area starts there). It prints what
/// [`MULTIBOOT`] prints, the command line included, except when the information block EBX
/// points to lies inside its own image (QEMU writes its block at 0x9500, then loads the image
/// over it): then it says so instead of the cmdline, memory and module lines.
pub const MULTIBOOT_LOW: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/multiboot-low"));

/// Absolute path of the low Multiboot guest's image file.
pub const MULTIBOOT_LOW_PATH: &str = concat!(env!("OUT_DIR"), "/images/multiboot-low");

/// Image of the PVH guest: an ELF64 at 0x10_0000 whose Xen `XEN_ELFNOTE_PHYS32_ENTRY`
/// note names rt's 32-bit entry. It prints `pvh: start_info magic 0x336ec578 version 1`,
/// `cmdline: <text>`, `memmap: RAM up to <m> MiB`, the BIOS Data Area, CMOS and fw_cfg lines
/// of `rt::firmware` (`bda: ...`, `cmos: ...`, `fw_cfg: ...`), `module: <size> bytes` (with a
/// module, which must be a test ramdisk), `ACPI: <n> CPUs` and `pvh: all checks passed`,
/// and exits 0. Booted as a plain ELF64 instead (at its ELF entry, in long mode), it prints
/// `pvh: FAIL: started in 64-bit mode ...` and exits 0x7e. See `guests/README.md`.
pub const PVH: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/pvh"));

/// Absolute path of the PVH guest's image file.
pub const PVH_PATH: &str = concat!(env!("OUT_DIR"), "/images/pvh");

/// The PVH guest with one more loaded segment: its ELF file and program headers, read-only,
/// at 0xff000 right below its 1 MiB text, as `ld -Ttext=0x100000` lays out many kernels. It
/// prints what [`PVH`] prints.
pub const PVH_LOWHDR: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/pvh-lowhdr"));

/// Absolute path of the low-header PVH guest's image file.
pub const PVH_LOWHDR_PATH: &str = concat!(env!("OUT_DIR"), "/images/pvh-lowhdr");

/// The PVH guest as an i386 ELF32 (made from [`PVH`] by the build script, as Xen's build
/// makes its 32-bit image): the same segments and note, no section headers. It prints what
/// [`PVH`] prints; a VMM must boot it through PVH too.
pub const PVH_ELF32: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/pvh-elf32"));

/// Absolute path of the ELF32 PVH guest's image file.
pub const PVH_ELF32_PATH: &str = concat!(env!("OUT_DIR"), "/images/pvh-elf32");

/// The PVH VM's config (`guests/pvh/pvh.toml`): 2 vCPUs (the second is never started),
/// 128 MiB RAM, `cmdline = "console=ttyS0 axvm-compat"`, `kernel_path = "pvh"` and
/// `ramdisk_path = "ramdisk"` (copy [`RAMDISK_PATH`] there).
pub const PVH_CONFIG: &str = include_str!("../../../guests/pvh/pvh.toml");

/// Image of the HPET guest: an ELF64 at 0x10_0000 booted through PVH (like [`PVH`]). It
/// finds the HPET in the ACPI `HPET` table, prints its capabilities, checks that a halted
/// counter holds a written value, that the counter agrees with the ACPI PM timer, that
/// timer 0 interrupts periodically on IRQ 0 (IOAPIC pin 2) under legacy replacement with
/// the PIT silenced, timer 1 once on IRQ 8 (pin 8), and timer 2's level status bit; prints
/// `hpet: all checks passed` and powers off by writing 0x2000 to port 0x604 (exit status 0).
/// Failures print `FAIL: ...` and exit non-zero. See `guests/README.md`.
pub const HPET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/hpet"));

/// Absolute path of the HPET guest's image file.
pub const HPET_PATH: &str = concat!(env!("OUT_DIR"), "/images/hpet");

/// The HPET VM's config (`guests/hpet/hpet.toml`): 1 vCPU, 128 MiB RAM, `kernel_path =
/// "hpet"`, and the ArceOS hypervisor's x86 pass-through rows (IOAPIC, local APIC, HPET).
pub const HPET_CONFIG: &str = include_str!("../../../guests/hpet/hpet.toml");

/// Image of the virtio guest: an ELF64 at 0x10_0000 booted through PVH (like [`PVH`]) that
/// drives virtio-mmio devices with the `virtio-drivers` crate, polling. It finds them only in
/// the `virtio_mmio.device=<size>@<base>:<irq>` entries of its command line. With no mode word
/// it prints `virtio: <base> <type>` per device, then for a block device its capacity, id,
/// `virtio: blk sector 0: <first 16 bytes>` and, after writing, flushing and reading back
/// sector 1 (`written by the virtio guest`, space-padded), `virtio: blk ok`; for a console
/// it writes `virtio: hello from hvc0` to the console and prints `virtio: console ok`; for a
/// network device its MAC; then `virtio: all devices ok` and exit 0. The command-line words
/// `virtio.durability=N`, `virtio.net=ping`/`pong` and `virtio.echo` choose the other modes
/// (see `guests/virtio/src/main.rs`). Failures print `virtio: FAIL: ...` and exit non-zero.
pub const VIRTIO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/virtio"));

/// Absolute path of the virtio guest's image file.
pub const VIRTIO_PATH: &str = concat!(env!("OUT_DIR"), "/images/virtio");

/// The virtio VM's config (`guests/virtio/virtio.toml`): 1 vCPU, 128 MiB RAM,
/// `kernel_path = "virtio"`, `cmdline = "console=ttyS0"`, and three virtio-mmio devices in
/// `emu_devices` (`vda` blk at 0xd000_0000, `net0` net at 0xd000_1000, `hvc0` console at
/// 0xd000_2000, 4 KiB each, irqs 5-7) with their `[devices.backends]`: `vda` is the disk
/// image `disk.img` next to the config, `net0` the in-process switch `lan`.
pub const VIRTIO_CONFIG: &str = include_str!("../../../guests/virtio/virtio.toml");

/// The BIOS stub of the ArceOS hypervisor's x86 start (`guests/bios-stub`, what
/// axvm-bios-x86 does): 16-bit code loaded and entered in real mode at 0x8000 that loads its
/// GDT, enters 32-bit protected mode and jumps to the kernel at 0x200000 with ESP 0x7000,
/// EAX 0x2BADB002 and EBX 0.
pub const BIOS_STUB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/bios-stub"));

/// Absolute path of the BIOS stub's image file.
pub const BIOS_STUB_PATH: &str = concat!(env!("OUT_DIR"), "/images/bios-stub");

/// Absolute path of the 64 KiB QEMU `-bios` image whose reset vector jumps to 0000:8000, so
/// that QEMU starts [`BIOS_STUB`] as axvm does (for the comparison with QEMU only).
pub const BIOS_RESET_PATH: &str = concat!(env!("OUT_DIR"), "/images/bios-reset");

/// Image of the BIOS-start kernel: a flat image for 0x200000 whose first byte is the stub's
/// jump target, with a Multiboot header after it (so detection by content would pick
/// Multiboot). Entered by [`BIOS_STUB`], it prints `biosboot: entered at 0x200000, the BIOS
/// stub's jump`, `biosboot: eax 0x2badb002 ebx 0x0 esp 0x7000`, `biosboot: protected mode,
/// paging off`, `biosboot: stack usable at entry` and `biosboot: all checks passed`, and
/// exits 0. Entered at its Multiboot entry instead, it prints `biosboot: FAIL: entered at
/// the Multiboot header's entry ...` and exits 0x7d.
pub const BIOSBOOT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/biosboot"));

/// Absolute path of the BIOS-start kernel's image file.
pub const BIOSBOOT_PATH: &str = concat!(env!("OUT_DIR"), "/images/biosboot");

/// The BIOS-start VM's config (`guests/biosboot/biosboot.toml`), in the ArceOS hypervisor's
/// x86 form: `entry_point = 0x8000`, `bios_path = "bios-stub"` at 0x8000, `kernel_path =
/// "biosboot"` at 0x20_0000, 16 MiB, `image_location = "memory"`, `phys_cpu_sets`,
/// `interrupt_mode = "passthrough"` and the IOAPIC and local APIC passed through.
pub const BIOSBOOT_CONFIG: &str = include_str!("../../../guests/biosboot/biosboot.toml");

/// Image of the arm64 demo guest: an AArch64 ELF64 loaded and entered at 0x4008_0000 whose
/// vCPU 0 prints `axvm arm64 demo guest: hello from vCPU 0 (BSP)`, starts vCPU 1 with PSCI
/// CPU_ON (checking SUCCESS, then ALREADY_ON for a second call), which prints `... hello
/// from vCPU 1 (AP)`; vCPU 0 then checks the device tree at x0 (`... device tree OK`) and,
/// on axvm (the tree has `/axvm-exit@9100000`), MMIO of each width and the sign-extending
/// loads against the scratch device (`... MMIO OK`; elsewhere `... MMIO skipped (not
/// axvm)`), prints `... all checks passed` and powers off with PSCI SYSTEM_OFF. The `axvm`
/// command's demo on arm64.
pub const ARM_DEMO: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/arm-demo"));

/// Absolute path of the arm64 demo guest's ELF image file.
pub const ARM_DEMO_PATH: &str = concat!(env!("OUT_DIR"), "/images/arm-demo");

/// Absolute path of the arm64 demo guest as a flat Linux arm64 `Image` (text_offset
/// 0x8_0000: it runs only at 0x4008_0000), for QEMU and the VMM's Image path.
pub const ARM_DEMO_BIN_PATH: &str = concat!(env!("OUT_DIR"), "/images/arm-demo.bin");

/// The arm64 demo VM's config (`guests-arm64/demo/arm-demo.toml`): 2 vCPUs, 128 MiB RAM at
/// 0x4000_0000, the scratch device at 0x0a10_0000; `kernel_path = "arm-demo"`.
pub const ARM_DEMO_CONFIG: &str = include_str!("../../../guests-arm64/demo/arm-demo.toml");

/// Image of the arm64 timer guest: an AArch64 ELF64 at 0x4008_0000 that sets up the GICv3
/// (distributor, its redistributor, the ICC system registers), takes the virtual timer's
/// PPI 27 ten times at 10 ms, checks with CNTVCT that it took 100 ms ± 50%, prints `axvm
/// arm64 timer guest: 10 ticks in <n> us` and exits 0. No interrupt within a second:
/// `FAIL: ...` and status 2.
pub const ARM_TIMER: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/arm-timer"));

/// Absolute path of the arm64 timer guest's ELF image file.
pub const ARM_TIMER_PATH: &str = concat!(env!("OUT_DIR"), "/images/arm-timer");

/// Absolute path of the arm64 timer guest as a flat Linux arm64 `Image`.
pub const ARM_TIMER_BIN_PATH: &str = concat!(env!("OUT_DIR"), "/images/arm-timer.bin");

/// The arm64 timer VM's config (`guests-arm64/timer/arm-timer.toml`): 1 vCPU, 128 MiB RAM;
/// `kernel_path = "arm-timer"`.
pub const ARM_TIMER_CONFIG: &str = include_str!("../../../guests-arm64/timer/arm-timer.toml");

/// Image of the arm64 exit guest: an AArch64 ELF64 at 0x4008_0000 that prints `axvm arm64
/// exit guest: exiting with status 42` and writes [`ARM_EXIT_STATUS`] to the exit device.
pub const ARM_EXIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/arm-exit"));

/// Absolute path of the arm64 exit guest's ELF image file.
pub const ARM_EXIT_PATH: &str = concat!(env!("OUT_DIR"), "/images/arm-exit");

/// Absolute path of the arm64 exit guest as a flat Linux arm64 `Image`.
pub const ARM_EXIT_BIN_PATH: &str = concat!(env!("OUT_DIR"), "/images/arm-exit.bin");

/// The arm64 exit VM's config (`guests-arm64/exit/arm-exit.toml`): 1 vCPU, 128 MiB RAM;
/// `kernel_path = "arm-exit"`.
pub const ARM_EXIT_CONFIG: &str = include_str!("../../../guests-arm64/exit/arm-exit.toml");

/// The exit status [`ARM_EXIT`] ends its VM with.
pub const ARM_EXIT_STATUS: u8 = 42;

/// Image of the arm64 exit-loop guest: an AArch64 ELF64 at 0x4008_0000 that makes 20 000
/// 32-bit stores to the scratch device at 0x0a10_0000 and then writes status 0 to the exit
/// device: [`ARM_EXITLOOP_EXITS`] exits, nothing printed. The arm64 workload of the exit
/// round-trip figures. Where the device tree has no `/axvm-exit@9100000` (QEMU) it prints
/// that it skipped the loop and exits 0.
pub const ARM_EXITLOOP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/images/arm-exitloop"));

/// Absolute path of the arm64 exit-loop guest's ELF image file.
pub const ARM_EXITLOOP_PATH: &str = concat!(env!("OUT_DIR"), "/images/arm-exitloop");

/// Absolute path of the arm64 exit-loop guest as a flat Linux arm64 `Image`.
pub const ARM_EXITLOOP_BIN_PATH: &str = concat!(env!("OUT_DIR"), "/images/arm-exitloop.bin");

/// The arm64 exit-loop VM's config (`guests-arm64/exitloop/arm-exitloop.toml`): 1 vCPU,
/// 128 MiB RAM, the scratch device; `kernel_path = "arm-exitloop"`.
pub const ARM_EXITLOOP_CONFIG: &str =
    include_str!("../../../guests-arm64/exitloop/arm-exitloop.toml");

/// How many exits [`ARM_EXITLOOP`] makes on axvm: 20 000 scratch-device stores and the
/// exit-device write.
pub const ARM_EXITLOOP_EXITS: u64 = 20_001;
