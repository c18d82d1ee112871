//! Test doubles for the axvm core: a host ([`TestHal`]) that hands out real, zeroed,
//! page-aligned host memory and records every call axvm makes, and a vCPU ([`TestVCpu`])
//! that models a type-1 backend: it replays a script of exits and applies read results to
//! its register file the way x86 hardware does.
//!
//! Each test binary uses only part of this module, hence the `allow`s.
#![allow(dead_code, unused_imports)]

pub mod configs;
pub mod devices;
mod vcpu;

pub use vcpu::{TestSetup, TestVCpu, VCpuHandle, VCpuState};

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The doubles' error: a message, as a host's own error type would carry one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestError(pub String);

impl std::fmt::Display for TestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TestError {}

impl From<String> for TestError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

impl From<&str> for TestError {
    fn from(message: &str) -> Self {
        Self(message.into())
    }
}

use axvm::{AxVMHal, GuestPhysAddr, HostPhysAddr, HostVirtAddr, MappingFlags, PAGE_SIZE};

/// One `map_guest_memory` or `map_passthrough` call (`host` is the HVA or the HPA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapCall {
    pub gpa: u64,
    pub host: u64,
    pub size: u64,
    pub flags: MappingFlags,
}

/// What the host is told to do, and what it saw axvm do.
#[derive(Default)]
pub struct HalState {
    // --- knobs ---
    pub no_hardware_support: bool,
    /// What `alloc_memory_region_at` answers (and, when true, it really allocates).
    pub alloc_at_succeeds: bool,
    /// Whether `phys_to_virt` answers for memory obtained by `alloc_memory_region_at`.
    pub identical_unreachable: bool,
    /// Extra `phys_to_virt` answers, set up by the test (hpa → hva).
    pub phys_map: HashMap<u64, u64>,
    /// Refuse the `map_guest_memory` call with this 0-based index.
    pub fail_map_call: Option<usize>,
    /// Refuse every `map_passthrough` call with this message.
    pub refuse_passthrough: Option<String>,
    /// Refuse `create_vcpu` for this vCPU id.
    pub fail_create_vcpu: Option<usize>,
    // --- records ---
    pub alloc_calls: Vec<u64>,
    pub alloc_at_calls: Vec<(u64, u64)>,
    pub deallocs: Vec<(u64, u64)>,
    pub dealloc_ats: Vec<(u64, u64)>,
    /// Frees of memory this host never handed out (or with the wrong size).
    pub bad_frees: Vec<String>,
    pub maps: Vec<MapCall>,
    pub passthrough_maps: Vec<MapCall>,
    pub kicks: Vec<usize>,
    /// (vCPU, vector) of each injected interrupt.
    pub irqs: Vec<(usize, u8)>,
    pub created_vcpus: Vec<(usize, Option<usize>)>,
    /// Live host allocations: hva → layout.
    live: HashMap<u64, Layout>,
    /// Memory from `alloc_memory_region_at`: hpa → hva.
    identical: HashMap<u64, u64>,
    vcpus: HashMap<usize, Arc<Mutex<VCpuState>>>,
}

impl HalState {
    fn allocate(&mut self, size: u64) -> Result<u64, String> {
        let size = usize::try_from(size).map_err(|_| "size too large".to_string())?;
        let layout =
            Layout::from_size_align(size, PAGE_SIZE as usize).map_err(|e| e.to_string())?;
        // SAFETY: the size is non-zero (axvm refuses empty regions before allocating).
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            return Err("out of memory".into());
        }
        self.live.insert(ptr as u64, layout);
        Ok(ptr as u64)
    }

    fn free(&mut self, hva: u64, size: u64) {
        match self.live.remove(&hva) {
            Some(layout) if layout.size() as u64 == size => {
                // SAFETY: allocated by `allocate` with this layout.
                unsafe { dealloc(hva as *mut u8, layout) }
            }
            Some(layout) => {
                self.bad_frees.push(format!(
                    "{hva:#x} freed with size {size:#x}, allocated {layout:?}"
                ));
                self.live.insert(hva, layout);
            }
            None => self.bad_frees.push(format!("{hva:#x} was never allocated")),
        }
    }
}

impl Drop for HalState {
    fn drop(&mut self) {
        for (hva, layout) in self.live.drain() {
            // SAFETY: allocated by `allocate` with this layout and not freed yet.
            unsafe { dealloc(hva as *mut u8, layout) }
        }
    }
}

/// The host double. Clones share their state, so a test keeps one to inspect the host
/// after `AxVM::new` consumed the other.
#[derive(Clone, Default)]
pub struct TestHal {
    state: Arc<Mutex<HalState>>,
}

impl TestHal {
    pub fn new() -> Self {
        Self::default()
    }

    /// The shared state. Drop the guard before calling into the VM (it calls the host).
    pub fn state(&self) -> MutexGuard<'_, HalState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the knobs.
    pub fn configure(self, set: impl FnOnce(&mut HalState)) -> Self {
        set(&mut self.state());
        self
    }

    /// vCPU `id`'s shared state (created on first use, so a test can script it before
    /// `AxVM::new` creates the vCPU).
    pub fn vcpu(&self, id: usize) -> VCpuHandle {
        VCpuHandle(self.state().vcpus.entry(id).or_default().clone())
    }

    /// Host memory axvm has obtained and not given back.
    pub fn live_allocations(&self) -> usize {
        self.state().live.len()
    }

    /// Allocates host memory outside axvm (e.g. memory "reserved" for MapReserved).
    pub fn reserve(&self, hpa: u64, size: u64) -> u64 {
        let mut state = self.state();
        let hva = state.allocate(size).unwrap();
        state.phys_map.insert(hpa, hva);
        hva
    }

    pub fn kicks(&self) -> Vec<usize> {
        self.state().kicks.clone()
    }

    pub fn maps(&self) -> Vec<MapCall> {
        self.state().maps.clone()
    }

    pub fn passthrough_maps(&self) -> Vec<MapCall> {
        self.state().passthrough_maps.clone()
    }
}

impl AxVMHal for TestHal {
    type VCpu = TestVCpu;
    type Error = TestError;

    fn has_hardware_support(&self) -> bool {
        !self.state().no_hardware_support
    }

    fn alloc_memory_region(&self, size: u64) -> Result<HostVirtAddr, TestError> {
        let mut state = self.state();
        state.alloc_calls.push(size);
        state
            .allocate(size)
            .map(HostVirtAddr::new)
            .map_err(TestError)
    }

    fn alloc_memory_region_at(&self, base: HostPhysAddr, size: u64) -> bool {
        let mut state = self.state();
        state.alloc_at_calls.push((base.as_u64(), size));
        if !state.alloc_at_succeeds {
            return false;
        }
        let hva = state.allocate(size).expect("test allocation");
        state.identical.insert(base.as_u64(), hva);
        true
    }

    fn dealloc_memory_region(&self, hva: HostVirtAddr, size: u64) {
        let mut state = self.state();
        state.deallocs.push((hva.as_u64(), size));
        state.free(hva.as_u64(), size);
    }

    fn dealloc_memory_region_at(&self, base: HostPhysAddr, size: u64) {
        let mut state = self.state();
        state.dealloc_ats.push((base.as_u64(), size));
        match state.identical.remove(&base.as_u64()) {
            Some(hva) => state.free(hva, size),
            None => state.bad_frees.push(format!("{base} was not allocated at")),
        }
    }

    fn phys_to_virt(&self, paddr: HostPhysAddr) -> Option<HostVirtAddr> {
        let state = self.state();
        let identical = state.identical.get(&paddr.as_u64()).copied();
        let identical = identical.filter(|_| !state.identical_unreachable);
        let answer = state.phys_map.get(&paddr.as_u64()).copied().or(identical);
        answer.map(HostVirtAddr::new)
    }

    fn map_guest_memory(
        &self,
        gpa: GuestPhysAddr,
        hva: HostVirtAddr,
        size: u64,
        flags: MappingFlags,
    ) -> Result<(), TestError> {
        let mut state = self.state();
        let index = state.maps.len();
        state.maps.push(MapCall {
            gpa: gpa.as_u64(),
            host: hva.as_u64(),
            size,
            flags,
        });
        match state.fail_map_call {
            Some(fail) if fail == index => Err("no more memory slots".into()),
            _ => Ok(()),
        }
    }

    fn map_passthrough(
        &self,
        gpa: GuestPhysAddr,
        hpa: HostPhysAddr,
        size: u64,
        flags: MappingFlags,
    ) -> Result<(), TestError> {
        let mut state = self.state();
        state.passthrough_maps.push(MapCall {
            gpa: gpa.as_u64(),
            host: hpa.as_u64(),
            size,
            flags,
        });
        match &state.refuse_passthrough {
            Some(message) => Err(TestError(message.clone())),
            None => Ok(()),
        }
    }

    fn create_vcpu(
        &self,
        vcpu_id: usize,
        phys_cpu_set: Option<usize>,
    ) -> Result<TestVCpu, TestError> {
        let mut state = self.state();
        state.created_vcpus.push((vcpu_id, phys_cpu_set));
        if state.fail_create_vcpu == Some(vcpu_id) {
            return Err("backend has no vCPU slots left".into());
        }
        let shared = state.vcpus.entry(vcpu_id).or_default().clone();
        Ok(TestVCpu(VCpuHandle(shared)))
    }

    fn kick_vcpu(&self, vcpu_id: usize) {
        self.state().kicks.push(vcpu_id);
    }

    fn inject_irq_to_vcpu(&self, vcpu_id: usize, irq: u8) -> Result<(), TestError> {
        self.state().irqs.push((vcpu_id, irq));
        Ok(())
    }

    fn current_time_nanos(&self) -> u64 {
        0
    }
}
