//! `axvm run` says the warnings `axvm check` gives for a config (issue 11, item 8): each
//! once, on stderr, without `-v`, before the guest prints anything, in check's words, and
//! naming the VM and its config; a clean config runs without a word on stderr.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{axvm, realmode_with, replace, require_kvm, run, Scratch, DEADLINE};

/// What the real-mode guest prints.
const HELLO: &str = "axvm real-mode guest: hello";

/// The entry point in the zeros below the image: the vCPU runs `add [bx+si], al` up to
/// 0x8000 and then the guest itself, so the warned-about config still prints and exits 0.
fn entry_below_the_image(text: String) -> String {
    replace(&text, "entry_point = 0x8000", "entry_point = 0x7c00")
}

/// The `[warn]` texts `axvm check CONFIG` gives for the config (not for the host).
fn check_warnings(config: &Path) -> Vec<String> {
    let output = axvm(&[OsStr::new("check"), config.as_os_str()]);
    assert_eq!(output.code(), 0, "{output:#?}");
    let config_part = output.stdout.split_once("\nConfig ").map_or("", |(_, c)| c);
    config_part
        .lines()
        .filter_map(|line| line.strip_prefix("  [warn] "))
        .map(str::to_string)
        .collect()
}

/// The warning lines of `stderr`.
fn warning_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|line| line.starts_with("[WARN "))
        .collect()
}

/// `axvm run CONFIG` with stdout and stderr into one file, so that the order of what both
/// say is kept: the exit code and the text.
fn run_interleaved(scratch: &Scratch, config: &Path) -> (i32, String) {
    let path = scratch.path("interleaved.out");
    let file = std::fs::File::create(&path).expect("output file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_axvm"))
        .arg("run")
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("output file"))
        .stderr(file)
        .spawn()
        .expect("cannot start axvm");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("cannot wait for axvm") {
            break status;
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("axvm run still ran after {DEADLINE:?}; killed it");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let text = std::fs::read_to_string(&path).expect("output file");
    (status.code().expect("axvm was killed by a signal"), text)
}

fn a_check_warning_is_said_once_on_stderr_before_the_guest_prints() {
    require_kvm();
    let scratch = Scratch::new("run-warn-entry");
    let config = realmode_with(&scratch, entry_below_the_image);
    let checked = check_warnings(&config);
    assert_eq!(checked.len(), 1, "{checked:#?}");
    assert!(
        checked[0].starts_with("kernel.entry_point: "),
        "{checked:#?}"
    );

    let output = run(&config);
    assert_eq!(output.code(), 0, "{output:#?}");
    assert_eq!(output.stdout, format!("{HELLO}\n"), "{output:#?}");
    let warnings = warning_lines(&output.stderr);
    assert_eq!(warnings.len(), 1, "{output:#?}");
    assert!(warnings[0].ends_with(&checked[0]), "{warnings:#?}");
    assert_eq!(
        output.stderr.matches("kernel.entry_point").count(),
        1,
        "said once: {output:#?}"
    );

    let (code, text) = run_interleaved(&scratch, &config);
    assert_eq!(code, 0, "{text}");
    let warning = text
        .find(&checked[0])
        .unwrap_or_else(|| panic!("no warning: {text}"));
    let hello = text
        .find(HELLO)
        .unwrap_or_else(|| panic!("no hello: {text}"));
    assert!(
        warning < hello,
        "the warning comes after the guest's output: {text}"
    );
}

/// Every warning `check` gives, `run` gives in the same words, however many there are,
/// including those about what creating the VM does (MapIdentical, an unknown `emu_type`,
/// pass-through over RAM), which creation itself no longer says a second time.
fn run_gives_exactly_the_warnings_check_gives() {
    require_kvm();
    let scratch = Scratch::new("run-warn-all");
    let config = realmode_with(&scratch, |text| {
        let text = entry_below_the_image(text);
        let text = replace(
            &text,
            "[0x0, 0x10_0000, 0x7, 0],",
            "[0x0, 0x10_0000, 0x7, 1], [0xfec0_0000, 0x1000, 0x7, 0],",
        );
        let text = replace(
            &text,
            "emu_devices = []",
            "emu_devices = [[\"mystery\", 0xfeb0_0000, 0x1000, 0, 0x77, []]]",
        );
        replace(
            &text,
            "passthrough_devices = []",
            "passthrough_devices = [[\"ioapic\", 0xfec0_0000, 0xfec0_0000, 0x1000, 0]]",
        )
    });
    let mut checked = check_warnings(&config);
    assert_eq!(checked.len(), 4, "{checked:#?}");
    let output = run(&config);
    assert_eq!(output.code(), 0, "{output:#?}");
    let name = "VM `axvm-realmode` (";
    let mut said: Vec<String> = warning_lines(&output.stderr)
        .iter()
        .map(|line| {
            let (_, text) = line
                .split_once("): ")
                .unwrap_or_else(|| panic!("no VM named: {line}"));
            assert!(line.contains(name), "{line}");
            text.to_string()
        })
        .collect();
    checked.sort();
    said.sort();
    assert_eq!(said, checked, "{output:#?}");
    for what in ["MapIdentical", "emu_type 0x77", "ioapic"] {
        assert_eq!(
            output.stderr.matches(what).count(),
            1,
            "{what} said more than once: {output:#?}"
        );
    }
}

fn a_clean_config_runs_without_a_warning() {
    require_kvm();
    let scratch = Scratch::new("run-warn-clean");
    let config = realmode_with(&scratch, |text| text);
    assert_eq!(check_warnings(&config), Vec::<String>::new());
    let output = run(&config);
    assert_eq!(output.code(), 0, "{output:#?}");
    assert_eq!(output.stderr, "", "{output:#?}");
}

/// With several VMs, each warning says whose it is: the VM's name and its config file.
fn with_several_vms_a_warning_names_its_vm_and_config() {
    require_kvm();
    let scratch = Scratch::new("run-warn-several");
    let clean = realmode_with(&scratch, |text| text);
    let clean = scratch.write(
        "clean.toml",
        std::fs::read_to_string(&clean).expect("config"),
    );
    let warned = scratch.write(
        "warned.toml",
        entry_below_the_image(replace(
            &replace(
                axvm_guests::REALMODE_CONFIG,
                "name = \"axvm-realmode\"",
                "name = \"warned\"",
            ),
            "id = 0",
            "id = 1",
        )),
    );
    let output = axvm(&[OsStr::new("run"), clean.as_os_str(), warned.as_os_str()]);
    assert_eq!(output.code(), 0, "{output:#?}");
    let warnings = warning_lines(&output.stderr);
    assert_eq!(warnings.len(), 1, "{output:#?}");
    let whose = format!("VM `warned` ({}): kernel.entry_point: ", warned.display());
    assert!(
        warnings[0].contains(&whose),
        "{whose:?} is not in {warnings:#?}"
    );
    assert!(
        output.stdout.contains(&format!("[warned] {HELLO}")),
        "{output:#?}"
    );
}

axvm_test_harness::main!(
    a_check_warning_is_said_once_on_stderr_before_the_guest_prints,
    run_gives_exactly_the_warnings_check_gives,
    a_clean_config_runs_without_a_warning,
    with_several_vms_a_warning_names_its_vm_and_config,
);
