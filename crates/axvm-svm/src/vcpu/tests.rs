//! The vCPU without `VMRUN`: creation, and exits written into its VMCB by hand, handled
//! as `run` would handle them after a real `#VMEXIT`.

use super::*;
use crate::memory::testing::FakeHostMemory;
use crate::memory::{default_iopm, default_msrpm};
use crate::npt::NptRegion;
use crate::vmcb::{int_ctl, intercept, nested_ctl};
use alloc::string::ToString;
use axvm::{AccessWidth, MappingFlags};
use boot::{BootRegs, CpuMode};

/// Guest RAM: 128 KiB at GPA 0.
const RAM_SIZE: u64 = 0x2_0000;

pub(super) struct Fixture {
    pub(super) vcpu: SvmVCpu<FakeHostMemory>,
    ram_hpa: u64,
}

impl Fixture {
    pub(super) fn new(vcpu_id: usize) -> Self {
        let mut memory = FakeHostMemory::new(64);
        let ram_hpa = memory
            .alloc_zeroed_contiguous((RAM_SIZE / 0x1000) as usize)
            .expect("room for RAM");
        let ram = NptRegion {
            gpa: 0,
            hpa: ram_hpa,
            size: RAM_SIZE,
            flags: MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE,
        };
        let npt = NestedPageTables::build(&mut memory, &[ram]).expect("tables");
        let maps =
            PermissionMaps::install(&mut memory, &default_iopm(), &default_msrpm()).expect("maps");
        let resources = VCpuResources { npt, maps, asid: 1 };
        let vcpu = SvmVCpu::new(vcpu_id, resources, memory).expect("a vCPU");
        Self { vcpu, ram_hpa }
    }

    fn write_guest(&mut self, gpa: u64, data: &[u8]) {
        self.vcpu.memory.write(self.ram_hpa + gpa, data);
    }

    /// Starts the guest in long mode at `rip` with identity-mapped page tables for the
    /// first 2 MiB at GPA 0x1000 (PML4) → 0x2000 (PDPT) → 0x3000 (PD, one 2 MiB page).
    fn long_mode_at(&mut self, rip: u64) {
        self.write_guest(0x1000, &(0x2000u64 | 3).to_le_bytes());
        self.write_guest(0x2000, &(0x3000u64 | 3).to_le_bytes());
        self.write_guest(0x3000, &(0x83u64).to_le_bytes());
        let boot = SvmBoot {
            mode: CpuMode::Long {
                page_table_root: GuestPhysAddr::new(0x1000),
                gdt_base: GuestPhysAddr::new(0x500),
            },
            regs: BootRegs::default(),
            start: StartPolicy::AtBoot,
        };
        self.vcpu.set_entry(GuestPhysAddr::new(rip)).unwrap();
        self.vcpu.setup(boot).unwrap();
        self.vcpu.apply_boot_if_needed();
    }

    /// What `run` does after a `#VMEXIT` with these exit fields.
    fn exit(
        &mut self,
        code: u64,
        info1: u64,
        info2: u64,
    ) -> Result<Option<AxVCpuExitReason>, SvmError> {
        let control = &mut self.vcpu.vmcb_mut().control;
        control.exit_code = code;
        control.exit_info1 = info1;
        control.exit_info2 = info2;
        let info = ExitInfo::from_vmcb(self.vcpu.vmcb(), &self.vcpu.gprs);
        self.vcpu.last_exit = Some(info);
        self.vcpu.handle_exit(info)
    }

    fn rip_after_resume(&mut self) -> u64 {
        self.vcpu.prepare_entry();
        self.vcpu.vmcb().save.rip
    }
}

#[test]
fn a_new_vcpu_intercepts_what_the_backend_handles() {
    let fixture = Fixture::new(0);
    let control = &fixture.vcpu.vmcb().control;
    for bit in [
        intercept::INTR,
        intercept::NMI,
        intercept::CPUID,
        intercept::HLT,
        intercept::IOIO_PROT,
        intercept::MSR_PROT,
        intercept::SHUTDOWN,
    ] {
        assert_ne!(control.intercept_misc1 & bit, 0, "misc1 bit {bit:#x}");
    }
    for bit in [
        intercept::VMRUN,
        intercept::VMMCALL,
        intercept::VMLOAD,
        intercept::CLGI,
    ] {
        assert_ne!(control.intercept_misc2 & bit, 0, "misc2 bit {bit:#x}");
    }
    assert_eq!(control.intercept_exceptions, 0);
    assert_eq!(control.guest_asid, 1);
    assert_eq!(control.nested_ctl, nested_ctl::NP_ENABLE);
    assert_eq!(control.nested_cr3, fixture.vcpu.npt.root());
    assert_ne!(control.int_ctl & int_ctl::V_INTR_MASKING, 0);
    assert_ne!(control.iopm_base_pa, 0);
    assert_ne!(control.msrpm_base_pa, 0);
    assert_ne!(fixture.vcpu.vmcb().save.efer & EFER_SVME, 0);
    assert_ne!(fixture.vcpu.vmcb_pa, fixture.vcpu.host_state_pa);
}

#[test]
fn asid_0_and_misaligned_maps_are_refused() {
    let mut memory = FakeHostMemory::new(16);
    let npt = NestedPageTables::new(&mut memory).unwrap();
    let maps = PermissionMaps {
        iopm_pa: 0x1000,
        msrpm_pa: 0x4000,
    };
    let err = SvmVCpu::new(2, VCpuResources { npt, maps, asid: 0 }, memory)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("vCPU 2: ASID 0"), "{err}");
    let memory = FakeHostMemory::new(16);
    let maps = PermissionMaps {
        iopm_pa: 0x1010,
        msrpm_pa: 0x4000,
    };
    let err = SvmVCpu::new(2, VCpuResources { npt, maps, asid: 1 }, memory)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("IOPM address 0x1010"), "{err}");
    let memory = FakeHostMemory::new(1);
    let maps = PermissionMaps {
        iopm_pa: 0x1000,
        msrpm_pa: 0x4000,
    };
    let err = SvmVCpu::new(2, VCpuResources { npt, maps, asid: 1 }, memory)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("host-state page"), "{err}");
}

#[test]
fn cpuid_is_answered_inside_with_the_vcpu_id_as_apic_id() {
    let mut f = Fixture::new(3);
    f.long_mode_at(0x10_0000);
    f.vcpu.set_gpr(0, 0xffff_ffff_0000_0001).unwrap(); // leaf 1, garbage above
    f.vcpu.set_gpr(3, u64::MAX).unwrap();
    f.vcpu.vmcb_mut().control.next_rip = 0x10_0002;
    assert_eq!(f.exit(0x72, 0, 0).unwrap(), None, "no exit for the core");
    let gprs = f.vcpu.full_gprs();
    assert_eq!(gprs[3] >> 24, 3, "EBX[31:24]");
    assert_eq!(gprs[3] >> 32, 0, "CPUID clears RBX's upper half");
    assert_ne!(gprs[1] & (1 << 31), 0, "the hypervisor bit in ECX");
    assert_eq!(f.rip_after_resume(), 0x10_0002);
}

#[test]
fn a_port_read_is_merged_into_al_and_rip_moves_on_the_next_run() {
    let mut f = Fixture::new(0);
    f.long_mode_at(0x10_0000);
    f.vcpu.set_gpr(0, 0x1122_3344_5566_7788).unwrap();
    // IN AL, DX from port 0x3fd: type IN, SZ8, next RIP in EXITINFO2.
    let reason = f
        .exit(0x7b, (0x3fd << 16) | (1 << 4) | 1, 0x10_0001)
        .unwrap();
    assert_eq!(
        reason,
        Some(AxVCpuExitReason::IoRead {
            port: 0x3fd,
            width: AccessWidth::Byte
        })
    );
    assert_eq!(
        f.vcpu.vmcb().save.rip,
        0x10_0000,
        "at the IN until the next run"
    );
    f.vcpu.set_read_result(0x60).unwrap();
    assert_eq!(f.vcpu.vmcb().save.rax, 0x1122_3344_5566_7760);
    assert!(matches!(
        f.vcpu.set_read_result(0),
        Err(SvmError::NoPendingRead { vcpu: 0 })
    ));
    assert_eq!(f.rip_after_resume(), 0x10_0001);
}

#[test]
fn an_mmio_load_without_decode_assists_reads_the_instruction_through_the_guest_tables() {
    let mut f = Fixture::new(0);
    f.long_mode_at(0x8000);
    // movzx ecx, word ptr [rbx] (0f b7 0b), then a NOP.
    f.write_guest(0x8000, &[0x0f, 0xb7, 0x0b, 0x90]);
    f.vcpu.set_gpr(1, u64::MAX).unwrap();
    f.vcpu.set_gpr(3, 0xfee0_0030).unwrap();
    let reason = f.exit(0x400, 0b100, 0xfee0_0030).unwrap(); // not present, read, user
    assert_eq!(
        reason,
        Some(AxVCpuExitReason::MmioRead {
            addr: GuestPhysAddr::new(0xfee0_0030),
            width: AccessWidth::Word
        })
    );
    f.vcpu.set_read_result(0xbeef).unwrap();
    assert_eq!(
        f.vcpu.full_gprs()[1],
        0xbeef,
        "MOVZX into ECX clears the rest"
    );
    assert_eq!(f.rip_after_resume(), 0x8003);
}

#[test]
fn an_mmio_store_in_real_mode_is_decoded_at_cs_base_plus_ip() {
    let mut f = Fixture::new(0);
    let boot = SvmBoot::default(); // real mode
    f.vcpu.set_entry(GuestPhysAddr::new(0x1_2340)).unwrap();
    f.vcpu.setup(boot).unwrap();
    f.vcpu.apply_boot_if_needed();
    // mov [di], al (88 05) at 0x1000:0x2340.
    f.write_guest(0x1_2340, &[0x88, 0x05]);
    f.vcpu.set_gpr(0, 0xab).unwrap();
    let reason = f.exit(0x400, 0b110, 0xb8000).unwrap();
    assert_eq!(
        reason,
        Some(AxVCpuExitReason::MmioWrite {
            addr: GuestPhysAddr::new(0xb8000),
            width: AccessWidth::Byte,
            data: 0xab
        })
    );
    assert_eq!(f.rip_after_resume(), 0x2342);
}

#[test]
fn an_instruction_outside_guest_ram_is_an_error_naming_the_address() {
    let mut f = Fixture::new(0);
    f.long_mode_at(0x10_0000); // mapped by the guest, beyond the 128 KiB of RAM
    let err = f.exit(0x400, 0b100, 0xfee0_0000).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("cannot read the instruction"), "{text}");
    assert!(text.contains("0x100000"), "{text}");
}

#[test]
fn efer_is_answered_inside_hiding_svme_and_keeping_it() {
    let mut f = Fixture::new(0);
    f.long_mode_at(0x8000);
    f.vcpu.set_gpr(1, 0xc000_0080).unwrap();
    f.vcpu.vmcb_mut().control.next_rip = 0x8002;
    assert_eq!(f.exit(0x7c, 0, 0).unwrap(), None, "RDMSR EFER");
    assert_eq!(f.vcpu.full_gprs()[0], 0x500, "LME | LMA, no SVME");
    assert_eq!(f.vcpu.full_gprs()[2], 0);
    assert_eq!(f.rip_after_resume(), 0x8002);

    f.vcpu.set_gpr(0, 0xd01).unwrap(); // SCE | LME | LMA | NXE
    f.vcpu.set_gpr(2, 0).unwrap();
    f.vcpu.vmcb_mut().control.next_rip = 0x8004;
    assert_eq!(f.exit(0x7c, 1, 0).unwrap(), None, "WRMSR EFER");
    assert_eq!(f.vcpu.vmcb().save.efer, 0xd01 | EFER_SVME);
    assert_eq!(f.rip_after_resume(), 0x8004);

    f.vcpu.set_gpr(0, EFER_SVME).unwrap(); // SVM is hidden: a reserved bit
    f.vcpu.vmcb_mut().control.next_rip = 0x8006;
    assert_eq!(f.exit(0x7c, 1, 0).unwrap(), None);
    assert_eq!(
        f.vcpu.vmcb().control.event_inj,
        EVENT_GP0,
        "#GP(0) injected"
    );
    assert_eq!(
        f.rip_after_resume(),
        0x8004,
        "the faulting WRMSR does not retire"
    );
    assert_eq!(f.vcpu.vmcb().save.efer, 0xd01 | EFER_SVME);
}

#[test]
fn other_msrs_go_to_the_core_and_reads_land_in_edx_eax() {
    let mut f = Fixture::new(0);
    f.long_mode_at(0x8000);
    f.vcpu.set_gpr(1, 0x1b).unwrap();
    let reason = f.exit(0x7c, 0, 0).unwrap();
    assert_eq!(reason, Some(AxVCpuExitReason::SysRegRead { addr: 0x1b }));
    f.vcpu.set_read_result(0x1_fee0_0900).unwrap();
    assert_eq!(f.vcpu.full_gprs()[0], 0xfee0_0900);
    assert_eq!(f.vcpu.full_gprs()[2], 1);
}

#[test]
fn interrupts_and_nmis_are_interrupted_exits_at_the_same_instruction() {
    let mut f = Fixture::new(0);
    f.long_mode_at(0x8000);
    assert_eq!(
        f.exit(0x60, 0, 0).unwrap(),
        Some(AxVCpuExitReason::Interrupted)
    );
    assert_eq!(f.rip_after_resume(), 0x8000);
    assert_eq!(
        f.exit(0x61, 0, 0).unwrap(),
        Some(AxVCpuExitReason::Interrupted)
    );
    assert_eq!(f.rip_after_resume(), 0x8000);
}

#[test]
fn after_a_triple_fault_the_vcpu_refuses_to_run() {
    let mut f = Fixture::new(4);
    f.long_mode_at(0x8000);
    assert_eq!(
        f.exit(0x7f, 0, 0).unwrap(),
        Some(AxVCpuExitReason::SystemDown)
    );
    let err = f.vcpu.run().unwrap_err();
    assert!(matches!(err, SvmError::Stopped { vcpu: 4, .. }), "{err}");
}

#[test]
fn an_application_processor_waits_for_its_sipi() {
    let mut f = Fixture::new(1);
    let boot = SvmBoot {
        start: StartPolicy::WaitForSipi,
        ..SvmBoot::default()
    };
    f.vcpu.setup(boot).unwrap();
    assert!(f.vcpu.is_waiting_for_sipi());
    let err = f.vcpu.run().unwrap_err();
    assert!(matches!(err, SvmError::WaitingForSipi { vcpu: 1 }), "{err}");
    f.vcpu.set_gpr(3, 7).unwrap();
    f.vcpu.start_at_sipi(0x9a);
    assert!(!f.vcpu.is_waiting_for_sipi());
    let save = &f.vcpu.vmcb().save;
    assert_eq!(
        (save.cs.selector, save.cs.base, save.rip),
        (0x9a00, 0x9_a000, 0)
    );
    assert_eq!(f.vcpu.full_gprs(), [0; 16]);
    let ip = f.vcpu.instruction_pointer().unwrap();
    assert_eq!((ip.linear, ip.bitness), (0x9_a000, 16));
    assert_eq!(ip.physical, Some(GuestPhysAddr::new(0x9_a000)));
}

#[test]
fn an_unhandled_exit_reports_code_info_rip_instruction_and_registers() {
    let mut f = Fixture::new(2);
    f.long_mode_at(0x8000);
    f.write_guest(0x8000, &[0x0f, 0x01, 0xda]); // vmload rax
    f.vcpu.set_gpr(0, 0xdead_beef).unwrap();
    f.vcpu.set_gpr(15, 0x1515).unwrap();
    let err = f.exit(0x82, 0x11, 0x22).unwrap_err();
    let text = err.to_string();
    for needle in [
        "EXITCODE 0x82",
        "EXITINFO1 0x11",
        "EXITINFO2 0x22",
        "vCPU 2",
        "RIP 0x0000000000008000",
        "0f 01 da  vmload rax",
        "RAX 0x00000000deadbeef",
        "R15 0x0000000000001515",
        "EFER 0x1500",
        "CS 0x0008",
    ] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn set_gpr_and_instruction_pointer() {
    let mut f = Fixture::new(0);
    f.long_mode_at(0x8123);
    assert!(matches!(
        f.vcpu.set_gpr(16, 0),
        Err(SvmError::NoSuchRegister { reg: 16, .. })
    ));
    f.vcpu.set_gpr(4, 0x7000).unwrap();
    assert_eq!(f.vcpu.vmcb().save.rsp, 0x7000, "RSP lives in the VMCB");
    let ip = f.vcpu.instruction_pointer().unwrap();
    assert_eq!((ip.rip, ip.linear, ip.bitness), (0x8123, 0x8123, 64));
    assert_eq!(ip.physical, Some(GuestPhysAddr::new(0x8123)));
    assert!(!f.vcpu.ip_past_access(axvm::device::DeviceSpace::Mmio, true));
}

#[test]
fn the_first_run_flushes_the_tlb_and_later_ones_only_on_request() {
    let mut f = Fixture::new(0);
    f.vcpu.prepare_entry();
    assert_eq!(f.vcpu.vmcb().control.tlb_control, tlb_control::FLUSH_ALL);
    f.vcpu.prepare_entry();
    assert_eq!(f.vcpu.vmcb().control.tlb_control, tlb_control::DO_NOTHING);
    f.vcpu.request_tlb_flush();
    f.vcpu.prepare_entry();
    assert_eq!(f.vcpu.vmcb().control.tlb_control, tlb_control::FLUSH_ALL);
}

#[test]
fn an_event_cut_short_by_an_exit_is_redelivered_and_nothing_else_is() {
    let mut control = Vmcb::zeroed().control;
    let page_fault = EVENT_VALID | (1 << 11) | (3 << 8) | 14;
    control.exit_int_info = page_fault;
    control.exit_int_info_err = 2;
    requeue_interrupted_event(&mut control);
    assert_eq!((control.event_inj, control.event_inj_err), (page_fault, 2));
    control.exit_int_info = 0;
    requeue_interrupted_event(&mut control);
    assert_eq!(
        control.event_inj, 0,
        "an injected #GP is not injected twice"
    );
}

#[test]
fn without_nrip_save_a_stale_next_rip_is_not_used() {
    let mut f = Fixture::new(0);
    f.long_mode_at(0x8000);
    f.vcpu.vmcb_mut().control.next_rip = 0x1234; // left from an earlier exit
    f.vcpu.prepare_entry(); // QEMU's TCG writes no next_rip on the exit that follows
    f.vcpu.set_gpr(0, 0).unwrap();
    assert_eq!(f.exit(0x72, 0, 0).unwrap(), None);
    assert_eq!(f.rip_after_resume(), 0x8002, "CPUID's fixed length");
}

#[test]
fn a_write_to_read_only_memory_is_reported_and_skipped_when_the_guest_runs_on() {
    let mut f = Fixture::new(0);
    f.long_mode_at(0x8000);
    f.write_guest(0x8000, &[0xf3, 0x48, 0xab]); // rep stosq into ROM
    let reason = f.exit(0x400, 0b111, 0xf_0000).unwrap(); // present, write, user
    assert_eq!(
        reason,
        Some(AxVCpuExitReason::NestedPageFault {
            addr: GuestPhysAddr::new(0xf_0000),
            access_flags: MappingFlags::WRITE
        })
    );
    assert_eq!(
        f.vcpu.vmcb().save.rip,
        0x8000,
        "reported at the instruction"
    );
    assert_eq!(
        f.rip_after_resume(),
        0x8003,
        "the core drops the write: past it"
    );
}
