//! [`KvmVCpu`]: a KVM vCPU as axvm's [`AxArchVCpu`].

use std::sync::Arc;

use axvm::device::DeviceSpace;
use axvm::vcpu::AxArchVCpu;
use axvm::{AccessWidth, AxVCpuExitReason, GuestPhysAddr, InstructionPointer, MappingFlags};
use kvm_bindings::{
    kvm_mp_state, kvm_run, KVM_EXIT_IO_IN, KVM_MP_STATE_HALTED, KVM_MP_STATE_INIT_RECEIVED,
    KVM_MP_STATE_RUNNABLE, KVM_MP_STATE_UNINITIALIZED,
};
use kvm_ioctls::{VcpuExit, VcpuFd};

use super::debug::{DebugStop, GuestDebug};
use super::internal_error::internal_error_report;
use super::regs::{reset_fpu, set_boot_state, StartPolicy, VCpuBoot};
use crate::error::KvmError;

/// A read exit waiting for its value, and where KVM wants it.
#[derive(Clone, Copy, Debug)]
enum PendingRead {
    /// Byte offset of the I/O data inside the `kvm_run` page.
    Io {
        data_offset: usize,
        size: usize,
    },
    Mmio {
        size: usize,
    },
    Msr,
}

/// A port access of a string instruction (`REP INSB` and friends): KVM reports all its
/// elements in one exit, axvm hands them to the devices one by one.
#[derive(Clone, Copy, Debug)]
struct StringIo {
    port: u16,
    width: AccessWidth,
    is_in: bool,
    data_offset: usize,
    count: usize,
    /// The element being handled.
    index: usize,
}

impl StringIo {
    fn element_offset(&self) -> usize {
        self.data_offset + self.index * self.width.size()
    }
}

/// A vCPU backed by a KVM vCPU file descriptor.
pub struct KvmVCpu {
    id: usize,
    pub(super) fd: VcpuFd,
    entry: GuestPhysAddr,
    boot: VCpuBoot,
    pub(super) boot_state_applied: bool,
    irqchip: bool,
    /// Size of the `kvm_run` mapping, which holds port I/O data after the first page.
    run_size: usize,
    /// Guest-physical ranges mapped read-only: a write there is a nested page fault.
    read_only: Arc<Vec<(u64, u64)>>,
    io: Option<StringIo>,
    pending_read: Option<PendingRead>,
    /// What the debugger armed (`set_guest_debug`).
    pub(super) debug: GuestDebug,
    /// Why the vCPU last stopped for the debugger, until taken.
    pub(super) debug_stop: Option<DebugStop>,
    /// A write to a watched port, reported once the write is done.
    watched_write: Option<DebugStop>,
}

impl KvmVCpu {
    pub(crate) fn new(
        id: usize,
        fd: VcpuFd,
        irqchip: bool,
        run_size: usize,
        read_only: Arc<Vec<(u64, u64)>>,
    ) -> Self {
        Self {
            id,
            fd,
            run_size,
            entry: GuestPhysAddr::default(),
            boot: VCpuBoot::default(),
            boot_state_applied: false,
            irqchip,
            read_only,
            io: None,
            pending_read: None,
            debug: GuestDebug::default(),
            debug_stop: None,
            watched_write: None,
        }
    }

    /// The vCPU id.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The KVM vCPU, for host code that needs registers (diagnostics).
    pub fn fd(&self) -> &VcpuFd {
        &self.fd
    }

    pub(super) fn apply_boot_state(&mut self) -> Result<(), KvmError> {
        let mut sregs = self
            .fd
            .get_sregs()
            .map_err(KvmError::ioctl("KVM_GET_SREGS"))?;
        let mut regs = Default::default();
        set_boot_state(&self.boot, self.entry, &mut sregs, &mut regs);
        self.fd
            .set_sregs(&sregs)
            .map_err(KvmError::ioctl("KVM_SET_SREGS"))?;
        self.fd
            .set_regs(&regs)
            .map_err(KvmError::ioctl("KVM_SET_REGS"))?;
        self.fd
            .set_fpu(&reset_fpu())
            .map_err(KvmError::ioctl("KVM_SET_FPU"))?;
        if self.irqchip && self.boot.start == StartPolicy::AtBoot {
            // With an in-kernel local APIC, KVM holds APs until INIT-SIPI; a direct start
            // makes them runnable at their entry now.
            let runnable = kvm_mp_state {
                mp_state: KVM_MP_STATE_RUNNABLE,
            };
            self.fd
                .set_mp_state(runnable)
                .map_err(KvmError::ioctl("KVM_SET_MP_STATE"))?;
        }
        self.boot_state_applied = true;
        Ok(())
    }

    fn is_read_only(&self, gpa: u64) -> bool {
        self.read_only
            .iter()
            .any(|&(start, end)| start <= gpa && gpa < end)
    }

    fn kvm_run(&mut self) -> &mut kvm_run {
        self.fd.get_kvm_run()
    }

    /// What KVM said with the `KVM_EXIT_INTERNAL_ERROR` that just happened, in words.
    fn internal_error(&mut self) -> KvmError {
        // SAFETY: the last exit was KVM_EXIT_INTERNAL_ERROR, so `internal` is the active
        // member.
        let internal = unsafe { self.kvm_run().__bindgen_anon_1.internal };
        let ndata = (internal.ndata as usize).min(internal.data.len());
        let (regs, sregs) = (self.fd.get_regs().ok(), self.fd.get_sregs().ok());
        KvmError::Internal {
            suberror: internal.suberror,
            report: internal_error_report(
                internal.suberror,
                &internal.data[..ndata],
                regs.as_ref(),
                sregs.as_ref(),
            ),
        }
    }

    /// A `KVM_EXIT_INTERNAL_ERROR` is a failure, unless the vCPU sits on a debugger's
    /// `int3` (kvm_pvm's emulator cannot run one: see [`super::debug`]).
    fn internal_error_or_breakpoint(&mut self) -> Result<AxVCpuExitReason, KvmError> {
        if self.at_debugger_breakpoint() {
            self.debug_stop = Some(DebugStop::SoftwareBreakpoint);
            return Ok(AxVCpuExitReason::Debug);
        }
        Err(self.internal_error())
    }

    /// The next element of a string I/O instruction, if one is left.
    fn next_string_element(&mut self) -> Option<AxVCpuExitReason> {
        let io = self.io.as_mut()?;
        io.index += 1;
        if io.index >= io.count {
            self.io = None;
            return None;
        }
        let io = *io;
        Some(self.io_exit(io))
    }

    fn io_exit(&mut self, io: StringIo) -> AxVCpuExitReason {
        let offset = io.element_offset();
        if io.is_in {
            self.pending_read = Some(PendingRead::Io {
                data_offset: offset,
                size: io.width.size(),
            });
            AxVCpuExitReason::IoRead {
                port: io.port,
                width: io.width,
            }
        } else {
            let data = read_le(&self.kvm_run_bytes()[offset..offset + io.width.size()]);
            if self.port_is_watched(io.port) {
                self.watched_write = Some(DebugStop::PortWrite {
                    port: io.port,
                    data,
                });
            }
            AxVCpuExitReason::IoWrite {
                port: io.port,
                width: io.width,
                data,
            }
        }
    }

    fn kvm_run_bytes(&mut self) -> &mut [u8] {
        let start = self.fd.get_kvm_run() as *mut kvm_run as *mut u8;
        // SAFETY: the kvm_run mapping is `run_size` bytes long (KVM_GET_VCPU_MMAP_SIZE) and
        // lives as long as the vCPU fd.
        unsafe { std::slice::from_raw_parts_mut(start, self.run_size) }
    }

    /// Starts tracking a port exit just reported by KVM.
    fn begin_io(&mut self) -> Result<AxVCpuExitReason, KvmError> {
        // SAFETY: exit_reason is KVM_EXIT_IO, so `io` is the active union member.
        let io = unsafe { self.kvm_run().__bindgen_anon_1.io };
        let width = AccessWidth::from_size(usize::from(io.size))
            .ok_or(KvmError::PortAccessSize { size: io.size })?;
        let data_offset = io.data_offset as usize;
        let count = io.count as usize;
        let end = data_offset + count * width.size();
        if count == 0 || end > self.run_size {
            return Err(KvmError::PortDataOutside {
                count,
                width,
                data_offset,
            });
        }
        let string_io = StringIo {
            port: io.port,
            width,
            is_in: u32::from(io.direction) == KVM_EXIT_IO_IN,
            data_offset,
            count,
            index: 0,
        };
        self.io = Some(string_io);
        Ok(self.io_exit(string_io))
    }

    fn translate(&mut self, exit: Exit) -> Result<AxVCpuExitReason, KvmError> {
        Ok(match exit {
            Exit::Io => return self.begin_io(),
            Exit::MmioRead { addr, size } => {
                self.pending_read = Some(PendingRead::Mmio { size });
                AxVCpuExitReason::MmioRead {
                    addr: GuestPhysAddr::new(addr),
                    width: mmio_width(addr, size)?,
                }
            }
            Exit::MmioWrite { addr, size, data } if self.is_read_only(addr) => {
                let _ = (size, data);
                AxVCpuExitReason::NestedPageFault {
                    addr: GuestPhysAddr::new(addr),
                    access_flags: MappingFlags::WRITE,
                }
            }
            Exit::MmioWrite { addr, size, data } => AxVCpuExitReason::MmioWrite {
                addr: GuestPhysAddr::new(addr),
                width: mmio_width(addr, size)?,
                data,
            },
            Exit::Rdmsr { index } => {
                self.pending_read = Some(PendingRead::Msr);
                AxVCpuExitReason::SysRegRead { addr: index }
            }
            Exit::Wrmsr { index, data } => AxVCpuExitReason::SysRegWrite {
                addr: index,
                value: data,
            },
            Exit::Debug { exception, pc, dr6 } => {
                let stop = match DebugStop::from_exit(exception, dr6) {
                    DebugStop::GuestBreakpoint if self.debug.sw_breakpoints.contains(&pc) => {
                        DebugStop::SoftwareBreakpoint
                    }
                    stop => stop,
                };
                self.debug_stop = Some(stop);
                AxVCpuExitReason::Debug
            }
            Exit::Reason(reason) => reason,
        })
    }

    /// Reports a write to a watched port, once KVM has finished it: `KVM_RUN` with
    /// `immediate_exit` completes a pending port access (RIP moves past the `OUT`) and
    /// returns at once, so the debugger sees the vCPU after the instruction.
    fn report_watched_write(&mut self, stop: DebugStop) -> Result<AxVCpuExitReason, KvmError> {
        self.fd.set_kvm_immediate_exit(1);
        let result = self.fd.run().map(classify);
        self.fd.set_kvm_immediate_exit(0);
        match result {
            Err(err) if err.errno() == libc::EINTR || err.errno() == libc::EAGAIN => {
                self.debug_stop = Some(stop);
                Ok(AxVCpuExitReason::Debug)
            }
            // The completion led to another exit: handle it, report the write after it.
            Ok(exit) => {
                self.watched_write = Some(stop);
                self.translate(exit)
            }
            Err(errno) => Err(KvmError::Run { errno }),
        }
    }
}

/// What KVM reported, copied out of the `kvm_run` page so that its borrow ends.
enum Exit {
    Io,
    MmioRead { addr: u64, size: usize },
    MmioWrite { addr: u64, size: usize, data: u64 },
    Rdmsr { index: u32 },
    Wrmsr { index: u32, data: u64 },
    Debug { exception: u32, pc: u64, dr6: u64 },
    Reason(AxVCpuExitReason),
}

fn classify(exit: VcpuExit<'_>) -> Exit {
    use AxVCpuExitReason as R;
    match exit {
        VcpuExit::IoIn(..) | VcpuExit::IoOut(..) => Exit::Io,
        VcpuExit::MmioRead(addr, data) => Exit::MmioRead {
            addr,
            size: data.len(),
        },
        VcpuExit::MmioWrite(addr, data) => Exit::MmioWrite {
            addr,
            size: data.len(),
            data: read_le(data),
        },
        VcpuExit::X86Rdmsr(msr) => {
            *msr.error = 0;
            Exit::Rdmsr { index: msr.index }
        }
        VcpuExit::X86Wrmsr(msr) => {
            *msr.error = 0;
            Exit::Wrmsr {
                index: msr.index,
                data: msr.data,
            }
        }
        VcpuExit::Debug(arch) => Exit::Debug {
            exception: arch.exception,
            pc: arch.pc,
            dr6: arch.dr6,
        },
        VcpuExit::Hlt => Exit::Reason(R::Halt),
        VcpuExit::Shutdown | VcpuExit::SystemEvent(..) => Exit::Reason(R::SystemDown),
        VcpuExit::Intr | VcpuExit::IrqWindowOpen => Exit::Reason(R::Interrupted),
        VcpuExit::FailEntry(reason, _cpu) => Exit::Reason(R::FailEntry {
            hardware_entry_failure_reason: reason,
        }),
        VcpuExit::InternalError => Exit::Reason(R::InternalError {
            code: u64::from(kvm_bindings::KVM_EXIT_INTERNAL_ERROR),
        }),
        other => Exit::Reason(R::InternalError {
            code: exit_code(&other),
        }),
    }
}

/// A stable number for exits axvm does not expect, for the message.
fn exit_code(exit: &VcpuExit<'_>) -> u64 {
    match exit {
        VcpuExit::Exception => u64::from(kvm_bindings::KVM_EXIT_EXCEPTION),
        VcpuExit::Hypercall(_) => u64::from(kvm_bindings::KVM_EXIT_HYPERCALL),
        VcpuExit::Debug(_) => u64::from(kvm_bindings::KVM_EXIT_DEBUG),
        VcpuExit::Unknown => u64::from(kvm_bindings::KVM_EXIT_UNKNOWN),
        VcpuExit::Unsupported(code) => u64::from(*code),
        _ => u64::MAX,
    }
}

fn mmio_width(addr: u64, size: usize) -> Result<AccessWidth, KvmError> {
    AccessWidth::from_size(size).ok_or(KvmError::MmioAccessSize { addr, size })
}

fn read_le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .rev()
        .fold(0, |value, &byte| value << 8 | u64::from(byte))
}

impl KvmVCpu {
    /// What a kicked vCPU was doing: `Halt` when it waits for something only another vCPU
    /// could send (halted with interrupts off, or an AP waiting for INIT-SIPI), so that the
    /// host can tell a VM that will never run again; `Interrupted` otherwise.
    ///
    /// With KVM's in-kernel local APIC, `HLT` never exits to user space; this is how axvm
    /// sees it.
    fn interrupted(&mut self) -> Result<AxVCpuExitReason, KvmError> {
        let state = self
            .fd
            .get_mp_state()
            .map_err(KvmError::ioctl("KVM_GET_MP_STATE"))?;
        let stuck = match state.mp_state {
            KVM_MP_STATE_HALTED => {
                let regs = self
                    .fd
                    .get_regs()
                    .map_err(KvmError::ioctl("KVM_GET_REGS"))?;
                regs.rflags & RFLAGS_IF == 0
            }
            KVM_MP_STATE_UNINITIALIZED | KVM_MP_STATE_INIT_RECEIVED => true,
            _ => false,
        };
        Ok(if stuck {
            AxVCpuExitReason::Halt
        } else {
            AxVCpuExitReason::Interrupted
        })
    }
}

/// RFLAGS.IF: maskable interrupts enabled.
const RFLAGS_IF: u64 = 1 << 9;
/// CR0.PE: protected mode.
const CR0_PE: u64 = 1 << 0;
/// CR0.PG: paging.
const CR0_PG: u64 = 1 << 31;
/// EFER.LMA: long mode active.
const EFER_LMA: u64 = 1 << 10;

impl AxArchVCpu for KvmVCpu {
    type SetupConfig = VCpuBoot;
    type Error = KvmError;

    fn set_entry(&mut self, entry: GuestPhysAddr) -> Result<(), KvmError> {
        self.entry = entry;
        self.boot_state_applied = false;
        Ok(())
    }

    fn setup(&mut self, boot: VCpuBoot) -> Result<(), KvmError> {
        self.boot = boot;
        self.boot_state_applied = false;
        Ok(())
    }

    fn run(&mut self) -> Result<AxVCpuExitReason, KvmError> {
        if let Some(next) = self.next_string_element() {
            return Ok(next);
        }
        if !self.boot_state_applied {
            self.apply_boot_state()?;
        }
        self.pending_read = None;
        if let Some(stop) = self.watched_write.take() {
            return self.report_watched_write(stop);
        }
        let exit = match self.fd.run() {
            Ok(VcpuExit::InternalError) => return self.internal_error_or_breakpoint(),
            Ok(exit) => classify(exit),
            Err(err) if err.errno() == libc::EINTR || err.errno() == libc::EAGAIN => {
                self.fd.set_kvm_immediate_exit(0);
                return self.interrupted();
            }
            Err(errno) => return Err(KvmError::Run { errno }),
        };
        self.translate(exit)
    }

    fn set_read_result(&mut self, value: u64) -> Result<(), KvmError> {
        let pending = self.pending_read.take().ok_or(KvmError::NoPendingRead)?;
        let bytes = value.to_le_bytes();
        match pending {
            PendingRead::Io { data_offset, size } => {
                self.kvm_run_bytes()[data_offset..data_offset + size]
                    .copy_from_slice(&bytes[..size]);
            }
            PendingRead::Mmio { size } => {
                // SAFETY: the last exit was KVM_EXIT_MMIO, so `mmio` is the active member.
                let mmio = unsafe { &mut self.kvm_run().__bindgen_anon_1.mmio };
                mmio.data[..size].copy_from_slice(&bytes[..size]);
            }
            PendingRead::Msr => {
                // SAFETY: the last exit was KVM_EXIT_X86_RDMSR, so `msr` is the active member.
                let msr = unsafe { &mut self.kvm_run().__bindgen_anon_1.msr };
                msr.data = value;
                msr.error = 0;
            }
        }
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, value: u64) -> Result<(), KvmError> {
        let mut regs = self
            .fd
            .get_regs()
            .map_err(KvmError::ioctl("KVM_GET_REGS"))?;
        let slot = match reg {
            0 => &mut regs.rax,
            1 => &mut regs.rcx,
            2 => &mut regs.rdx,
            3 => &mut regs.rbx,
            4 => &mut regs.rsp,
            5 => &mut regs.rbp,
            6 => &mut regs.rsi,
            7 => &mut regs.rdi,
            8 => &mut regs.r8,
            9 => &mut regs.r9,
            10 => &mut regs.r10,
            11 => &mut regs.r11,
            12 => &mut regs.r12,
            13 => &mut regs.r13,
            14 => &mut regs.r14,
            15 => &mut regs.r15,
            _ => return Err(KvmError::NoSuchRegister { reg }),
        };
        *slot = value;
        self.fd
            .set_regs(&regs)
            .map_err(KvmError::ioctl("KVM_SET_REGS"))
    }

    /// KVM finishes an MMIO write before it exits (its emulator has done the instruction);
    /// kvm_pvm also a port write. Reads wait for their value, at the instruction.
    fn ip_past_access(&self, space: DeviceSpace, write: bool) -> bool {
        match space {
            DeviceSpace::Mmio => write,
            DeviceSpace::Port => write && super::system::is_software_nested_kvm(),
            DeviceSpace::SysReg => false,
        }
    }

    fn instruction_pointer(&mut self) -> Option<InstructionPointer> {
        let regs = self.fd.get_regs().ok()?;
        let sregs = self.fd.get_sregs().ok()?;
        let bitness = if sregs.cs.l == 1 && sregs.efer & EFER_LMA != 0 {
            64
        } else if sregs.cr0 & CR0_PE != 0 && sregs.cs.db == 1 {
            32
        } else {
            16
        };
        let linear = sregs.cs.base.wrapping_add(regs.rip);
        let physical = if sregs.cr0 & CR0_PG == 0 {
            Some(linear)
        } else {
            self.fd
                .translate_gva(linear)
                .ok()
                .filter(|t| t.valid != 0)
                .map(|t| t.physical_address)
        };
        Some(InstructionPointer {
            rip: regs.rip,
            linear,
            physical: physical.map(GuestPhysAddr::new),
            bitness,
        })
    }
}
