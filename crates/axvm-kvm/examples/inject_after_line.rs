//! Runs a VM from its config file and injects an interrupt once the guest prints a given
//! console line: what the KVM host's wake-up test does, as a program, so that
//! `scripts/svm-compat.sh` can compare the `wakeup` guest under both hosts.
//!
//! ```text
//! cargo run -p axvm-kvm --example inject_after_line -- CONFIG VECTOR@VCPU LINE
//! inject_after_line wakeup.toml 0x40@0 "wakeup: waiting for an interrupt"
//! ```
//!
//! The guest's console goes to stdout; 100 ms after the line (so that the vCPU has reached
//! `hlt`, as in the test) `AxVM::inject_interrupt_to_vcpu(&[VCPU], VECTOR)` is called. The
//! exit status is the guest's, as `axvm run`'s; 1 with a message for anything else, 124
//! when the VM has not ended 60 s after the injection (or the line never came).
//! Only `kernel_path` is read from the config's images (the guests this serves need no
//! other).

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use axvm::config::toml::AxVMCrateConfig;
use axvm_kvm::{BootImages, KvmVm, VmOptions, VmOutcome};

/// How long the guest has to print the line, and then to end.
const DEADLINE: Duration = Duration::from_secs(60);
/// The wait between the line and the injection.
const INJECT_DELAY: Duration = Duration::from_millis(100);

/// The console: the guest's bytes to stdout, and every complete line to a channel.
struct LineTee {
    line: Vec<u8>,
    lines: mpsc::Sender<String>,
}

impl Write for LineTee {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut stdout = std::io::stdout().lock();
        stdout.write_all(bytes)?;
        stdout.flush()?;
        for &byte in bytes {
            if byte == b'\n' {
                let text = String::from_utf8_lossy(&self.line)
                    .trim_end_matches('\r')
                    .to_string();
                let _ = self.lines.send(text);
                self.line.clear();
            } else {
                self.line.push(byte);
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn parse_target(text: &str) -> Result<(u8, usize), String> {
    let bad = || format!("`{text}`: expected VECTOR@VCPU, e.g. 0x40@0");
    let (vector, vcpu) = text.split_once('@').ok_or_else(bad)?;
    let vector = match vector.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => vector.parse(),
    }
    .map_err(|_| bad())?;
    Ok((vector, vcpu.parse().map_err(|_| bad())?))
}

fn create(config_path: &Path, lines: mpsc::Sender<String>) -> Result<KvmVm, String> {
    let origin = config_path.display();
    let text = std::fs::read_to_string(config_path).map_err(|err| format!("{origin}: {err}"))?;
    let file = AxVMCrateConfig::from_toml(&text).map_err(|err| format!("{origin}: {err}"))?;
    let kernel_path = config_path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&file.kernel.kernel_path);
    let kernel = std::fs::read(&kernel_path)
        .map_err(|err| format!("kernel.kernel_path {}: {err}", kernel_path.display()))?;
    let images = BootImages {
        kernel,
        kernel_name: Some(file.kernel.kernel_path.clone()),
        ..Default::default()
    };
    let config = file
        .into_vm_config()
        .map_err(|err| format!("{origin}: {err}"))?;
    let options = VmOptions {
        console: Box::new(LineTee {
            line: Vec::new(),
            lines,
        }),
        ..Default::default()
    };
    KvmVm::create(config, &images, options).map_err(|err| format!("{origin}: {err}"))
}

fn run(args: &[String]) -> Result<u8, (u8, String)> {
    let [config, target, line] = args else {
        return Err((2, "usage: inject_after_line CONFIG VECTOR@VCPU LINE".into()));
    };
    let (vector, vcpu) = parse_target(target).map_err(|err| (2, err))?;
    let (lines_tx, lines) = mpsc::channel();
    let vm = std::sync::Arc::new(create(Path::new(config), lines_tx).map_err(|err| (1, err))?);
    let (done, ended) = mpsc::channel();
    let runner = vm.clone();
    thread::spawn(move || {
        let _ = done.send(runner.run());
    });
    let seen = loop {
        match lines.recv_timeout(DEADLINE) {
            Ok(text) if text == *line => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    if seen {
        thread::sleep(INJECT_DELAY);
        vm.vm()
            .inject_interrupt_to_vcpu(&[vcpu], vector)
            .map_err(|err| (1, err.to_string()))?;
    }
    match ended.recv_timeout(if seen { DEADLINE } else { Duration::ZERO }) {
        Ok(Ok(VmOutcome::Exited(status))) => Ok(status),
        Ok(Ok(other)) => Err((1, format!("the VM ended: {other:?}"))),
        Ok(Err(err)) => Err((1, err.to_string())),
        Err(_) => {
            vm.vm().shutdown();
            let what = if seen {
                "the VM did not end after the injection"
            } else {
                "the guest never printed the line"
            };
            Err((124, format!("{what} within {} s", DEADLINE.as_secs())))
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = match run(&args) {
        Ok(status) => status,
        Err((status, message)) => {
            eprintln!("inject_after_line: {message}");
            status
        }
    };
    std::process::exit(i32::from(status));
}
