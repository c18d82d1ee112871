//! [`Arm64VCpu`]: the core's `AxArchVCpu` on an arm64 KVM vCPU.
//!
//! KVM takes the guest's data aborts on device memory, decodes their syndrome (ESR_EL2:
//! access width, sign extension, target register) and exits with `KVM_EXIT_MMIO`; the core
//! routes the access to a device, and the value read goes back into `kvm_run`, from which
//! KVM completes the load (sign-extending it when the instruction asked). PSCI calls, WFI and
//! the arch timer are handled in the kernel; `SYSTEM_OFF` and `SYSTEM_RESET` come back as
//! `KVM_EXIT_SYSTEM_EVENT`.

use axvm::InstructionPointer;
use axvm::{AccessWidth, AxArchVCpu, AxVCpuExitReason, GuestPhysAddr};
use kvm_bindings::{KVM_SYSTEM_EVENT_RESET, KVM_SYSTEM_EVENT_SHUTDOWN};
use kvm_ioctls::{VcpuExit, VcpuFd};

use super::regs;
use crate::error::Arm64Error;

/// How a vCPU starts, besides its entry address: the arm64 Linux boot protocol's registers.
///
/// ```
/// use axvm_kvm_arm64::VCpuStart;
/// let start = VCpuStart { x0: 0x4800_0000 };
/// assert_eq!(start.x0, 0x4800_0000);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VCpuStart {
    /// x0: the device tree's guest-physical address (x1..x3 are 0).
    pub x0: u64,
}

/// What the guest asked of the machine when it left with a system event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SystemEvent {
    /// PSCI `SYSTEM_OFF`.
    Off,
    /// PSCI `SYSTEM_RESET`.
    Reset,
    /// Any other event KVM reports (a crash, a wake-up), with its type.
    Other(u32),
}

/// One arm64 KVM vCPU, as the axvm core drives it.
pub struct Arm64VCpu {
    id: usize,
    fd: VcpuFd,
    /// The size of the MMIO read the last exit asked for, until it is answered.
    pending_read: Option<usize>,
    /// The last system event, for the VMM to tell an off from a reset.
    last_event: Option<SystemEvent>,
}

impl Arm64VCpu {
    pub(crate) fn new(id: usize, fd: VcpuFd) -> Self {
        Self {
            id,
            fd,
            pending_read: None,
            last_event: None,
        }
    }

    /// The vCPU's index.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The system event that ended the guest's run, if one did.
    pub(crate) fn last_event(&self) -> Option<SystemEvent> {
        self.last_event
    }

    /// Reads a 64-bit register by its `KVM_GET_ONE_REG` id.
    fn get(&self, id: u64, name: &'static str) -> Result<u64, Arm64Error> {
        let mut bytes = [0u8; 8];
        self.fd
            .get_one_reg(id, &mut bytes)
            .map_err(Arm64Error::ioctl(name))?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn set(&self, id: u64, value: u64, name: &'static str) -> Result<(), Arm64Error> {
        self.fd
            .set_one_reg(id, &value.to_le_bytes())
            .map(drop)
            .map_err(Arm64Error::ioctl(name))
    }

    /// The vCPU's MPIDR_EL1 (its affinity, which PSCI `CPU_ON` and the device tree name).
    pub fn mpidr(&self) -> Result<u64, Arm64Error> {
        self.get(regs::MPIDR_EL1, "KVM_GET_ONE_REG (MPIDR_EL1)")
    }

    /// The program counter, x0..x30, SP_EL1 and PSTATE, for reports.
    pub fn registers(&self) -> Result<Vec<(String, u64)>, Arm64Error> {
        let mut all = vec![
            (
                "pc".to_string(),
                self.get(regs::PC, "KVM_GET_ONE_REG (PC)")?,
            ),
            (
                "pstate".to_string(),
                self.get(regs::PSTATE, "KVM_GET_ONE_REG (PSTATE)")?,
            ),
            (
                "sp_el1".to_string(),
                self.get(regs::SP_EL1, "KVM_GET_ONE_REG (SP_EL1)")?,
            ),
            (
                "sp_el0".to_string(),
                self.get(regs::SP_EL0, "KVM_GET_ONE_REG (SP_EL0)")?,
            ),
        ];
        for n in 0..31 {
            all.push((
                format!("x{n}"),
                self.get(regs::x(n), "KVM_GET_ONE_REG (x)")?,
            ));
        }
        Ok(all)
    }

    fn translate(&mut self) -> Result<AxVCpuExitReason, Arm64Error> {
        let id = self.id;
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            Err(errno) if errno.errno() == libc::EINTR || errno.errno() == libc::EAGAIN => {
                // A kick: the signal set immediate_exit, which must not stay set.
                self.fd.set_kvm_immediate_exit(0);
                return Ok(AxVCpuExitReason::Interrupted);
            }
            Err(errno) => return Err(Arm64Error::ioctl("KVM_RUN")(errno)),
        };
        Ok(match exit {
            VcpuExit::MmioRead(addr, data) => {
                let size = data.len();
                let width = mmio_width(id, addr, size)?;
                self.pending_read = Some(size);
                AxVCpuExitReason::MmioRead {
                    addr: GuestPhysAddr::new(addr),
                    width,
                }
            }
            VcpuExit::MmioWrite(addr, data) => AxVCpuExitReason::MmioWrite {
                addr: GuestPhysAddr::new(addr),
                width: mmio_width(id, addr, data.len())?,
                data: read_le(data),
            },
            VcpuExit::SystemEvent(kind, _) => {
                self.last_event = Some(match kind {
                    KVM_SYSTEM_EVENT_SHUTDOWN => SystemEvent::Off,
                    KVM_SYSTEM_EVENT_RESET => SystemEvent::Reset,
                    other => SystemEvent::Other(other),
                });
                AxVCpuExitReason::SystemDown
            }
            VcpuExit::Intr => AxVCpuExitReason::Interrupted,
            VcpuExit::Debug(_) => AxVCpuExitReason::Debug,
            VcpuExit::FailEntry(reason, _) => AxVCpuExitReason::FailEntry {
                hardware_entry_failure_reason: reason,
            },
            VcpuExit::InternalError => AxVCpuExitReason::InternalError {
                code: u64::from(kvm_bindings::KVM_EXIT_INTERNAL_ERROR),
            },
            VcpuExit::Unsupported(code) => AxVCpuExitReason::InternalError {
                code: u64::from(code),
            },
            _ => AxVCpuExitReason::InternalError {
                code: u64::from(kvm_bindings::KVM_EXIT_UNKNOWN),
            },
        })
    }
}

/// The core's width for an MMIO access of `size` bytes; KVM reports 1, 2, 4 or 8.
fn mmio_width(vcpu: usize, addr: u64, size: usize) -> Result<AccessWidth, Arm64Error> {
    AccessWidth::from_size(size).ok_or_else(|| {
        Arm64Error::Boot(format!(
            "vCPU {vcpu}: KVM reported an MMIO access of {size} bytes at {addr:#x}; axvm handles 1, 2, 4 and 8"
        ))
    })
}

fn read_le(bytes: &[u8]) -> u64 {
    let mut buffer = [0u8; 8];
    let len = bytes.len().min(8);
    buffer[..len].copy_from_slice(&bytes[..len]);
    u64::from_le_bytes(buffer)
}

impl AxArchVCpu for Arm64VCpu {
    type SetupConfig = VCpuStart;
    type Error = Arm64Error;

    fn set_entry(&mut self, entry: GuestPhysAddr) -> Result<(), Arm64Error> {
        self.set(regs::PC, entry.as_u64(), "KVM_SET_ONE_REG (PC)")
    }

    fn setup(&mut self, start: VCpuStart) -> Result<(), Arm64Error> {
        self.set(regs::x(0), start.x0, "KVM_SET_ONE_REG (x0)")?;
        for n in 1..4 {
            self.set(regs::x(n), 0, "KVM_SET_ONE_REG (x1..x3)")?;
        }
        Ok(())
    }

    fn run(&mut self) -> Result<AxVCpuExitReason, Arm64Error> {
        self.translate()
    }

    fn set_read_result(&mut self, value: u64) -> Result<(), Arm64Error> {
        let Some(size) = self.pending_read.take() else {
            return Ok(());
        };
        let bytes = value.to_le_bytes();
        // SAFETY: the last exit was KVM_EXIT_MMIO, so `mmio` is the active member of the
        // union; KVM reads `data` back when the vCPU runs again.
        let mmio = unsafe { &mut self.fd.get_kvm_run().__bindgen_anon_1.mmio };
        mmio.data[..size].copy_from_slice(&bytes[..size]);
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, value: u64) -> Result<(), Arm64Error> {
        if reg > 30 {
            return Err(Arm64Error::Boot(format!(
                "vCPU {}: there is no general-purpose register x{reg} (x0..x30)",
                self.id
            )));
        }
        self.set(regs::x(reg), value, "KVM_SET_ONE_REG (x)")
    }

    fn instruction_pointer(&mut self) -> Option<InstructionPointer> {
        let pc = self.get(regs::PC, "KVM_GET_ONE_REG (PC)").ok()?;
        let sctlr = self
            .get(regs::SCTLR_EL1, "KVM_GET_ONE_REG (SCTLR_EL1)")
            .ok()?;
        // The core's names are x86's: `rip` is the PC. With the stage-1 MMU off the PC is a
        // guest-physical address; with it on, this host does not walk the guest's tables.
        let mmu_on = sctlr & 1 != 0;
        Some(InstructionPointer {
            rip: pc,
            linear: pc,
            physical: (!mmu_on).then(|| GuestPhysAddr::new(pc)),
            bitness: 64,
        })
    }
}
