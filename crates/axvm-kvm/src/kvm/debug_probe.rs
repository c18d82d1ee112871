//! Which guest-debug stops this host's KVM really delivers, found by running them once in a
//! throw-away VM.
//!
//! `KVM_SET_GUEST_DEBUG` succeeds on every KVM, yet a nested KVM only sees what its own
//! hypervisor lets through. Under QEMU's TCG emulation of AMD SVM (the kvm-amd harness's
//! L1) the guest's `int3` is delivered through the guest's own IDT without checking the
//! `#BP` intercept KVM asked for, and before QEMU 9.1 a VMRUN loads the VMCB's DR7 without
//! arming it, so DR0-DR3 never match. A debugger relying on them would wait forever, or
//! let the guest take its own `int3` and die. The GDB stub refuses what the probe shows
//! does not stop, so that GDB says so at once.
//!
//! The probe VM: one page of real-mode code, no irqchip (so `hlt` exits to user space),
//! its `#BP` vector pointing at a `hlt`. A stop arrives as `KVM_EXIT_DEBUG`; a stop that
//! never comes ends in one of the `hlt`s instead. Nothing is timed.

use kvm_bindings::{
    kvm_guest_debug, kvm_userspace_memory_region, KVM_GUESTDBG_ENABLE, KVM_GUESTDBG_USE_HW_BP,
    KVM_GUESTDBG_USE_SW_BP,
};
use kvm_ioctls::{Kvm, VcpuExit, VcpuFd, VmFd};
use vm_memory::MmapRegion;

/// What guest-debug stops this host delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugSupport {
    /// The guest's `int3` stops it as `KVM_EXIT_DEBUG` (GDB's `break`).
    pub int3_stops: bool,
    /// A DR0-DR3 execute breakpoint stops it (GDB's `hbreak`).
    pub execute_breakpoints: bool,
    /// A DR0-DR3 write watchpoint stops it (GDB's `watch`).
    pub write_watchpoints: bool,
}

/// The probe's one page of guest memory.
const PAGE: usize = 0x1000;
/// Real-mode vector 3 (`#BP`) in the interrupt vector table at 0.
const BP_VECTOR_ENTRY: usize = 3 * 4;
/// Where vector 3 points: a `hlt` (the guest took its own `int3`).
const BP_HANDLER: usize = 0x100;
/// `int3; hlt`.
const INT3_AT: usize = 0x200;
/// `nop; mov [WATCHED], al; hlt`.
const CODE_AT: usize = 0x300;
/// The byte the write watchpoint watches.
const WATCHED: usize = 0x400;
/// The real-mode stack's top.
const STACK_TOP: u64 = 0x800;
const HLT: u8 = 0xf4;
/// DR7: L0, and the reserved bit 10 that reads as 1.
const DR7_L0: u64 = 1 | 1 << 10;
/// DR7 R/W0 = 01 (data writes), LEN0 = 00 (one byte).
const DR7_RW0_WRITE: u64 = 0b01 << 16;
/// A stop needs at most this many exits; anything else is a probe gone wrong.
const MAX_EXITS: usize = 8;

/// How a probe run ended.
#[derive(Debug, PartialEq, Eq)]
enum ProbeEnd {
    /// `KVM_EXIT_DEBUG` with this exception vector.
    Debug(u32),
    /// A `hlt`: the stop never came.
    Halted,
    /// Something else: the probe cannot tell.
    Other(String),
}

impl DebugSupport {
    /// Runs the probe VM on this host's `/dev/kvm`; why it could not run otherwise.
    pub fn probe() -> Result<Self, String> {
        let kvm = Kvm::new().map_err(|err| format!("/dev/kvm: {err}"))?;
        let vm = kvm
            .create_vm()
            .map_err(|err| format!("KVM_CREATE_VM: {err}"))?;
        let memory = probe_memory()?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            guest_phys_addr: 0,
            memory_size: PAGE as u64,
            userspace_addr: memory.as_ptr() as u64,
            flags: 0,
        };
        // SAFETY: `memory` maps PAGE bytes and outlives `vm`, which is dropped first.
        unsafe { vm.set_user_memory_region(region) }
            .map_err(|err| format!("KVM_SET_USER_MEMORY_REGION: {err}"))?;
        let int3 = run_probe(&vm, 0, INT3_AT, KVM_GUESTDBG_USE_SW_BP, [0; 4], 0)?;
        let execute = run_probe(
            &vm,
            1,
            CODE_AT,
            KVM_GUESTDBG_USE_HW_BP,
            [CODE_AT as u64, 0, 0, 0],
            DR7_L0,
        )?;
        let write = run_probe(
            &vm,
            2,
            CODE_AT,
            KVM_GUESTDBG_USE_HW_BP,
            [WATCHED as u64, 0, 0, 0],
            DR7_L0 | DR7_RW0_WRITE,
        )?;
        drop(vm);
        drop(memory);
        Ok(Self {
            int3_stops: int3 == ProbeEnd::Debug(3),
            execute_breakpoints: execute == ProbeEnd::Debug(1),
            write_watchpoints: write == ProbeEnd::Debug(1),
        })
    }
}

/// The probe's page: the `#BP` vector, its `hlt`, and the two code snippets.
fn probe_memory() -> Result<MmapRegion, String> {
    let memory = MmapRegion::new(PAGE).map_err(|err| format!("probe memory: {err}"))?;
    let mut page = [0u8; PAGE];
    // Vector 3: offset BP_HANDLER, segment 0.
    page[BP_VECTOR_ENTRY..BP_VECTOR_ENTRY + 2].copy_from_slice(&(BP_HANDLER as u16).to_le_bytes());
    page[BP_HANDLER] = HLT;
    page[INT3_AT..INT3_AT + 2].copy_from_slice(&[0xcc, HLT]);
    let watched = (WATCHED as u16).to_le_bytes();
    // nop; mov [WATCHED], al (A2 moffs16); hlt.
    page[CODE_AT..CODE_AT + 5].copy_from_slice(&[0x90, 0xa2, watched[0], watched[1], HLT]);
    // SAFETY: `memory` is a fresh private mapping of PAGE bytes nothing else uses yet.
    unsafe { std::ptr::copy_nonoverlapping(page.as_ptr(), memory.as_ptr(), PAGE) };
    Ok(memory)
}

/// Runs a fresh real-mode vCPU `id` from `rip` with guest debugging `use_flag` armed (DR0-DR3
/// `debugreg`, DR7 `dr7`), to its first debug stop or `hlt`.
fn run_probe(
    vm: &VmFd,
    id: u64,
    rip: usize,
    use_flag: u32,
    debugreg: [u64; 4],
    dr7: u64,
) -> Result<ProbeEnd, String> {
    let mut vcpu = vm
        .create_vcpu(id)
        .map_err(|err| format!("KVM_CREATE_VCPU: {err}"))?;
    start_in_real_mode(&vcpu, rip as u64)?;
    let mut debug = kvm_guest_debug {
        control: KVM_GUESTDBG_ENABLE | use_flag,
        ..Default::default()
    };
    debug.arch.debugreg[..4].copy_from_slice(&debugreg);
    debug.arch.debugreg[7] = dr7;
    vcpu.set_guest_debug(&debug)
        .map_err(|err| format!("KVM_SET_GUEST_DEBUG: {err}"))?;
    for _ in 0..MAX_EXITS {
        match vcpu.run() {
            Ok(VcpuExit::Debug(arch)) => return Ok(ProbeEnd::Debug(arch.exception)),
            Ok(VcpuExit::Hlt) => return Ok(ProbeEnd::Halted),
            Err(err) if err.errno() == libc::EINTR || err.errno() == libc::EAGAIN => {}
            Ok(exit) => return Ok(ProbeEnd::Other(format!("{exit:?}"))),
            Err(err) => return Ok(ProbeEnd::Other(format!("KVM_RUN: {err}"))),
        }
    }
    Ok(ProbeEnd::Other(format!("{MAX_EXITS} exits without a stop")))
}

/// Real mode at 0000:`rip`, its stack below [`STACK_TOP`].
fn start_in_real_mode(vcpu: &VcpuFd, rip: u64) -> Result<(), String> {
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|err| format!("KVM_GET_SREGS: {err}"))?;
    for segment in [&mut sregs.cs, &mut sregs.ss, &mut sregs.ds] {
        segment.base = 0;
        segment.selector = 0;
    }
    vcpu.set_sregs(&sregs)
        .map_err(|err| format!("KVM_SET_SREGS: {err}"))?;
    let regs = kvm_bindings::kvm_regs {
        rip,
        rsp: STACK_TOP,
        rflags: 2,
        ..Default::default()
    };
    vcpu.set_regs(&regs)
        .map_err(|err| format!("KVM_SET_REGS: {err}"))
}
