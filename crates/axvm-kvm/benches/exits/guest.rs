//! The raw real-mode guests the benchmark runs, and the VM config they run in.
//!
//! The loop and console guests are the `exitloop` guest (`guests/exitloop`, built by
//! `axvm-guests`) with its loop count, port or byte rewritten: the same image that
//! `scripts/svm-bench.sh` runs under the type-1 hypervisor and on nested KVM, so every exit
//! figure is of the same instructions. Its listing:
//!
//! ```text
//!  0: b9 20 4e    mov  $20000, %cx    # exits to make
//!  3: ba ff 03    mov  $0x3ff, %dx    # COM1 scratch register
//!  6: 30 c0       xor  %al, %al
//!  8: ee       1: out  %al, (%dx)     # the measured exit
//!  9: e2 fd       loop 1b             # --cx, jump back while cx != 0
//!  b: b0 00       mov  $0, %al
//!  d: e6 f4       out  %al, $0xf4     # exit device: stop the VM with status 0
//!  f: f4          hlt                 # never reached
//! ```
//!
//! The trivial guest's few bytes were assembled once with `as --32` (`.code16`) and
//! `objcopy -O binary`; the assembly is in its comment. All are loaded and entered at
//! [`ENTRY`] (CS base 0, IP 0x8000) in 1 MiB of RAM, like `guests/realmode`.

use axvm::{AxVMConfig, GuestPhysAddr, MappingFlags, VmMemConfig, VmMemMappingType};

/// Where the guests are loaded and entered.
pub const ENTRY: u64 = 0x8000;
/// Guest RAM: the real-mode address space.
pub const RAM_SIZE: u64 = 0x10_0000;
/// The port the loop guest writes: COM1's scratch register, which the UART just stores.
pub const SCRATCH_PORT: u16 = 0x3ff;
/// COM1's transmit register: what the console guest writes, one byte per `out`.
pub const COM1_DATA_PORT: u16 = 0x3f8;
/// The byte the console guest prints.
pub const CONSOLE_BYTE: u8 = b'.';
/// The exit device's port (a guest's `out 0xf4, al` ends the VM with `al` as its status).
pub const EXIT_PORT: u16 = 0xf4;

/// Offset of the 16-bit loop count (the immediate of `mov $n, %cx`).
const LOOP_COUNT_OFFSET: usize = axvm_guests::EXITLOOP_COUNT_OFFSET;
/// Offset of the 16-bit port (the immediate of `mov $port, %dx`).
const LOOP_PORT_OFFSET: usize = axvm_guests::EXITLOOP_PORT_OFFSET;
/// Offset of the byte written: `xor %al, %al` (30 c0) becomes `mov $value, %al` (b0 value),
/// the same length.
const LOOP_VALUE_OFFSET: usize = axvm_guests::EXITLOOP_VALUE_OFFSET;

/// The trivial guest: stops the VM at once.
///
/// ```text
///  0: b0 00       mov  $0, %al
///  2: e6 f4       out  %al, $0xf4     # exit device: stop the VM with status 0
///  4: f4          hlt                 # never reached
/// ```
pub const EXIT_GUEST: [u8; 5] = [0xb0, 0x00, 0xe6, 0xf4, 0xf4];

/// The loop guest making `outs` writes to [`SCRATCH_PORT`], then one to [`EXIT_PORT`]: the
/// `exitloop` image with its count rewritten (`axvm-guests`' image test pins its layout).
pub fn loop_guest(outs: u16) -> Vec<u8> {
    assert!(outs > 0, "`loop` with cx = 0 would run 65536 times");
    let mut image = axvm_guests::EXITLOOP.to_vec();
    let port = u16::from_le_bytes([image[LOOP_PORT_OFFSET], image[LOOP_PORT_OFFSET + 1]]);
    assert_eq!(port, SCRATCH_PORT, "the exitloop guest writes another port");
    image[LOOP_COUNT_OFFSET..LOOP_COUNT_OFFSET + 2].copy_from_slice(&outs.to_le_bytes());
    image
}

/// The console guest: the loop guest printing [`CONSOLE_BYTE`] `bytes` times to COM1's
/// transmit register (no line-status polling: the UART model's transmitter is always
/// ready), then stopping with status 0.
pub fn console_guest(bytes: u16) -> Vec<u8> {
    let mut image = loop_guest(bytes);
    image[LOOP_PORT_OFFSET..LOOP_PORT_OFFSET + 2].copy_from_slice(&COM1_DATA_PORT.to_le_bytes());
    image[LOOP_VALUE_OFFSET..LOOP_VALUE_OFFSET + 2].copy_from_slice(&[0xb0, CONSOLE_BYTE]);
    image
}

/// One vCPU, 1 MiB of RAM at 0, a raw image loaded and entered at [`ENTRY`].
pub fn raw_config() -> AxVMConfig {
    let mut config = AxVMConfig::new("bench", 1);
    config.memory_regions.push(VmMemConfig {
        gpa: GuestPhysAddr::new(0),
        size: RAM_SIZE,
        flags: MappingFlags::READ | MappingFlags::WRITE | MappingFlags::EXECUTE,
        map_type: VmMemMappingType::MapAlloc,
    });
    config.cpu_config.bsp_entry = GuestPhysAddr::new(ENTRY);
    config.cpu_config.ap_entry = GuestPhysAddr::new(ENTRY);
    config.image_config.kernel_load_gpa = GuestPhysAddr::new(ENTRY);
    config
}
