//! The i8042's state machine: what a PC's keyboard controller does with each command and
//! data byte when **no keyboard and no mouse are attached**, apart from the ports.
//!
//! Everything happens at once: the input buffer is never full (status IBF is always 0), and
//! a reply is in the output buffer before the guest's next instruction, so a guest waiting
//! for OBF finds it on its first status read instead of polling port 0x64 for ever.
//!
//! A byte meant for a device (a data byte the controller does not expect, or one after
//! command 0xd4) goes nowhere: a real controller clocks it out, nothing clocks back, and
//! the transmission times out. The controller then reports the time-out in the status
//! register (bit 6, with bit 5 for the aux port) and puts 0xfe in the output buffer, as the
//! IBM PS/2 controller does on a transmit time-out and as Linux's i8042 driver and SeaBIOS
//! understand it: a failed send, answered at once (SeaBIOS takes the 0xfe for a NAK and
//! gives up on the device; Linux's PS/2 core aborts the command on the time-out bit). It is
//! never 0xfa (ACK) or anything else a keyboard or mouse would say.
//!
//! No interrupt is ever raised: with no device attached, the only bytes in the output buffer
//! are replies to the guest's own commands, which it reads by polling.

/// Status register (port 0x64 read) bits.
pub(super) mod status {
    /// Output buffer full: a byte waits at port 0x60.
    pub const OBF: u8 = 0x01;
    /// System flag: the controller passed its self-test (mirrors the CTR's bit 2).
    pub const SYS: u8 = 0x04;
    /// The last write was to the command port (0x64), not the data port.
    pub const A2: u8 = 0x08;
    /// Keyboard not locked by the key switch (PCs have none: always set).
    pub const UNLOCKED: u8 = 0x10;
    /// The byte in the output buffer is from (or about) the aux port.
    pub const AUX_DATA: u8 = 0x20;
    /// Time-out: the byte in the output buffer reports a transmission nothing answered.
    pub const TIMEOUT: u8 = 0x40;
}

/// Controller configuration byte (CTR, internal RAM byte 0) bits.
pub(super) mod ctr {
    /// The system flag, which the status register shows.
    pub const SYS: u8 = 0x04;
    /// The keyboard port's clock is disabled (commands 0xad / 0xae).
    pub const KEYBOARD_DISABLED: u8 = 0x10;
    /// The aux port's clock is disabled (commands 0xa7 / 0xa8).
    pub const AUX_DISABLED: u8 = 0x20;
    /// Scan codes are translated to set 1.
    pub const TRANSLATE: u8 = 0x40;
}

/// The CTR at power-on, as firmware leaves it when it found neither a keyboard nor a mouse:
/// both ports disabled, translation on, self-test passed (firmware ran it; guests started
/// directly by axvm expect that too).
pub(super) const CTR_AT_POWER_ON: u8 =
    ctr::TRANSLATE | ctr::AUX_DISABLED | ctr::KEYBOARD_DISABLED | ctr::SYS;

/// Output port bit 0: the CPU reset line, active low.
const OUTPUT_PORT_RESET_HIGH: u8 = 0x01;
/// Output port bit 1: the A20 gate. axvm does not gate A20 (KVM cannot); the bit only reads
/// back what was written.
const OUTPUT_PORT_A20: u8 = 0x02;
/// The output port at power-on: not in reset, A20 enabled.
pub(super) const OUTPUT_PORT_AT_POWER_ON: u8 = OUTPUT_PORT_RESET_HIGH | OUTPUT_PORT_A20;

/// The input port (command 0xc0): bit 7 set, "keyboard not inhibited" by a key switch.
const INPUT_PORT: u8 = 0x80;
/// The self-test's (0xaa) answer: passed.
pub(super) const SELF_TEST_PASSED: u8 = 0x55;
/// The interface tests' (0xa9, 0xab) answer: no clock or data line stuck. The lines are
/// the controller's own; they test fine with nothing plugged in.
pub(super) const INTERFACE_OK: u8 = 0x00;
/// What the controller puts in the output buffer when a byte sent to a port times out.
pub(super) const TRANSMIT_TIMEOUT: u8 = 0xfe;

/// What the guest's write asks of the machine, beyond the controller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Effect {
    /// Nothing outside the controller.
    None,
    /// The CPU reset line was pulled low: the machine resets.
    Reset,
}

/// Where the next byte written to the data port goes, after a command that takes one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DataFor {
    /// Internal RAM byte `n` (0 is the CTR): commands 0x60-0x7f.
    Ram(usize),
    /// The output port: command 0xd1.
    OutputPort,
    /// The output buffer, as if the keyboard had sent it: command 0xd2.
    KeyboardOutputBuffer,
    /// The output buffer, as if the mouse had sent it: command 0xd3.
    AuxOutputBuffer,
    /// The aux device: command 0xd4.
    AuxDevice,
}

/// The byte waiting in the output buffer, with the status bits that describe it.
#[derive(Clone, Copy, Debug)]
struct Output {
    value: u8,
    aux: bool,
    timeout: bool,
}

/// The controller's registers.
#[derive(Debug)]
pub(super) struct Controller {
    /// Internal RAM; byte 0 is the CTR (commands 0x20-0x3f read it, 0x60-0x7f write it).
    ram: [u8; 32],
    output: Option<Output>,
    /// What a read of port 0x60 returns when the output buffer is empty: the last byte.
    last_output: u8,
    output_port: u8,
    data_for: Option<DataFor>,
    last_write_was_command: bool,
}

impl Default for Controller {
    fn default() -> Self {
        let mut ram = [0; 32];
        ram[0] = CTR_AT_POWER_ON;
        Self {
            ram,
            output: None,
            last_output: 0,
            output_port: OUTPUT_PORT_AT_POWER_ON,
            data_for: None,
            last_write_was_command: false,
        }
    }
}

impl Controller {
    /// The status register (port 0x64 read).
    pub(super) fn status(&self) -> u8 {
        let mut status = status::UNLOCKED;
        if self.ctr() & ctr::SYS != 0 {
            status |= status::SYS;
        }
        if self.last_write_was_command {
            status |= status::A2;
        }
        if let Some(output) = self.output {
            status |= status::OBF;
            if output.aux {
                status |= status::AUX_DATA;
            }
            if output.timeout {
                status |= status::TIMEOUT;
            }
        }
        status
    }

    /// A read of the data port (0x60): the waiting byte, which leaves the buffer, or else
    /// the last byte again.
    pub(super) fn read_data(&mut self) -> u8 {
        if let Some(output) = self.output.take() {
            self.last_output = output.value;
        }
        self.last_output
    }

    /// A write of `command` to port 0x64. A command cancels any data byte an earlier one
    /// was waiting for.
    pub(super) fn write_command(&mut self, command: u8) -> Effect {
        self.last_write_was_command = true;
        self.data_for = None;
        match command {
            0x20..=0x3f => self.reply(self.ram[usize::from(command - 0x20)]),
            0x60..=0x7f => self.data_for = Some(DataFor::Ram(usize::from(command - 0x60))),
            0xa7 => self.ram[0] |= ctr::AUX_DISABLED,
            0xa8 => self.ram[0] &= !ctr::AUX_DISABLED,
            0xa9 | 0xab => self.reply(INTERFACE_OK),
            0xaa => {
                self.ram[0] |= ctr::SYS;
                self.reply(SELF_TEST_PASSED);
            }
            0xad => self.ram[0] |= ctr::KEYBOARD_DISABLED,
            0xae => self.ram[0] &= !ctr::KEYBOARD_DISABLED,
            0xc0 => self.reply(INPUT_PORT),
            0xd0 => self.reply(self.output_port),
            0xd1 => self.data_for = Some(DataFor::OutputPort),
            0xd2 => self.data_for = Some(DataFor::KeyboardOutputBuffer),
            0xd3 => self.data_for = Some(DataFor::AuxOutputBuffer),
            0xd4 => self.data_for = Some(DataFor::AuxDevice),
            // Pulse the output port's low four lines: each clear bit pulses its line low
            // for a moment. Only the reset line (bit 0) does anything.
            0xf0..=0xff if command & OUTPUT_PORT_RESET_HIGH == 0 => return Effect::Reset,
            0xf0..=0xff => {}
            _ => log::debug!("i8042: ignoring unknown command {command:#04x}"),
        }
        Effect::None
    }

    /// A write of `value` to port 0x60: the data byte of the last command, or else a byte
    /// for the keyboard, which is not there.
    pub(super) fn write_data(&mut self, value: u8) -> Effect {
        self.last_write_was_command = false;
        match self.data_for.take() {
            Some(DataFor::Ram(index)) => {
                if let Some(byte) = self.ram.get_mut(index) {
                    *byte = value;
                }
            }
            Some(DataFor::OutputPort) => {
                self.output_port = value;
                if value & OUTPUT_PORT_RESET_HIGH == 0 {
                    return Effect::Reset;
                }
            }
            Some(DataFor::KeyboardOutputBuffer) => self.put(value, false, false),
            Some(DataFor::AuxOutputBuffer) => self.put(value, true, false),
            Some(DataFor::AuxDevice) => self.time_out("aux", value, true),
            None => self.time_out("keyboard", value, false),
        }
        Effect::None
    }

    /// The controller configuration byte.
    pub(super) fn ctr(&self) -> u8 {
        self.ram[0]
    }

    /// The controller's answer to a command.
    fn reply(&mut self, value: u8) {
        self.put(value, false, false);
    }

    /// Puts `value` in the output buffer, replacing what was there (a real controller, too,
    /// overwrites an unread byte with a command's reply).
    fn put(&mut self, value: u8, aux: bool, timeout: bool) {
        self.output = Some(Output {
            value,
            aux,
            timeout,
        });
    }

    /// `value` was sent to the `port` port, where nothing is attached: see the module doc.
    fn time_out(&mut self, port: &str, value: u8, aux: bool) {
        log::debug!("i8042: no device on the {port} port for byte {value:#04x}: time-out");
        self.put(TRANSMIT_TIMEOUT, aux, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `command`, then the byte it put in the output buffer, checking OBF on the way.
    fn ask(controller: &mut Controller, command: u8) -> u8 {
        assert_eq!(controller.write_command(command), Effect::None);
        assert_ne!(
            controller.status() & status::OBF,
            0,
            "no reply to {command:#x}"
        );
        let value = controller.read_data();
        assert_eq!(
            controller.status() & status::OBF,
            0,
            "reading did not clear OBF"
        );
        value
    }

    /// `command`, then its data byte.
    fn tell(controller: &mut Controller, command: u8, value: u8) -> Effect {
        assert_eq!(controller.write_command(command), Effect::None);
        controller.write_data(value)
    }

    #[test]
    fn at_power_on_the_status_shows_a_tested_idle_controller() {
        let mut controller = Controller::default();
        assert_eq!(controller.status(), status::SYS | status::UNLOCKED);
        assert_eq!(controller.read_data(), 0);
        assert_eq!(ask(&mut controller, 0x20), CTR_AT_POWER_ON);
    }

    #[test]
    fn self_test_replies_0x55_and_sets_the_system_flag() {
        let mut controller = Controller::default();
        tell(&mut controller, 0x60, 0x00);
        assert_eq!(controller.status() & status::SYS, 0);
        assert_eq!(ask(&mut controller, 0xaa), SELF_TEST_PASSED);
        assert_eq!(controller.status() & status::SYS, status::SYS);
        assert_eq!(controller.ctr() & ctr::SYS, ctr::SYS);
    }

    #[test]
    fn the_ctr_reads_back_what_linux_writes() {
        let mut controller = Controller::default();
        // Linux's usual CTR: both interrupts, system flag, translation, ports enabled.
        for value in [0x47, 0x65, 0x00, 0xff] {
            assert_eq!(tell(&mut controller, 0x60, value), Effect::None);
            assert_eq!(ask(&mut controller, 0x20), value, "CTR {value:#x}");
        }
        // The rest of internal RAM is there too.
        tell(&mut controller, 0x7f, 0x5a);
        assert_eq!(ask(&mut controller, 0x3f), 0x5a);
        assert_eq!(ask(&mut controller, 0x20), 0xff);
    }

    #[test]
    fn port_enable_and_disable_commands_set_the_ctr_bits() {
        let mut controller = Controller::default();
        tell(&mut controller, 0x60, 0x47);
        controller.write_command(0xa7);
        assert_eq!(ask(&mut controller, 0x20), 0x47 | ctr::AUX_DISABLED);
        controller.write_command(0xad);
        assert_eq!(
            ask(&mut controller, 0x20),
            0x47 | ctr::AUX_DISABLED | ctr::KEYBOARD_DISABLED
        );
        controller.write_command(0xa8);
        assert_eq!(ask(&mut controller, 0x20), 0x47 | ctr::KEYBOARD_DISABLED);
        controller.write_command(0xae);
        assert_eq!(ask(&mut controller, 0x20), 0x47);
        // None of them has a reply.
        for command in [0xa7, 0xa8, 0xad, 0xae] {
            controller.write_command(command);
            assert_eq!(controller.status() & status::OBF, 0, "{command:#x}");
        }
    }

    #[test]
    fn interface_tests_report_no_stuck_line() {
        let mut controller = Controller::default();
        assert_eq!(ask(&mut controller, 0xa9), INTERFACE_OK);
        assert_eq!(ask(&mut controller, 0xab), INTERFACE_OK);
    }

    #[test]
    fn the_output_port_reads_back_and_resets_when_bit_0_is_cleared() {
        let mut controller = Controller::default();
        assert_eq!(ask(&mut controller, 0xd0), OUTPUT_PORT_AT_POWER_ON);
        assert_eq!(tell(&mut controller, 0xd1, 0xdd), Effect::None);
        assert_eq!(ask(&mut controller, 0xd0), 0xdd);
        assert_eq!(tell(&mut controller, 0xd1, 0xde), Effect::Reset);
    }

    #[test]
    fn pulses_with_bit_0_clear_reset_and_the_others_do_not() {
        let mut controller = Controller::default();
        for command in [0xfe, 0xf0, 0xf2, 0xfc] {
            assert_eq!(
                controller.write_command(command),
                Effect::Reset,
                "{command:#x}"
            );
        }
        for command in [0xff, 0xfd, 0xf1] {
            assert_eq!(
                controller.write_command(command),
                Effect::None,
                "{command:#x}"
            );
            assert_eq!(controller.status() & status::OBF, 0, "{command:#x}");
        }
    }

    #[test]
    fn a_byte_for_the_absent_keyboard_times_out_at_once() {
        let mut controller = Controller::default();
        // ATKBD_CMD_RESET_BAT, ATKBD_CMD_GETID: what firmware and Linux send first.
        for byte in [0xff, 0xf2] {
            assert_eq!(controller.write_data(byte), Effect::None);
            let bits = controller.status();
            assert_eq!(bits & status::OBF, status::OBF, "{byte:#x}");
            assert_eq!(bits & status::TIMEOUT, status::TIMEOUT, "{byte:#x}");
            assert_eq!(bits & status::AUX_DATA, 0, "{byte:#x}");
            assert_eq!(bits & status::A2, 0, "{byte:#x}");
            // Not 0xfa (ACK), nor a self-test pass (0xaa): no keyboard answers.
            assert_eq!(controller.read_data(), TRANSMIT_TIMEOUT);
            assert_eq!(controller.status() & (status::OBF | status::TIMEOUT), 0);
        }
    }

    #[test]
    fn a_byte_for_the_absent_mouse_times_out_on_the_aux_port() {
        let mut controller = Controller::default();
        assert_eq!(tell(&mut controller, 0xd4, 0xf2), Effect::None);
        let bits = controller.status();
        let want = status::OBF | status::TIMEOUT | status::AUX_DATA;
        assert_eq!(bits & want, want);
        assert_eq!(controller.read_data(), TRANSMIT_TIMEOUT);
    }

    #[test]
    fn loopback_commands_put_the_byte_in_the_output_buffer() {
        let mut controller = Controller::default();
        tell(&mut controller, 0xd2, 0x5a);
        assert_eq!(controller.status() & status::AUX_DATA, 0);
        assert_eq!(controller.read_data(), 0x5a);
        tell(&mut controller, 0xd3, 0xa5);
        let bits = controller.status();
        assert_eq!(
            bits & (status::AUX_DATA | status::TIMEOUT),
            status::AUX_DATA
        );
        assert_eq!(controller.read_data(), 0xa5);
    }

    #[test]
    fn an_empty_output_buffer_reads_the_last_byte_again() {
        let mut controller = Controller::default();
        assert_eq!(ask(&mut controller, 0xaa), SELF_TEST_PASSED);
        assert_eq!(controller.read_data(), SELF_TEST_PASSED);
        assert_eq!(controller.status() & status::OBF, 0);
    }

    #[test]
    fn a2_tells_which_port_was_written_last() {
        let mut controller = Controller::default();
        controller.write_command(0xa7);
        assert_eq!(controller.status() & status::A2, status::A2);
        controller.write_data(0x00);
        assert_eq!(controller.status() & status::A2, 0);
    }

    #[test]
    fn a_command_cancels_the_data_byte_an_earlier_one_waited_for() {
        let mut controller = Controller::default();
        controller.write_command(0x60);
        assert_eq!(ask(&mut controller, 0xaa), SELF_TEST_PASSED);
        // The byte now goes to the (absent) keyboard, not into the CTR.
        controller.write_data(0x00);
        assert_eq!(controller.read_data(), TRANSMIT_TIMEOUT);
        assert_eq!(ask(&mut controller, 0x20), CTR_AT_POWER_ON);
    }

    #[test]
    fn unknown_commands_are_ignored() {
        let mut controller = Controller::default();
        let before = (controller.status(), controller.ctr());
        for command in [0x00, 0x90, 0xc8, 0xe0] {
            assert_eq!(controller.write_command(command), Effect::None);
        }
        assert_eq!(
            (controller.status(), controller.ctr()),
            before_with_a2(before)
        );
        assert_eq!(ask(&mut controller, 0xd0), OUTPUT_PORT_AT_POWER_ON);
    }

    /// `(status, ctr)` after a command write: the same, with A2 set.
    fn before_with_a2((bits, ctr): (u8, u8)) -> (u8, u8) {
        (bits | status::A2, ctr)
    }
}
