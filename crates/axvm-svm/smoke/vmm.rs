//! A smoke test of axvm-svm's `SvmVCpu` with real `VMRUN`s: `run.sh` puts this file in place
//! of the `vmm` module of a scratch copy of the hypervisor kernel (`hypervisor/`) and boots it
//! under QEMU (TCG, `-cpu EPYC`). It uses the kernel's frame allocator, identity map, console,
//! SMP and kick IPI, and checks each exit of three small guests (`*.S`):
//!
//! - vCPU 0, real mode: CPUID (APIC id, hypervisor bit), IN merged into AL, an MMIO read and
//!   write at 0xb8000 (outside guest RAM) decoded by reading the instruction from guest
//!   memory, EFER read without SVME, RDMSR to the host, VMMCALL, HLT, a write to ROM
//!   (reported, then skipped);
//! - vCPU 1, long mode with the guest's own page tables: MOVSX from MMIO, a dword store, an
//!   AH store, CPUID's APIC id 1;
//! - vCPU 2, spinning: the other CPU's kick IPI makes it exit with `Interrupted`;
//! - vCPU 3, halted with interrupts on: a queued interrupt runs its handler (real-mode IVT);
//! - vCPU 4, waiting for a start-up IPI: refuses to run until `start_at_sipi(0x0b)`, then
//!   runs at 0b00:0000.
//!
//! Exits QEMU with 0 when every check passes, 1 at the first failure.

use core::ptr::NonNull;

use axvm::{AccessWidth, AxArchVCpu, AxVCpuExitReason, GuestPhysAddr, MappingFlags};
use axvm_svm::memory::{default_iopm, default_msrpm, HostMemory, PermissionMaps};
use axvm_svm::npt::{NestedPageTables, NptRegion, PageTableMemory};
use axvm_svm::vcpu::boot::{BootRegs, CpuMode, StartPolicy, SvmBoot};
use axvm_svm::{SvmVCpu, VCpuResources};

use crate::{apic, cpu, hv_println, mm, qemu, smp, time};

/// The kernel's memory: frames from its allocator, reached through its identity map.
struct KernelMemory;

impl PageTableMemory for KernelMemory {
    fn alloc_zeroed_page(&mut self) -> Option<u64> {
        mm::frames::alloc(1)
    }

    fn table(&self, hpa: u64) -> Option<&[u64; 512]> {
        // SAFETY: the kernel identity-maps RAM; NPT frames come from its allocator.
        Some(unsafe { &*(mm::phys_to_virt(hpa) as *const [u64; 512]) })
    }

    fn table_mut(&mut self, hpa: u64) -> Option<&mut [u64; 512]> {
        // SAFETY: as in `table`.
        Some(unsafe { &mut *(mm::phys_to_virt(hpa) as *mut [u64; 512]) })
    }
}

// SAFETY: the kernel identity-maps all RAM, and its allocator hands each frame out once.
unsafe impl HostMemory for KernelMemory {
    fn alloc_zeroed_contiguous(&mut self, pages: usize) -> Option<u64> {
        mm::frames::alloc(pages)
    }

    fn phys_to_virt(&self, hpa: u64, _len: usize) -> Option<NonNull<u8>> {
        NonNull::new(mm::phys_to_virt(hpa))
    }
}

static REAL: &[u8] = include_bytes!("real.bin");
static LONG: &[u8] = include_bytes!("long.bin");
static SPIN: &[u8] = include_bytes!("spin.bin");
static IRQ: &[u8] = include_bytes!("irq.bin");
static SIPI: &[u8] = include_bytes!("sipi.bin");

/// Guest RAM: 2 MiB of host memory, mapped at GPA 0-0xa0000 and 1-2 MiB, with read-only
/// "ROM" at 0xf0000-0x100000 (0xa0000-0xf0000 stays MMIO).
const GUEST_RAM: u64 = 2 << 20;

fn write(hpa: u64, data: &[u8]) {
    // SAFETY: `hpa` lies in the guest RAM this module allocated; identity-mapped.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), mm::phys_to_virt(hpa), data.len()) }
}

fn fail(what: &str) -> ! {
    hv_println!("FAIL: {what}");
    qemu::exit(1)
}

/// Runs `vcpu` and checks its exit.
fn expect<M: HostMemory + Send>(vcpu: &mut SvmVCpu<M>, what: &str, want: AxVCpuExitReason) {
    match vcpu.run() {
        Ok(got) if got == want => hv_println!("ok: {what}: {got:?}"),
        Ok(got) => fail(&alloc::format!("{what}: got {got:?}, want {want:?}")),
        Err(error) => fail(&alloc::format!("{what}: {error}")),
    }
}

fn answer<M: HostMemory + Send>(vcpu: &mut SvmVCpu<M>, value: u64) {
    if let Err(error) = vcpu.set_read_result(value) {
        fail(&alloc::format!("set_read_result: {error}"));
    }
}

fn out(port: u16, width: AccessWidth, data: u64) -> AxVCpuExitReason {
    AxVCpuExitReason::IoWrite { port, width, data }
}

fn vcpu_at(
    id: usize,
    resources: VCpuResources,
    entry: u64,
    boot: SvmBoot,
) -> SvmVCpu<KernelMemory> {
    // An ASID of its own for each vCPU (id + 1: ASID 0 is the host's).
    let resources = VCpuResources {
        asid: id as u32 + 1,
        ..resources
    };
    let mut vcpu = SvmVCpu::new(id, resources, KernelMemory)
        .unwrap_or_else(|error| fail(&alloc::format!("{error}")));
    let _ = vcpu.set_entry(GuestPhysAddr::new(entry));
    let _ = vcpu.setup(boot);
    vcpu
}

fn real_mode_checks(resources: VCpuResources, ram: u64) {
    use AccessWidth::{Byte, Dword, Word};
    write(ram + 0x8000, REAL);
    let mut v = vcpu_at(0, resources, 0x8000, SvmBoot::default());
    expect(&mut v, "CPUID APIC id", out(0x80, Byte, 0));
    expect(&mut v, "CPUID hypervisor bit", out(0x80, Byte, 1));
    expect(
        &mut v,
        "IN AL",
        AxVCpuExitReason::IoRead {
            port: 0x81,
            width: Byte,
        },
    );
    answer(&mut v, 0x5a);
    expect(&mut v, "IN merged into AL", out(0x82, Word, 0x115a));
    let mmio = GuestPhysAddr::new(0xb8000);
    expect(
        &mut v,
        "MMIO read",
        AxVCpuExitReason::MmioRead {
            addr: mmio,
            width: Word,
        },
    );
    answer(&mut v, 0xbeef);
    expect(&mut v, "MMIO read value", out(0x82, Word, 0xbeef));
    let addr = GuestPhysAddr::new(0xb8002);
    expect(
        &mut v,
        "MMIO write",
        AxVCpuExitReason::MmioWrite {
            addr,
            width: Byte,
            data: 0x42,
        },
    );
    expect(&mut v, "EFER without SVME", out(0x84, Dword, 0));
    expect(&mut v, "RDMSR", AxVCpuExitReason::SysRegRead { addr: 0x1b });
    answer(&mut v, 0xfee0_0900);
    expect(&mut v, "RDMSR value", out(0x84, Dword, 0xfee0_0900));
    match v.run() {
        Ok(AxVCpuExitReason::Hypercall { nr: 7, args }) => hv_println!("ok: VMMCALL 7 {args:x?}"),
        other => fail(&alloc::format!("VMMCALL: {other:?}")),
    }
    expect(&mut v, "HLT", AxVCpuExitReason::Halt);
    expect(&mut v, "after HLT", out(0xf4, Byte, 7));
    let rom = GuestPhysAddr::new(0xf_0010);
    let access_flags = MappingFlags::WRITE;
    expect(
        &mut v,
        "ROM write",
        AxVCpuExitReason::NestedPageFault {
            addr: rom,
            access_flags,
        },
    );
    expect(&mut v, "past the ROM write", out(0xf5, Byte, 7));
}

fn long_mode_checks(resources: VCpuResources, ram: u64) {
    use AccessWidth::{Byte, Dword, Word};
    // PML4 0x1000 → PDPT 0x2000 → PD 0x3000: 2 MiB pages at 0 and at 4 MiB (MMIO).
    write(ram + 0x1000, &0x2003u64.to_le_bytes());
    write(ram + 0x2000, &0x3003u64.to_le_bytes());
    write(ram + 0x3000, &0x83u64.to_le_bytes());
    write(ram + 0x3010, &0x40_0083u64.to_le_bytes());
    write(ram + 0x9000, LONG);
    let boot = SvmBoot {
        mode: CpuMode::Long {
            page_table_root: GuestPhysAddr::new(0x1000),
            gdt_base: GuestPhysAddr::new(0x500),
        },
        regs: BootRegs::default(),
        start: StartPolicy::AtBoot,
    };
    let mut v = vcpu_at(1, resources, 0x9000, boot);
    let mmio = |offset: u64| GuestPhysAddr::new(0x40_0000 + offset);
    expect(
        &mut v,
        "MOVSX from MMIO",
        AxVCpuExitReason::MmioRead {
            addr: mmio(0),
            width: Word,
        },
    );
    answer(&mut v, 0x8001);
    expect(&mut v, "MOVSX low half", out(0x84, Dword, 0xffff_8001));
    expect(&mut v, "MOVSX high half", out(0x84, Dword, 0xffff_ffff));
    let store = AxVCpuExitReason::MmioWrite {
        addr: mmio(8),
        width: Dword,
        data: 0xdead_beef,
    };
    expect(&mut v, "dword store", store);
    let store = AxVCpuExitReason::MmioWrite {
        addr: mmio(16),
        width: Byte,
        data: 0xab,
    };
    expect(&mut v, "AH store", store);
    expect(&mut v, "CPUID APIC id 1", out(0x80, Byte, 1));
    expect(&mut v, "HLT", AxVCpuExitReason::Halt);
}

/// On CPU 1: waits 200 ms, then kicks CPU 0.
fn kick_cpu_0(cpu: usize) {
    if cpu != 1 {
        return;
    }
    let deadline = time::now_nanos() + 200_000_000;
    while time::now_nanos() < deadline {
        core::hint::spin_loop();
    }
    apic::send_ipi(0, apic::KICK_VECTOR);
}

fn kick_check(resources: VCpuResources, ram: u64) {
    write(ram + 0xa000, SPIN);
    let mut v = vcpu_at(2, resources, 0xa000, SvmBoot::default());
    smp::run_on_aps(kick_cpu_0);
    // V_INTR_MASKING: host interrupts reach the guest's exit only with the host's IF set.
    cpu::enable_interrupts();
    expect(&mut v, "kick IPI", AxVCpuExitReason::Interrupted);
    cpu::disable_interrupts();
    hv_println!("{}", v.describe_state());
}

fn interrupt_check(resources: VCpuResources, ram: u64) {
    use AccessWidth::Byte;
    write(ram + 0x1_0000, IRQ);
    let mut v = vcpu_at(3, resources, 0x1_0000, SvmBoot::default());
    expect(&mut v, "STI; HLT", AxVCpuExitReason::Halt);
    if let Err(error) = v.queue_interrupt(0x30) {
        fail(&alloc::format!("queue_interrupt: {error}"));
    }
    expect(&mut v, "interrupt handler", out(0x86, Byte, 0x55));
    if v.pending_interrupt().is_some() {
        fail("the interrupt is still pending after its handler ran");
    }
    expect(&mut v, "after IRET", out(0x87, Byte, 0x55));
    expect(&mut v, "HLT", AxVCpuExitReason::Halt);
}

fn sipi_check(resources: VCpuResources, ram: u64) {
    write(ram + 0xb000, SIPI);
    let boot = SvmBoot {
        start: StartPolicy::WaitForSipi,
        ..SvmBoot::default()
    };
    let mut v = vcpu_at(4, resources, 0, boot);
    match v.run() {
        Err(error) => hv_println!("ok: before the SIPI: {error}"),
        Ok(exit) => fail(&alloc::format!("ran before its SIPI: {exit:?}")),
    }
    v.start_at_sipi(0x0b);
    expect(
        &mut v,
        "CS after the SIPI",
        out(0x88, AccessWidth::Word, 0x0b00),
    );
    expect(&mut v, "HLT", AxVCpuExitReason::Halt);
}

/// Runs the checks and exits QEMU.
pub fn main() -> ! {
    let hsave = mm::frames::alloc(1).unwrap_or_else(|| fail("no host save area"));
    // SAFETY: CPL 0; the page is this CPU's for good.
    match unsafe { axvm_svm::cpu::enable_svm(hsave) } {
        Ok(features) => hv_println!("SVM enabled: {features:?}"),
        Err(error) => fail(&alloc::format!("enable_svm: {error}")),
    }
    let mut memory = KernelMemory;
    let ram = mm::frames::alloc((GUEST_RAM / 4096) as usize).unwrap_or_else(|| fail("no RAM"));
    let rwx = MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE;
    let regions = [
        NptRegion {
            gpa: 0,
            hpa: ram,
            size: 0xa_0000,
            flags: rwx,
        },
        NptRegion {
            gpa: 0xf_0000,
            hpa: ram + 0xf_0000,
            size: 0x1_0000,
            flags: MappingFlags::READ | MappingFlags::EXECUTE,
        },
        NptRegion {
            gpa: 0x10_0000,
            hpa: ram + 0x10_0000,
            size: 0x10_0000,
            flags: rwx,
        },
    ];
    let npt = NestedPageTables::build(&mut memory, &regions)
        .unwrap_or_else(|error| fail(&alloc::format!("{error}")));
    let maps = PermissionMaps::install(&mut memory, &default_iopm(), &default_msrpm())
        .unwrap_or_else(|error| fail(&alloc::format!("{error}")));
    let resources = VCpuResources { npt, maps, asid: 0 }; // set per vCPU by vcpu_at
    real_mode_checks(resources, ram);
    long_mode_checks(resources, ram);
    interrupt_check(resources, ram);
    sipi_check(resources, ram);
    if smp::cpu_count() > 1 {
        kick_check(resources, ram);
    }
    hv_println!("smoke: all checks passed");
    qemu::exit(0)
}
