//! axvm's virtio guest: drives virtio-mmio devices with a driver written by
//! others (the `virtio-drivers` crate: [`VirtIOBlk`], [`VirtIONetRaw`],
//! [`VirtIOConsole`] over its [`MmioTransport`]), polling, no interrupts.
//!
//! Booted through PVH (the Xen `XEN_ELFNOTE_PHYS32_ENTRY` note, rt's 32-bit
//! entry, like `guests/pvh`), so the same image runs under axvm and under
//! `qemu-system-x86_64 -M microvm -kernel`. It finds its devices only in the
//! `virtio_mmio.device=<size>@<base>:<irq>` entries of its command line
//! (`start_info.cmdline_paddr`), which axvm and QEMU's microvm append for
//! every virtio-mmio device; it knows no address of its own.
//!
//! Everything it prints goes to COM1 and starts with `virtio: `. It ends the
//! VM through the exit port 0xf4: 0 on success; otherwise it prints
//! `virtio: FAIL: <what>` and exits with the status of [`status`].
//!
//! # Modes (command-line words)
//!
//! * **No mode word** — for every device entry prints `virtio: <base> <type>`
//!   (`blk`, `net`, `console`; `empty` for a transport with device id 0,
//!   `other` for the rest, which are skipped), then:
//!   * **blk**: `virtio: blk capacity <n> sectors`; `virtio: blk id "<id>"`
//!     (`VIRTIO_BLK_T_GET_ID`; `virtio: blk id unavailable (<error>)` when
//!     the device rejects it); reads sector 0 and prints its first 16 bytes
//!     as text, `virtio: blk sector 0: <text>` (bytes outside printable
//!     ASCII as `\xNN`; the tests put `axvm-virtio-disk` there); writes
//!     sector 1 with `written by the virtio guest` padded with spaces to 512
//!     bytes, flushes, reads it back and compares (`virtio: blk sector 1
//!     written, flushed and read back`; on a read-only device `virtio: blk
//!     read-only: sector 1 not written`); `virtio: blk ok`.
//!   * **console**: writes `virtio: hello from hvc0\n` to the virtio console
//!     (port 0) and prints `virtio: console ok` on COM1.
//!   * **net**: `virtio: net mac <xx:xx:xx:xx:xx:xx>`.
//!
//!   Then `virtio: all devices ok`. No device entry at all is a failure.
//! * **`virtio.durability=N`** — on the first blk device writes blocks 0 to
//!   N-1 in order, block k (512 bytes) being the text `block <k>` and a
//!   newline then, from byte i = the text's length on, the letter `b'a' + (k + i) % 26`; after
//!   each write it flushes, and once the flush is acknowledged prints
//!   `virtio: flushed <k>`. Then `virtio: durability ok: <N> blocks`. A
//!   device without `VIRTIO_BLK_F_FLUSH` (where a flush would silently be a
//!   no-op), a read-only one or one with fewer than N sectors is a failure.
//! * **`virtio.net=ping`** / **`virtio.net=pong`** — two VMs on one network.
//!   Frames have ethertype 0x88b5 (IEEE local experimental) and a payload of
//!   ASCII text zero-padded to 46 bytes. pong answers every `ping <n>` with
//!   `pong <n>` sent to the ping's source MAC; after answering `ping 3` it
//!   keeps answering repeats for a moment, then prints `virtio: net ok: mac
//!   <own> peer <ping's>`. ping broadcasts `ping 1`, `ping 2`, `ping 3`,
//!   each resent until its `pong <k>` arrives (`virtio: pong <k> from
//!   <mac>`), then prints `virtio: net ok: mac <own> peer <pong's>`. Both
//!   give up with a FAIL after a bounded wait measured in TSC ticks ([`net`]),
//!   so a broken device or a missing peer ends the VM instead of hanging it.
//! * **`virtio.echo`** — prints `virtio: echo: waiting for a line`, reads
//!   one line (up to `\n` or `\r`) from the virtio console, writes
//!   `echo: <line>\n` back to the virtio console and prints `virtio: echo ok:
//!   <line>` on COM1.
//!
//! Other words are ignored, except unknown `virtio.*` words and malformed
//! `virtio_mmio.device=` entries, which fail (status 1), as does a second
//! mode word.
//!
//! # Example (QEMU)
//!
//! ```text
//! qemu-system-x86_64 -M microvm -accel tcg -nographic -no-reboot -serial stdio \
//!     -monitor none -display none -device isa-debug-exit,iobase=0xf4,iosize=4 \
//!     -m 128M -kernel virtio -append "console=ttyS0" \
//!     -global virtio-mmio.force-legacy=false \
//!     -drive id=d0,file=disk.img,format=raw,if=none -device virtio-blk-device,drive=d0
//! ```
//!
//! [`VirtIOBlk`]: virtio_drivers::device::blk::VirtIOBlk
//! [`VirtIONetRaw`]: virtio_drivers::device::net::VirtIONetRaw
//! [`VirtIOConsole`]: virtio_drivers::device::console::VirtIOConsole
//! [`MmioTransport`]: virtio_drivers::transport::mmio::MmioTransport
#![no_std]
#![no_main]

extern crate alloc;

mod blk;
mod cmdline;
mod console;
mod hal;
mod net;
mod text;

use core::ptr::NonNull;

use rt::println;
use rt::pvh::{StartInfo, START_INFO_MAGIC};
use virtio_drivers::transport::mmio::{MmioError, MmioTransport, VirtIOHeader};
use virtio_drivers::transport::{DeviceType, Transport};

use cmdline::{Cmdline, MmioDevice, Mode};

/// Exit statuses, one per kind of failure.
pub mod status {
    /// No PVH start_info, no command line, or a bad `virtio*` word on it.
    pub const CMDLINE: u8 = 1;
    /// No device entry, or none of the type the mode needs.
    pub const NO_DEVICE: u8 = 2;
    /// A device entry whose window is not a virtio-mmio transport.
    pub const TRANSPORT: u8 = 3;
    /// The block device failed.
    pub const BLK: u8 = 4;
    /// The console device failed.
    pub const CONSOLE: u8 = 5;
    /// The network device failed, or the peer never answered.
    pub const NET: u8 = 6;
    /// Durability mode failed.
    pub const DURABILITY: u8 = 7;
    /// Started at the ELF entry in long mode: the VMM ignored the PVH note.
    pub const NOT_PVH: u8 = 0x7e;
}

/// Prints `virtio: FAIL: ...` and exits with `status`.
#[macro_export]
macro_rules! fail {
    ($status:expr, $($arg:tt)*) => {{
        rt::println!("virtio: FAIL: {}", format_args!($($arg)*));
        rt::exit($status)
    }};
}

/// The transport the drivers run on: the devices' windows are mapped for
/// the guest's whole life.
pub type Mmio = MmioTransport<'static>;

rt::entry32!(bsp, ap);
rt::pvh_note!();
rt::entry!(not_pvh);

/// The ELF entry: only reached when the VMM boots the file as a plain ELF64
/// (every vCPU at once, in long mode) instead of through the PVH note.
fn not_pvh(vcpu_id: u32) -> ! {
    if vcpu_id == 0 {
        fail!(
            status::NOT_PVH,
            "started in 64-bit mode at the ELF entry: the VMM did not boot it through the PVH note"
        );
    }
    rt::cpu::halt_forever()
}

/// APs are never started by this guest.
fn ap(_apic_id: u32) -> ! {
    rt::cpu::halt_forever()
}

fn bsp(_eax: u32, ebx: u32) -> ! {
    let cmdline = read_cmdline(ebx);
    let count = cmdline.devices().count();
    println!("virtio: {count} virtio_mmio.device entries");
    match cmdline.mode {
        Mode::Default => exercise_all(&cmdline),
        Mode::Durability(blocks) => {
            let (device, transport) = first_of(&cmdline, DeviceType::Block, "blk");
            blk::durability(device, transport, blocks)
        }
        Mode::Ping | Mode::Pong => {
            let (device, transport) = first_of(&cmdline, DeviceType::Network, "net");
            net::ping_pong(device, transport, cmdline.mode == Mode::Ping)
        }
        Mode::Echo => {
            let (device, transport) = first_of(&cmdline, DeviceType::Console, "console");
            console::echo(device, transport)
        }
    }
    rt::exit(0)
}

/// The command line from the PVH start_info at `ebx`, parsed.
fn read_cmdline(ebx: u32) -> Cmdline {
    let info = StartInfo::at(ebx as usize);
    if info.magic() != START_INFO_MAGIC {
        fail!(
            status::CMDLINE,
            "start_info magic expected {START_INFO_MAGIC:#x} got {:#x}",
            info.magic()
        );
    }
    let Some(text) = info.cmdline() else {
        fail!(status::CMDLINE, "no command line (cmdline_paddr is 0)");
    };
    // SAFETY: the loader put a NUL-terminated string there, in RAM that
    // nothing else uses; the guest only reads it.
    let bytes = unsafe { core::slice::from_raw_parts(text.addr as *const u8, text.len()) };
    let Ok(text) = core::str::from_utf8(bytes) else {
        fail!(status::CMDLINE, "the command line is not UTF-8: {text}");
    };
    Cmdline::parse(text).unwrap_or_else(|bad| fail!(status::CMDLINE, "{bad}"))
}

/// The default mode: every device, each by its type.
fn exercise_all(cmdline: &Cmdline) {
    if cmdline.devices().next().is_none() {
        fail!(
            status::NO_DEVICE,
            "no virtio_mmio.device=<size>@<base>:<irq> entry on the command line"
        );
    }
    for device in cmdline.devices() {
        let base = device.base;
        let transport = match open(device) {
            Ok(transport) => transport,
            Err(MmioError::InvalidDeviceID(_)) => {
                println!("virtio: {base:#x} empty");
                continue;
            }
            Err(e) => fail!(status::TRANSPORT, "device at {base:#x}: {e}"),
        };
        match transport.device_type() {
            DeviceType::Block => {
                println!("virtio: {base:#x} blk");
                blk::exercise(device, transport);
            }
            DeviceType::Console => {
                println!("virtio: {base:#x} console");
                console::hello(device, transport);
            }
            DeviceType::Network => {
                println!("virtio: {base:#x} net");
                net::show_mac(device, transport);
            }
            other => println!("virtio: {base:#x} other ({other:?}): skipped"),
        }
    }
    println!("virtio: all devices ok");
}

/// The first device of type `kind`, for the modes that need one.
fn first_of(cmdline: &Cmdline, kind: DeviceType, name: &str) -> (MmioDevice, Mmio) {
    for device in cmdline.devices() {
        if let Ok(transport) = open(device) {
            if transport.device_type() == kind {
                return (device, transport);
            }
        }
    }
    fail!(
        status::NO_DEVICE,
        "no {name} device among the virtio_mmio.device entries"
    )
}

/// The virtio-mmio transport in `device`'s window.
fn open(device: MmioDevice) -> Result<Mmio, MmioError> {
    let MmioDevice { base, size, .. } = device;
    // rt's 32-bit entry identity-maps the low 4 GiB only.
    if base.checked_add(size).is_none_or(|end| end > 1 << 32) || base % 4 != 0 {
        fail!(
            status::TRANSPORT,
            "device window {size:#x}@{base:#x} is not 4-byte aligned below 4 GiB"
        );
    }
    let Some(header) = NonNull::new(base as usize as *mut VirtIOHeader) else {
        fail!(status::TRANSPORT, "device window at address 0");
    };
    // SAFETY: the command line says a virtio-mmio window of `size` bytes is
    // at `base` (identity-mapped, uncached as MMIO is in rt's page tables),
    // and this guest opens each window for one driver at a time.
    unsafe { MmioTransport::new(header, size as usize) }
}
