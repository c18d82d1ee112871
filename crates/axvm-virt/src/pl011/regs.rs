//! The PL011's registers as plain state, without locks or callbacks, so every rule is
//! testable on its own: what a read returns, what a write changes, when the interrupt
//! line is high. [`super::Pl011`] wraps it for concurrent vCPUs.

use alloc::collections::VecDeque;

/// Data register: a read takes a received byte, a write transmits one.
pub const DR: u64 = 0x000;
/// Receive status (read) / error clear (write).
pub const RSR_ECR: u64 = 0x004;
/// Flag register.
pub const FR: u64 = 0x018;
/// IrDA low-power counter.
pub const ILPR: u64 = 0x020;
/// Integer baud rate divisor.
pub const IBRD: u64 = 0x024;
/// Fractional baud rate divisor.
pub const FBRD: u64 = 0x028;
/// Line control.
pub const LCR_H: u64 = 0x02c;
/// Control.
pub const CR: u64 = 0x030;
/// Interrupt FIFO level select.
pub const IFLS: u64 = 0x034;
/// Interrupt mask set/clear (1 = enabled).
pub const IMSC: u64 = 0x038;
/// Raw interrupt status.
pub const RIS: u64 = 0x03c;
/// Masked interrupt status: `RIS & IMSC`.
pub const MIS: u64 = 0x040;
/// Interrupt clear (write 1 to clear).
pub const ICR: u64 = 0x044;
/// DMA control.
pub const DMACR: u64 = 0x048;
/// The first of the eight identification registers (0xfe0..0xffc).
pub const ID_BASE: u64 = 0xfe0;

/// The peripheral ID (0xfe0..0xfec) then the PrimeCell ID (0xff0..0xffc): an ARM PL011 of
/// revision r1p4 (so 16-byte FIFOs), which Linux's AMBA bus matches to bind its driver.
pub const ID_BYTES: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

/// FR: receive FIFO empty.
pub const FR_RXFE: u32 = 1 << 4;
/// FR: transmit FIFO full (never: transmitted bytes leave at once).
pub const FR_TXFF: u32 = 1 << 5;
/// FR: receive FIFO full.
pub const FR_RXFF: u32 = 1 << 6;
/// FR: transmit FIFO empty (always).
pub const FR_TXFE: u32 = 1 << 7;

/// LCR_H: FIFOs enabled (else each is one character deep).
pub const LCR_H_FEN: u32 = 1 << 4;

/// Interrupt bit: receive.
pub const INT_RX: u32 = 1 << 4;
/// Interrupt bit: transmit.
pub const INT_TX: u32 = 1 << 5;
/// Interrupt bit: receive timeout.
pub const INT_RT: u32 = 1 << 6;
/// Every interrupt bit IMSC, RIS, MIS and ICR have (modem, RX, TX, timeout, errors).
pub const INT_ALL: u32 = 0x7ff;

/// The receive FIFO's depth with LCR_H.FEN set (r1p4: 16).
pub const RX_FIFO_DEPTH: usize = 16;

/// The registers and the receive FIFO.
#[derive(Debug)]
pub struct Pl011State {
    rx_fifo: VecDeque<u8>,
    /// Interrupt bits that stay raised until ICR clears them (TX: raised by a DR write, or
    /// by enabling TXIM, since the transmit FIFO is always empty).
    latched: u32,
    imsc: u32,
    ilpr: u32,
    ibrd: u32,
    fbrd: u32,
    lcr_h: u32,
    cr: u32,
    ifls: u32,
    dmacr: u32,
}

impl Default for Pl011State {
    /// The reset values: UART disabled with TXE and RXE set (CR 0x300), FIFO levels at
    /// half (IFLS 0x12), every interrupt masked, FIFOs off.
    fn default() -> Self {
        Self {
            rx_fifo: VecDeque::with_capacity(RX_FIFO_DEPTH),
            latched: 0,
            imsc: 0,
            ilpr: 0,
            ibrd: 0,
            fbrd: 0,
            lcr_h: 0,
            cr: 0x300,
            ifls: 0x12,
            dmacr: 0,
        }
    }
}

impl Pl011State {
    /// How many characters the receive FIFO holds now: 16 with FIFOs enabled, else 1
    /// (the holding register).
    pub fn rx_capacity(&self) -> usize {
        if self.lcr_h & LCR_H_FEN != 0 {
            RX_FIFO_DEPTH
        } else {
            1
        }
    }

    /// How many received bytes wait to be read.
    pub fn rx_len(&self) -> usize {
        self.rx_fifo.len()
    }

    /// Room left in the receive FIFO.
    pub fn rx_room(&self) -> usize {
        self.rx_capacity().saturating_sub(self.rx_fifo.len())
    }

    /// Queues as many of `bytes` as fit; returns how many.
    pub fn push_input(&mut self, bytes: &[u8]) -> usize {
        let taken = bytes.len().min(self.rx_room());
        self.rx_fifo.extend(&bytes[..taken]);
        taken
    }

    /// RIS. The receive bit follows the FIFO: raised while it holds a character, as QEMU's
    /// model does with its trigger level of one (IFLS is kept but not applied, so guests
    /// need no receive timeout, which a model without time cannot give faithfully).
    pub fn raw_interrupts(&self) -> u32 {
        let rx = if self.rx_fifo.is_empty() { 0 } else { INT_RX };
        self.latched | rx
    }

    /// Whether the interrupt line is high: any enabled interrupt raised.
    pub fn line_level(&self) -> bool {
        self.raw_interrupts() & self.imsc != 0
    }

    fn flags(&self) -> u32 {
        let mut flags = FR_TXFE;
        if self.rx_fifo.is_empty() {
            flags |= FR_RXFE;
        }
        if self.rx_room() == 0 {
            flags |= FR_RXFF;
        }
        flags
    }

    /// The value of the 32-bit register at `reg` (4-byte aligned); reading DR takes a byte.
    pub fn read(&mut self, reg: u64) -> u32 {
        match reg {
            // Received bytes carry no error bits (8..12): nothing goes wrong on this line.
            DR => self.rx_fifo.pop_front().map_or(0, u32::from),
            FR => self.flags(),
            ILPR => self.ilpr,
            IBRD => self.ibrd,
            FBRD => self.fbrd,
            LCR_H => self.lcr_h,
            CR => self.cr,
            IFLS => self.ifls,
            IMSC => self.imsc,
            RIS => self.raw_interrupts(),
            MIS => self.raw_interrupts() & self.imsc,
            DMACR => self.dmacr,
            ID_BASE..=0xffc => u32::from(ID_BYTES[((reg - ID_BASE) / 4) as usize]),
            // RSR (no errors ever), ICR (write-only) and the reserved offsets.
            _ => 0,
        }
    }

    /// Writes `value` to the 32-bit register at `reg` (4-byte aligned). Returns the byte to
    /// transmit for a DR write. Control registers keep their value: baud rate, line
    /// settings and CR's enables change nothing here, as in QEMU's model, since bytes go
    /// to the host as soon as they are written.
    pub fn write(&mut self, reg: u64, value: u32) -> Option<u8> {
        match reg {
            DR => {
                self.latched |= INT_TX;
                return Some(value as u8);
            }
            ILPR => self.ilpr = value & 0xff,
            IBRD => self.ibrd = value & 0xffff,
            FBRD => self.fbrd = value & 0x3f,
            LCR_H => self.lcr_h = value & 0xff,
            CR => self.cr = value & 0xffff,
            IFLS => self.ifls = value & 0x3f,
            IMSC => {
                self.imsc = value & INT_ALL;
                if self.imsc & INT_TX != 0 {
                    self.latched |= INT_TX;
                }
            }
            ICR => self.latched &= !(value & INT_ALL),
            DMACR => self.dmacr = value & 0x7,
            // ECR clears errors there never are; RIS, MIS, FR and the IDs are read-only.
            _ => {}
        }
        None
    }
}
