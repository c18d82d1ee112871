//! What a vCPU's interrupt table and stack say about a boot that went wrong: an empty or
//! all-zero IDT (so the first exception triple-faults), and a real-mode `int N` through an
//! IVT vector nobody filled in (the guest called a BIOS service, and axvm loads no BIOS
//! unless the config gives one), and code mapped with a 1 GiB page on a host whose KVM
//! offers none.
//!
//! Everything here reads guest memory through [`AxVM::memory`], which refuses addresses
//! outside guest RAM: a bad table address is "not readable", never a host access.

use axvm::{AxVM, GuestPhysAddr};
use kvm_bindings::kvm_sregs;

use crate::kvm::{KvmHal, KvmVCpu};
use axvm_pc::guest_paging::{translate, PagingRegs, ReadFn, GIB_PAGE};

/// How many vectors the CPU's exceptions use: the gates a guest must fill before its first
/// fault.
const EXCEPTION_VECTORS: u64 = 32;

/// The state of the interrupt descriptor table, as far as it decides whether an exception
/// can be delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IdtState {
    /// IDTR's limit is too small to hold one gate: every exception or interrupt faults
    /// again, and the third fault resets the machine.
    Empty { base: u64, limit: u16 },
    /// The exception gates are all zeros (not present): the same.
    ZeroGates { base: u64, limit: u16 },
    /// Present, or not readable: nothing to say.
    Unremarkable,
}

/// A real-mode `int N` whose IVT vector is 0000:0000: a call of a BIOS service that is not
/// there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BiosCall {
    pub vector: u8,
    /// Linear address of the `int` instruction.
    pub at: u64,
    /// AH now, which selects the service's function (unchanged by the zeros that run at
    /// 0000:0000 as `add [bx+si], al`).
    pub ah: u8,
}

/// The IDT of a vCPU in `mode` ("real", "protected" or "long") with `sregs`.
pub(crate) fn idt_state(
    vm: &AxVM<KvmHal>,
    vcpu: &KvmVCpu,
    mode: &str,
    sregs: &kvm_sregs,
) -> IdtState {
    let (base, limit) = (sregs.idt.base, sregs.idt.limit);
    let gate_size: u64 = match mode {
        "real" => 4,
        "long" => 16,
        _ => 8,
    };
    if u64::from(limit) + 1 < gate_size {
        return IdtState::Empty { base, limit };
    }
    if mode == "real" {
        // An IVT of zeros is what a raw image starts with; only the vector it calls matters.
        return IdtState::Unremarkable;
    }
    let gates = ((u64::from(limit) + 1) / gate_size).min(EXCEPTION_VECTORS);
    let mut table = vec![0u8; (gates * gate_size) as usize];
    let readable = linear_to_physical(vcpu, sregs, base).is_some_and(|gpa| {
        vm.memory()
            .read(GuestPhysAddr::new(gpa), &mut table)
            .is_ok()
    });
    if readable && table.iter().all(|&b| b == 0) {
        IdtState::ZeroGates { base, limit }
    } else {
        IdtState::Unremarkable
    }
}

/// The `int N` a real-mode vCPU last executed through an all-zero IVT vector, found from the
/// return frame `int` pushed (IP, CS, FLAGS) at SS:SP; `None` when the frame there is not
/// one, or the vector is set.
pub(crate) fn bios_call(
    vm: &AxVM<KvmHal>,
    sregs: &kvm_sregs,
    sp: u64,
    ax: u64,
) -> Option<BiosCall> {
    let frame_at = sregs.ss.base.wrapping_add(sp & 0xffff);
    let frame = read::<6>(vm, frame_at)?;
    let ip = u64::from(u16::from_le_bytes([frame[0], frame[1]]));
    let cs = u64::from(u16::from_le_bytes([frame[2], frame[3]]));
    let after = (cs << 4).wrapping_add(ip);
    let [opcode, vector] = read::<2>(vm, after.checked_sub(2)?)?;
    if opcode != 0xcd {
        return None;
    }
    let entry = u64::from(vector) * 4;
    if entry + 3 > u64::from(sregs.idt.limit) {
        return None;
    }
    let handler = read::<4>(vm, sregs.idt.base.wrapping_add(entry))?;
    (handler == [0; 4]).then_some(BiosCall {
        vector,
        at: after - 2,
        ah: (ax >> 8) as u8,
    })
}

/// What the PC BIOS offers through `int vector` (and function `ah`, for the common ones).
pub(crate) fn bios_service(vector: u8, ah: u8) -> String {
    let service = match vector {
        0x10 => "video services",
        0x11 => "equipment list",
        0x12 => "conventional memory size",
        0x13 => "disk services",
        0x14 => "serial port services",
        0x15 => "system services",
        0x16 => "keyboard services",
        0x17 => "printer services",
        0x19 => "bootstrap loader",
        0x1a => "time and PCI BIOS services",
        _ => return format!("int {vector:#x}: not a BIOS service axvm knows"),
    };
    let function = match (vector, ah) {
        (0x10, 0x00) => Some("set video mode"),
        (0x10, 0x0e) => Some("teletype output"),
        (0x10, 0x13) => Some("write string"),
        (0x13, 0x00) => Some("reset disk"),
        (0x13, 0x02) => Some("read sectors"),
        (0x13, 0x41) => Some("check extensions"),
        (0x13, 0x42) => Some("extended read"),
        (0x15, 0xe8) => Some("memory map (E820/E801)"),
        (0x15, 0x88) => Some("extended memory size"),
        (0x16, 0x00) => Some("read key"),
        _ => None,
    };
    match function {
        Some(function) => format!("{service}, AH={ah:#04x}: {function}"),
        None => format!("{service}, AH={ah:#04x}"),
    }
}

/// `N` bytes of guest RAM at `gpa`, if they are all RAM.
fn read<const N: usize>(vm: &AxVM<KvmHal>, gpa: u64) -> Option<[u8; N]> {
    let mut bytes = [0u8; N];
    vm.memory().read(GuestPhysAddr::new(gpa), &mut bytes).ok()?;
    Some(bytes)
}

/// The guest-physical address of `linear`, through the vCPU's page tables when paging is on.
/// The 1 GiB page (its guest-physical base) through which the vCPU with `sregs` maps
/// `linear`, when this host's KVM offers no 1 GiB pages: the page tables are read as a CPU
/// with `pdpe1gb` would (axvm's own walk, through guest RAM only), since KVM's translation
/// stops at the reserved PS bit. `None` when the host offers them or the mapping is another.
pub(crate) fn unoffered_gib_page(vm: &AxVM<KvmHal>, sregs: &kvm_sregs, linear: u64) -> Option<u64> {
    if vm.hal().offers_gib_pages() {
        return None;
    }
    let regs = PagingRegs {
        cr0: sregs.cr0,
        cr3: sregs.cr3,
        cr4: sregs.cr4,
        efer: sregs.efer,
    };
    let read =
        ReadFn(|gpa: u64, buf: &mut [u8]| vm.memory().read(GuestPhysAddr::new(gpa), buf).ok());
    let page = translate(&read, &regs, linear).ok()?;
    (page.page_size == GIB_PAGE).then_some(page.gpa & !(GIB_PAGE - 1))
}

fn linear_to_physical(vcpu: &KvmVCpu, sregs: &kvm_sregs, linear: u64) -> Option<u64> {
    const CR0_PG: u64 = 1 << 31;
    if sregs.cr0 & CR0_PG == 0 {
        return Some(linear);
    }
    vcpu.fd()
        .translate_gva(linear)
        .ok()
        .filter(|t| t.valid != 0)
        .map(|t| t.physical_address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bios_services_are_named_with_their_function() {
        assert_eq!(
            bios_service(0x10, 0x0e),
            "video services, AH=0x0e: teletype output"
        );
        assert_eq!(bios_service(0x13, 0x07), "disk services, AH=0x07");
        assert!(bios_service(0x80, 0).contains("not a BIOS service"));
    }
}
