//! The reference: the same guest on a VM built directly with kvm-ioctls, run by a loop that
//! only calls `KVM_RUN` and matches the port-write exit. Whatever it costs per exit is KVM's
//! own price (kernel entry, guest entry and exit, return to user space), which no VMM can
//! avoid; the difference to axvm's figure is what axvm's exit path adds.

use kvm_bindings::{kvm_pit_config, kvm_userspace_memory_region, KVM_PIT_SPEAKER_DUMMY};
use kvm_ioctls::{Cap, Kvm, VcpuExit, VcpuFd, VmFd};

use crate::guest::{ENTRY, EXIT_PORT, RAM_SIZE, SCRATCH_PORT};

/// Where axvm's `KvmHal` puts KVM's real-mode TSS; done the same here so that KVM does the
/// same work on both sides.
const TSS_ADDRESS: usize = 0xfffb_d000;

/// Anonymous host memory backing the guest's RAM.
struct Ram {
    addr: *mut u8,
    len: usize,
}

impl Ram {
    fn new(len: usize) -> Self {
        let hva = axvm_linux::map_guest_ram(len as u64).expect("guest RAM for the bare VM");
        Self {
            addr: hva.as_u64() as *mut u8,
            len,
        }
    }
}

impl Drop for Ram {
    fn drop(&mut self) {
        // SAFETY: `addr`/`len` are the mapping made in `new`; the VM using it is gone
        // (`BareVm` declares its fds before its `Ram`, so they are closed first).
        unsafe {
            axvm_linux::unmap_guest_ram(axvm::HostVirtAddr::new(self.addr as u64), self.len as u64)
        };
    }
}

/// A one-vCPU KVM VM with 1 MiB of RAM, an in-kernel irqchip and PIT when KVM has them (as
/// axvm's VMs do: the PIT's ports sit on KVM's in-kernel I/O bus, which every port exit
/// searches, and destroying it costs time), and a raw image at [`ENTRY`] where the vCPU
/// starts in real mode.
pub struct BareVm {
    vcpu: VcpuFd,
    _vm: VmFd,
    _ram: Ram,
}

impl BareVm {
    /// Builds the VM and loads `image`; nothing runs yet.
    pub fn new(kvm: &Kvm, image: &[u8]) -> Self {
        let vm = kvm.create_vm().expect("KVM_CREATE_VM");
        vm.set_tss_address(TSS_ADDRESS).expect("KVM_SET_TSS_ADDR");
        if kvm.check_extension(Cap::Irqchip) {
            vm.create_irq_chip().expect("KVM_CREATE_IRQCHIP");
            let pit = kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            };
            vm.create_pit2(pit).expect("KVM_CREATE_PIT2");
        }
        let ram = Ram::new(RAM_SIZE as usize);
        let entry = ENTRY as usize;
        // SAFETY: the image fits in the fresh mapping (checked), which nothing else uses.
        unsafe {
            assert!(entry + image.len() <= ram.len);
            std::ptr::copy_nonoverlapping(image.as_ptr(), ram.addr.add(entry), image.len());
        }
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: RAM_SIZE,
            userspace_addr: ram.addr as u64,
        };
        // SAFETY: the mapping lives as long as the VM (`_ram` is dropped after `_vm`).
        unsafe { vm.set_user_memory_region(region) }.expect("KVM_SET_USER_MEMORY_REGION");
        let vcpu = vm.create_vcpu(0).expect("KVM_CREATE_VCPU");
        // Real mode at ENTRY: CS base 0 and selector 0, IP = ENTRY, as axvm's boot code does.
        let mut sregs = vcpu.get_sregs().expect("KVM_GET_SREGS");
        sregs.cs.base = 0;
        sregs.cs.selector = 0;
        vcpu.set_sregs(&sregs).expect("KVM_SET_SREGS");
        let regs = kvm_bindings::kvm_regs {
            rip: ENTRY,
            rflags: 1 << 1,
            ..Default::default()
        };
        vcpu.set_regs(&regs).expect("KVM_SET_REGS");
        Self {
            vcpu,
            _vm: vm,
            _ram: ram,
        }
    }

    /// Runs the vCPU until it writes to the exit port; returns how many exits it took. The
    /// loop is all a VMM must do: enter the guest, look at why it left.
    pub fn run_to_exit_port(&mut self) -> u64 {
        let mut exits = 0;
        loop {
            match self.vcpu.run() {
                Ok(VcpuExit::IoOut(SCRATCH_PORT, _)) => exits += 1,
                Ok(VcpuExit::IoOut(EXIT_PORT, _)) => return exits + 1,
                other => panic!("unexpected exit from the bare VM: {other:?}"),
            }
        }
    }
}
