//! [`SvmVCpu`]: the core's [`AxArchVCpu`] on a VMCB.
//!
//! A vCPU owns two pages: its VMCB and a host-state page for `VMSAVE`/`VMLOAD` (see
//! `entry`). The VM's nested page tables and permission maps are shared and given at
//! creation ([`VCpuResources`]).
//!
//! [`run`](AxArchVCpu::run) enters the guest and handles inside the backend what the core
//! has no exit kind for, as KVM does in its kernel: CPUID ([`cpuid`]), the guest's EFER
//! (whose SVME bit `VMRUN` needs and the guest must not see), the instruction fetch behind
//! an MMIO exit when the processor has no decode assists ([`guest_paging`]), and re-queuing
//! an event whose delivery an exit interrupted. Everything else is returned as an
//! [`AxVCpuExitReason`]; an exit nobody handles is an error whose text
//! ([`SvmVCpu::describe_state`]) shows the exit, the disassembled instruction and the
//! registers.
//!
//! The guest's RIP moves past an intercepted instruction only when the vCPU runs again, so
//! between exits [`instruction_pointer`](AxArchVCpu::instruction_pointer) names the
//! instruction that exited (SVM exits before any access completes).

pub mod boot;
mod control;
pub mod cpuid;
mod describe;
mod entry;
mod error;
pub mod guest_paging;
mod inject;
#[cfg(test)]
mod tests;

use core::ptr::NonNull;

use axvm::{AxArchVCpu, AxVCpuExitReason, GuestPhysAddr, InstructionPointer};

use crate::exit::{self, ExitInfo, GuestGprs, ReadTarget, Resume, SvmExit};
use crate::memory::{read_guest_phys, HostMemory, HostMemoryError, PermissionMaps};
use crate::npt::NestedPageTables;
use crate::vmcb::{tlb_control, SvmExitCode, Vmcb, VmcbControlArea};
use boot::{apply_boot_state, reset_state, set_sipi_state, StartPolicy, SvmBoot};
use control::{alloc_page, check_resources, init_control_area};
pub use error::SvmError;
use guest_paging::{GuestPhysReader, PagingRegs};
pub use inject::InjectError;

/// What a vCPU shares with the rest of its VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VCpuResources {
    /// The VM's nested page tables (reached through the vCPU's [`HostMemory`] for
    /// instruction fetches).
    pub npt: NestedPageTables,
    /// The VM's I/O and MSR permission maps.
    pub maps: PermissionMaps,
    /// The guest's ASID: nonzero, below [`SvmFeatures::asids`](crate::cpu::SvmFeatures).
    /// Give each vCPU its own: the TLB tags guest translations with the ASID alone, so two
    /// vCPUs sharing one on the same physical CPU would use each other's translations
    /// (unless the host calls [`SvmVCpu::request_tlb_flush`] whenever it switches them).
    pub asid: u32,
}

/// MSR EFER, which the backend answers itself.
const MSR_EFER: u32 = crate::cpu::MSR_EFER;
const EFER_SVME: u64 = crate::cpu::EFER_SVME;
const EFER_LMA: u64 = 1 << 10;
/// EFER bits a guest may write: SCE, LME, NXE, LMSLE, FFXSR, TCE (LMA is read-only).
const EFER_GUEST_WRITABLE: u64 =
    (1 << 0) | (1 << 8) | (1 << 11) | (1 << 13) | (1 << 14) | (1 << 15);
/// EVENTINJ/EXITINTINFO: valid bit.
const EVENT_VALID: u32 = 1 << 31;
/// EVENTINJ for #GP(0): vector 13, type exception (3), error code valid.
const EVENT_GP0: u32 = EVENT_VALID | (1 << 11) | (3 << 8) | 13;

/// An SVM vCPU; `M` is how it reaches host memory (the kernel's identity map).
pub struct SvmVCpu<M: HostMemory> {
    id: usize,
    memory: M,
    vmcb: NonNull<Vmcb>,
    vmcb_pa: u64,
    host_state_pa: u64,
    npt: NestedPageTables,
    /// The guest's general registers; entries 0 (RAX) and 4 (RSP) live in the VMCB.
    gprs: GuestGprs,
    entry: GuestPhysAddr,
    boot: SvmBoot,
    boot_applied: bool,
    waiting_for_sipi: bool,
    /// How to resume after the last exit, applied when the vCPU runs again.
    resume: Option<Resume>,
    /// Where the value of the last exit's read goes.
    pending_read: Option<ReadTarget>,
    /// The write half of a read-modify-write whose read was answered: reported by the next
    /// [`run`](AxArchVCpu::run) before the guest is entered again.
    pending_write: Option<AxVCpuExitReason>,
    /// An exit the guest cannot continue from.
    stopped: Option<&'static str>,
    last_exit: Option<ExitInfo>,
    flush_tlb: bool,
    /// See [`SvmVCpu::set_host_interrupts_always_exit`].
    host_interrupts_always_exit: bool,
}

// SAFETY: the VMCB pointer is to a page this vCPU owns alone (allocated in `new`), so moving
// the vCPU to another thread moves its only user; `M: Send` covers the rest.
unsafe impl<M: HostMemory + Send> Send for SvmVCpu<M> {}

impl<M: HostMemory> SvmVCpu<M> {
    /// Creates vCPU `vcpu_id` with its VMCB and host-state pages from `memory`, intercepting
    /// port I/O (through the IOPM), MSRs (through the MSRPM), CPUID, HLT, shutdown, host
    /// interrupts and NMIs, VMMCALL and every SVM instruction, with nested paging on and
    /// V_INTR_MASKING set. The guest starts in the reset state until
    /// [`setup`](AxArchVCpu::setup).
    pub fn new(vcpu_id: usize, resources: VCpuResources, mut memory: M) -> Result<Self, SvmError> {
        check_resources(vcpu_id, &resources)?;
        let host_memory = |source| SvmError::HostMemory {
            vcpu: vcpu_id,
            source,
        };
        let vmcb_pa = alloc_page(&mut memory, "VMCB").map_err(host_memory)?;
        let host_state_pa = alloc_page(&mut memory, "host-state page").map_err(host_memory)?;
        let vmcb = memory
            .phys_to_virt(vmcb_pa, core::mem::size_of::<Vmcb>())
            .filter(|ptr| ptr.as_ptr().align_offset(0x1000) == 0)
            .ok_or(host_memory(HostMemoryError::Unreachable {
                what: "VMCB",
                hpa: vmcb_pa,
            }))?
            .cast::<Vmcb>();
        let mut vcpu = Self {
            id: vcpu_id,
            memory,
            vmcb,
            vmcb_pa,
            host_state_pa,
            npt: resources.npt,
            gprs: [0; 16],
            entry: GuestPhysAddr::new(0),
            boot: SvmBoot::default(),
            boot_applied: false,
            waiting_for_sipi: false,
            resume: None,
            pending_read: None,
            pending_write: None,
            stopped: None,
            last_exit: None,
            flush_tlb: true,
            host_interrupts_always_exit: false,
        };
        let vmcb = vcpu.vmcb_mut();
        *vmcb = Vmcb::zeroed();
        init_control_area(vmcb, &resources);
        reset_state(&mut vmcb.save);
        Ok(vcpu)
    }

    /// The vCPU's id (its APIC id in CPUID).
    pub fn id(&self) -> usize {
        self.id
    }

    /// Whether the vCPU waits for a start-up IPI ([`StartPolicy::WaitForSipi`]).
    pub fn is_waiting_for_sipi(&self) -> bool {
        self.waiting_for_sipi
    }

    /// Starts a vCPU that waits for a start-up IPI with vector `vector`: the INIT state,
    /// real mode at `vector << 12` (CS = vector << 8, IP = 0), every register zero.
    pub fn start_at_sipi(&mut self, vector: u8) {
        set_sipi_state(&mut self.vmcb_mut().save, vector);
        self.gprs = [0; 16];
        self.waiting_for_sipi = false;
        self.boot_applied = true;
        self.resume = None;
        self.pending_read = None;
        self.stopped = None;
    }

    /// With `on`, host interrupts make the guest exit ([`AxVCpuExitReason::Interrupted`])
    /// whatever the caller's RFLAGS.IF when it calls `run`, and an interrupt that did so
    /// stays pending until the caller sets IF (with IF set it is taken inside `run`, as
    /// without this). A host can then check for work with interrupts off and call `run`
    /// without losing a kick IPI sent after its check: the kick is pending at `VMRUN` and the
    /// guest exits at once. Off by default: interrupts exit the guest only when the caller's
    /// IF is set.
    pub fn set_host_interrupts_always_exit(&mut self, on: bool) {
        self.host_interrupts_always_exit = on;
    }

    /// Makes the next `VMRUN` flush the TLB: needed when the vCPU moves to another
    /// physical CPU that may hold stale entries of its ASID, or when the VM's nested page
    /// tables lost a mapping. (The first run always flushes.)
    pub fn request_tlb_flush(&mut self) {
        self.flush_tlb = true;
    }

    /// The VMCB, for inspection (tests, diagnostics).
    pub fn vmcb(&self) -> &Vmcb {
        // SAFETY: `vmcb` points to this vCPU's own VMCB page (checked reachable and aligned
        // in `new`); `&self` keeps it from being written meanwhile.
        unsafe { self.vmcb.as_ref() }
    }

    fn vmcb_mut(&mut self) -> &mut Vmcb {
        // SAFETY: as in `vmcb`, with `&mut self`.
        unsafe { self.vmcb.as_mut() }
    }

    /// The guest's 16 general registers with RAX and RSP from the VMCB.
    fn full_gprs(&self) -> GuestGprs {
        let mut gprs = self.gprs;
        gprs[0] = self.vmcb().save.rax;
        gprs[4] = self.vmcb().save.rsp;
        gprs
    }

    /// Stores `gprs` back (RAX and RSP into the VMCB).
    fn set_full_gprs(&mut self, gprs: GuestGprs) {
        self.gprs = gprs;
        let save = &mut self.vmcb_mut().save;
        save.rax = gprs[0];
        save.rsp = gprs[4];
    }

    fn paging_regs(&self) -> PagingRegs {
        let save = &self.vmcb().save;
        PagingRegs {
            cr0: save.cr0,
            cr3: save.cr3,
            cr4: save.cr4,
            efer: save.efer,
        }
    }

    /// The linear address of the guest's current instruction.
    fn rip_linear(&self) -> u64 {
        let vmcb = self.vmcb();
        if vmcb.guest_code_bitness() == 64 {
            vmcb.save.rip
        } else {
            vmcb.save.cs.base.wrapping_add(vmcb.save.rip) & 0xffff_ffff
        }
    }

    fn guest_reader(&self) -> NptReader<'_, M> {
        NptReader {
            memory: &self.memory,
            npt: &self.npt,
        }
    }

    /// Applies the boot state if `setup`/`set_entry` changed it since.
    fn apply_boot_if_needed(&mut self) {
        if self.boot_applied {
            return;
        }
        let (boot, entry) = (self.boot, self.entry);
        let gprs = apply_boot_state(&boot, entry, &mut self.vmcb_mut().save);
        self.gprs = gprs;
        self.boot_applied = true;
        self.waiting_for_sipi = boot.start == StartPolicy::WaitForSipi;
    }

    /// Moves the guest past the last exit's instruction and sets the per-entry controls.
    fn prepare_entry(&mut self) {
        let resume = self.resume.take();
        let flush = core::mem::replace(&mut self.flush_tlb, false);
        let vmcb = self.vmcb_mut();
        if let Some(resume) = resume {
            if resume.next_rip != vmcb.save.rip {
                vmcb.save.rip = resume.next_rip;
                // The instruction completed: an STI or MOV SS shadow ended with it.
                vmcb.control.int_state &= !1;
            }
        }
        vmcb.control.tlb_control = if flush {
            tlb_control::FLUSH_ALL
        } else {
            tlb_control::DO_NOTHING
        };
        // Nothing is cached between runs: the backend may have changed any field.
        vmcb.control.clean_bits = 0;
        // Without NRIP save (QEMU's TCG) the processor never writes `next_rip`; zero makes
        // exit decoding use the instruction's fixed length instead of a stale value.
        vmcb.control.next_rip = 0;
    }

    /// One `VMRUN`, and the exit's snapshot.
    fn enter_guest(&mut self) -> ExitInfo {
        let (vmcb_pa, host_state_pa) = (self.vmcb_pa, self.host_state_pa);
        let interrupts_exit = self.host_interrupts_always_exit;
        // SAFETY: the VMCB was set up in `new` (VMRUN intercepted, nonzero ASID, nested
        // paging, permission maps) and both pages are this vCPU's; enabling SVM on this CPU
        // is the caller's part of the `run` contract documented on the crate.
        unsafe { entry::vmrun(&mut self.gprs, vmcb_pa, host_state_pa, interrupts_exit) };
        requeue_interrupted_event(&mut self.vmcb_mut().control);
        ExitInfo::from_vmcb(self.vmcb(), &self.gprs)
    }

    /// Handles `info` inside the backend where it can; `Some` is an exit for the caller.
    fn handle_exit(&mut self, mut info: ExitInfo) -> Result<Option<AxVCpuExitReason>, SvmError> {
        match SvmExitCode::from_raw(info.code) {
            SvmExitCode::Nmi => {
                // Taken by the host at STGI; the guest goes on at the same instruction.
                return Ok(Some(AxVCpuExitReason::Interrupted));
            }
            SvmExitCode::NestedPageFault if needs_instruction_bytes(&info) => {
                self.fetch_instruction_bytes(&mut info)?;
                self.last_exit = Some(info);
            }
            _ => {}
        }
        match exit::decode_exit(&info) {
            Ok(SvmExit::Cpuid {
                leaf,
                subleaf,
                next_rip,
            }) => {
                self.answer_cpuid(leaf, subleaf, next_rip);
                Ok(None)
            }
            Ok(SvmExit::Core { reason, resume }) => Ok(self.core_exit(reason, resume)),
            Err(cause) => Err(SvmError::UnhandledExit {
                cause,
                state: self.describe_state(),
            }),
        }
    }

    /// An exit for the core, unless it is an EFER access (answered here).
    fn core_exit(
        &mut self,
        reason: AxVCpuExitReason,
        resume: Option<Resume>,
    ) -> Option<AxVCpuExitReason> {
        match reason {
            AxVCpuExitReason::SysRegRead { addr: MSR_EFER } => {
                let efer = self.vmcb().save.efer & !EFER_SVME;
                let mut gprs = self.full_gprs();
                ReadTarget::MsrRead.apply(&mut gprs, efer);
                self.set_full_gprs(gprs);
                self.resume = resume;
                return None;
            }
            AxVCpuExitReason::SysRegWrite {
                addr: MSR_EFER,
                value,
            } => {
                self.write_efer(value, resume);
                return None;
            }
            AxVCpuExitReason::SystemDown | AxVCpuExitReason::FailEntry { .. } => {
                self.stopped = Some(reason.kind());
            }
            _ => {}
        }
        self.resume = resume;
        self.pending_read = resume.and_then(|resume| resume.read_target);
        Some(reason)
    }

    /// WRMSR EFER: the guest's bits, with LMA kept (the processor's to change) and SVME
    /// kept set (`VMRUN` needs it); a reserved bit gives the guest #GP, as hardware would.
    fn write_efer(&mut self, value: u64, resume: Option<Resume>) {
        let vmcb = self.vmcb_mut();
        if value & !(EFER_GUEST_WRITABLE | EFER_LMA) != 0 {
            // The instruction faults: RIP stays at the WRMSR.
            vmcb.control.event_inj = EVENT_GP0;
            vmcb.control.event_inj_err = 0;
            return;
        }
        vmcb.save.efer = (value & EFER_GUEST_WRITABLE) | (vmcb.save.efer & EFER_LMA) | EFER_SVME;
        self.resume = resume;
    }

    fn answer_cpuid(&mut self, leaf: u32, subleaf: u32, next_rip: u64) {
        let apic_id = u32::try_from(self.id).unwrap_or(u32::MAX);
        let cr4 = self.vmcb().save.cr4;
        let answer = cpuid::answer_cpuid(leaf, subleaf, apic_id, cr4, crate::cpu::cpuid);
        let mut gprs = self.full_gprs();
        for (register, value) in [0, 3, 1, 2].into_iter().zip(answer) {
            // CPUID writes EAX/EBX/ECX/EDX, clearing bits 32-63.
            gprs[register] = u64::from(value);
        }
        self.set_full_gprs(gprs);
        self.resume = Some(Resume {
            next_rip,
            read_target: None,
        });
    }

    /// Reads the instruction at the guest's RIP into `info` (no decode assists).
    fn fetch_instruction_bytes(&self, info: &mut ExitInfo) -> Result<(), SvmError> {
        let bytes = guest_paging::fetch_instruction(
            &self.guest_reader(),
            &self.paging_regs(),
            self.rip_linear(),
        )
        .map_err(|cause| SvmError::InstructionFetch {
            gpa: info.info2,
            cause,
            state: self.describe_state(),
        })?;
        let bytes = bytes.as_slice();
        info.insn_bytes[..bytes.len()].copy_from_slice(bytes);
        info.insn_len = bytes.len() as u8;
        Ok(())
    }
}

/// An event whose delivery the exit interrupted (EXITINTINFO valid) is delivered again on
/// the next entry, as the APM asks; otherwise nothing is injected.
fn requeue_interrupted_event(control: &mut VmcbControlArea) {
    if control.exit_int_info & EVENT_VALID != 0 {
        control.event_inj = control.exit_int_info;
        control.event_inj_err = control.exit_int_info_err;
    } else {
        control.event_inj = 0;
    }
}

/// Whether an NPF exit needs the instruction's bytes and the VMCB does not hold them: an
/// MMIO access (not present) is emulated, a write to read-only memory skipped.
fn needs_instruction_bytes(info: &ExitInfo) -> bool {
    const PRESENT: u64 = 1 << 0;
    const WRITE: u64 = 1 << 1;
    const FETCH: u64 = 1 << 4;
    let access = info.info1;
    info.insn_len == 0 && access & FETCH == 0 && (access & PRESENT == 0 || access & WRITE != 0)
}

impl<M: HostMemory + Send> AxArchVCpu for SvmVCpu<M> {
    type SetupConfig = SvmBoot;
    type Error = SvmError;

    fn set_entry(&mut self, entry: GuestPhysAddr) -> Result<(), SvmError> {
        self.entry = entry;
        self.boot_applied = false;
        Ok(())
    }

    fn setup(&mut self, config: SvmBoot) -> Result<(), SvmError> {
        self.boot = config;
        self.boot_applied = false;
        self.stopped = None;
        self.resume = None;
        self.pending_write = None;
        self.waiting_for_sipi = config.start == StartPolicy::WaitForSipi;
        Ok(())
    }

    /// Runs the guest until an exit for the caller. Host interrupts exit the guest only
    /// when the caller's RFLAGS.IF is set (V_INTR_MASKING: the host's IF masks physical
    /// interrupts in the guest); they are then taken by the host's IDT inside this call,
    /// and the exit is [`AxVCpuExitReason::Interrupted`].
    fn run(&mut self) -> Result<AxVCpuExitReason, SvmError> {
        self.apply_boot_if_needed();
        if self.waiting_for_sipi {
            return Err(SvmError::WaitingForSipi { vcpu: self.id });
        }
        if let Some(kind) = self.stopped {
            return Err(SvmError::Stopped {
                vcpu: self.id,
                kind,
            });
        }
        self.pending_read = None;
        if let Some(write) = self.pending_write.take() {
            return Ok(write);
        }
        loop {
            self.prepare_entry();
            let info = self.enter_guest();
            self.last_exit = Some(info);
            if let Some(reason) = self.handle_exit(info)? {
                return Ok(reason);
            }
        }
    }

    fn set_read_result(&mut self, value: u64) -> Result<(), SvmError> {
        let target = self
            .pending_read
            .take()
            .ok_or(SvmError::NoPendingRead { vcpu: self.id })?;
        let mut gprs = self.full_gprs();
        target.apply(&mut gprs, value);
        self.set_full_gprs(gprs);
        let save = &mut self.vmcb_mut().save;
        save.rflags = target.flags_after(save.rflags, &gprs, value);
        self.pending_write = target.write_back(value);
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, value: u64) -> Result<(), SvmError> {
        let mut gprs = self.full_gprs();
        let slot = gprs
            .get_mut(reg)
            .ok_or(SvmError::NoSuchRegister { vcpu: self.id, reg })?;
        *slot = value;
        self.set_full_gprs(gprs);
        Ok(())
    }

    fn instruction_pointer(&mut self) -> Option<InstructionPointer> {
        let linear = self.rip_linear();
        let physical =
            guest_paging::linear_to_phys(&self.guest_reader(), &self.paging_regs(), linear)
                .ok()
                .map(GuestPhysAddr::new);
        Some(InstructionPointer {
            rip: self.vmcb().save.rip,
            linear,
            physical,
            bitness: self.vmcb().guest_code_bitness(),
        })
    }
}

/// Guest-physical reads through the VM's nested page tables.
struct NptReader<'a, M> {
    memory: &'a M,
    npt: &'a NestedPageTables,
}

impl<M: HostMemory> GuestPhysReader for NptReader<'_, M> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        read_guest_phys(self.memory, self.npt, gpa, buf)
    }
}
