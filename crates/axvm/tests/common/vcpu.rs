//! The vCPU double: a type-1 backend's vCPU with a register file and a script of exits.
//! Read results reach the registers through the core's `merge_port_read`,
//! `extend_mmio_read` and `split_msr_value`, as hardware would put them there.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use axvm::vcpu::{extend_mmio_read, merge_port_read, split_msr_value, LoadExtension};
use axvm::{AxArchVCpu, AxVCpuExitReason, GuestPhysAddr};

/// A vCPU's registers, script and record.
#[derive(Debug)]
pub struct VCpuState {
    pub rax: u64,
    pub rdx: u64,
    /// The destination register of the MMIO load instructions the script stands for.
    pub mmio_dest: u64,
    /// How those loads extend (MOV r64 of a narrow value keeps, MOVZX zero-extends...).
    pub mmio_extension: LoadExtension,
    /// What `run()` returns next; `Err` makes `run()` fail. Empty: `Halt`.
    pub script: VecDeque<Result<AxVCpuExitReason, String>>,
    /// The read exit not answered yet.
    pub pending_read: Option<AxVCpuExitReason>,
    /// Every value `set_read_result` received.
    pub read_results: Vec<u64>,
    pub runs: usize,
    pub entry: Option<GuestPhysAddr>,
    pub setups: Vec<TestSetup>,
    pub gprs_set: Vec<(usize, u64)>,
}

impl Default for VCpuState {
    fn default() -> Self {
        Self {
            rax: 0,
            rdx: 0,
            mmio_dest: 0,
            mmio_extension: LoadExtension::Zero,
            script: VecDeque::new(),
            pending_read: None,
            read_results: Vec::new(),
            runs: 0,
            entry: None,
            setups: Vec::new(),
            gprs_set: Vec::new(),
        }
    }
}

/// A test's handle on a vCPU's state, shared with the [`TestVCpu`] the VM owns.
#[derive(Clone)]
pub struct VCpuHandle(pub(super) Arc<Mutex<VCpuState>>);

impl VCpuHandle {
    pub fn state(&self) -> MutexGuard<'_, VCpuState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends exits to the script.
    pub fn script(&self, exits: impl IntoIterator<Item = AxVCpuExitReason>) -> &Self {
        self.state().script.extend(exits.into_iter().map(Ok));
        self
    }

    pub fn fail_next_run(&self, message: &str) -> &Self {
        self.state().script.push_back(Err(message.into()));
        self
    }

    pub fn remaining(&self) -> usize {
        self.state().script.len()
    }
}

/// What `setup_vcpu` gives a [`TestVCpu`]: initial register values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TestSetup {
    pub rax: u64,
    pub rdx: u64,
}

/// The vCPU double, owned by the VM.
pub struct TestVCpu(pub(super) VCpuHandle);

fn check_width(value: u64, width: axvm::AccessWidth) -> Result<(), String> {
    if width.truncate(value) == value {
        Ok(())
    } else {
        Err(format!(
            "read result {value:#x} is wider than the {width} access"
        ))
    }
}

impl AxArchVCpu for TestVCpu {
    type SetupConfig = TestSetup;
    type Error = super::TestError;

    fn set_entry(&mut self, entry: GuestPhysAddr) -> Result<(), super::TestError> {
        self.0.state().entry = Some(entry);
        Ok(())
    }

    fn setup(&mut self, config: TestSetup) -> Result<(), super::TestError> {
        let mut state = self.0.state();
        state.rax = config.rax;
        state.rdx = config.rdx;
        state.setups.push(config);
        Ok(())
    }

    fn run(&mut self) -> Result<AxVCpuExitReason, super::TestError> {
        let mut state = self.0.state();
        if let Some(read) = state.pending_read.take() {
            return Err(format!("guest re-entered before {read:?} was answered").into());
        }
        state.runs += 1;
        let exit = state
            .script
            .pop_front()
            .unwrap_or(Ok(AxVCpuExitReason::Halt))?;
        if matches!(
            exit,
            AxVCpuExitReason::IoRead { .. }
                | AxVCpuExitReason::MmioRead { .. }
                | AxVCpuExitReason::SysRegRead { .. }
        ) {
            state.pending_read = Some(exit);
        }
        Ok(exit)
    }

    fn set_read_result(&mut self, value: u64) -> Result<(), super::TestError> {
        let mut state = self.0.state();
        let read = state.pending_read.take().ok_or("no read to answer")?;
        match read {
            AxVCpuExitReason::IoRead { width, .. } => {
                check_width(value, width)?;
                state.rax = merge_port_read(state.rax, value, width);
            }
            AxVCpuExitReason::MmioRead { width, .. } => {
                check_width(value, width)?;
                let extension = state.mmio_extension;
                state.mmio_dest = extend_mmio_read(state.mmio_dest, value, width, extension);
            }
            AxVCpuExitReason::SysRegRead { .. } => {
                let (edx, eax) = split_msr_value(value);
                state.rdx = edx;
                state.rax = eax;
            }
            other => unreachable!("{other:?} is not a read"),
        }
        state.read_results.push(value);
        Ok(())
    }

    fn set_gpr(&mut self, reg: usize, value: u64) -> Result<(), super::TestError> {
        let mut state = self.0.state();
        match reg {
            0 => state.rax = value,
            2 => state.rdx = value,
            _ => {}
        }
        state.gprs_set.push((reg, value));
        Ok(())
    }
}
