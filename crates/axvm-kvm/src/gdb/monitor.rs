//! GDB's `monitor` commands: what GDB's own commands cannot say of a VM.
//!
//! - `monitor phys on|off`: memory addresses (`x`, `print *(int *)ADDR`, breakpoints) are
//!   guest-physical instead of virtual.
//! - `monitor watch-port PORT` / `monitor unwatch-port PORT`: stop a vCPU after each write
//!   to port PORT (x86 debug registers watch memory, not ports, without CR4.DE in the
//!   guest), reported as a SIGTRAP; `monitor last-stop` then says which write.
//! - `monitor last-stop`: why the last stop happened, in words.

use std::fmt::Write as _;

use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd};

use super::target::VmTarget;
use crate::kvm::DebugStop;

const HELP: &str = "axvm monitor commands:
  phys on|off          memory addresses are guest-physical (on) or virtual (off, the default)
  watch-port PORT      stop after every write to I/O port PORT (e.g. 0x3f8)
  unwatch-port PORT    stop watching PORT
  last-stop            why the vCPUs last stopped";

impl MonitorCmd for VmTarget<'_> {
    fn handle_monitor_cmd(&mut self, cmd: &[u8], mut out: ConsoleOutput<'_>) -> Result<(), String> {
        let cmd = String::from_utf8_lossy(cmd);
        let reply = self.monitor(cmd.split_whitespace().collect());
        let _ = writeln!(out, "{reply}");
        Ok(())
    }
}

impl VmTarget<'_> {
    /// Runs one monitor command; its answer.
    fn monitor(&mut self, words: Vec<&str>) -> String {
        match words.as_slice() {
            ["phys", "on"] => {
                self.physical = true;
                "memory addresses are guest-physical".into()
            }
            ["phys", "off"] => {
                self.physical = false;
                "memory addresses are virtual (the vCPU's page tables translate them)".into()
            }
            ["watch-port", port] => match parse_port(port) {
                Some(port) => {
                    self.control.update_debug(|debug| {
                        if !debug.watched_ports.contains(&port) {
                            debug.watched_ports.push(port);
                        }
                    });
                    format!("vCPUs stop after writing port {port:#x}")
                }
                None => format!("`{port}` is not a port number (0-0xffff)"),
            },
            ["unwatch-port", port] => match parse_port(port) {
                Some(port) => {
                    self.control
                        .update_debug(|debug| debug.watched_ports.retain(|&p| p != port));
                    format!("port {port:#x} is not watched")
                }
                None => format!("`{port}` is not a port number (0-0xffff)"),
            },
            ["last-stop"] => self.describe_last_stop(),
            _ => HELP.into(),
        }
    }

    fn describe_last_stop(&self) -> String {
        let Some((vcpu, stop)) = self.last_stop else {
            return "no stop reported in this session yet".into();
        };
        match stop {
            DebugStop::SoftwareBreakpoint => format!("vCPU {vcpu} hit a breakpoint"),
            DebugStop::GuestBreakpoint => format!("vCPU {vcpu} ran an int3 of the guest's own"),
            DebugStop::Step => format!("vCPU {vcpu} ran one instruction"),
            DebugStop::HardwareSlot { slot } => {
                format!("vCPU {vcpu} matched debug register DR{slot}")
            }
            DebugStop::PortWrite { port, data } => {
                format!("vCPU {vcpu} wrote {data:#x} to port {port:#x}")
            }
        }
    }
}

/// `0x3f8` or `1016`.
fn parse_port(text: &str) -> Option<u16> {
    match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => u16::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_port;

    #[test]
    fn ports_are_decimal_or_hex_and_16_bit() {
        assert_eq!(parse_port("0x3f8"), Some(0x3f8));
        assert_eq!(parse_port("1016"), Some(0x3f8));
        assert_eq!(parse_port("0x10000"), None);
        assert_eq!(parse_port("com1"), None);
    }
}
